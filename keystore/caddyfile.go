package keystore

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens, starting at the
// backend name. Syntax:
//
//	file [<path>]
//
// or, equivalently,
//
//	file {
//		path <path>
//	}
func (s *FileStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume backend name
	if d.NextArg() {
		s.Path = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "path":
			if s.Path != "" {
				return d.Err("file store path already specified")
			}
			if err := singleArg(d, &s.Path); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized file store option '%s'", d.Val())
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens, starting at the
// backend name. Syntax:
//
//	redis [<address>...] {
//		address      <host:port>...      # one or more; may repeat
//		username     <name>
//		password     <password>
//		db           <number>
//		key_prefix   <prefix>
//		master_name  <name>              # Sentinel; addresses are the sentinels'
//		tls          [on|off]
//		tls_server_name <name>
//		tls_insecure_skip_verify
//		timeout      <duration>
//	}
//
// The block is optional.
func (s *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume backend name
	s.Addresses = append(s.Addresses, d.RemainingArgs()...)
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "address":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			s.Addresses = append(s.Addresses, args...)

		case "username":
			if err := singleArg(d, &s.Username); err != nil {
				return err
			}
		case "password":
			if err := singleArg(d, &s.Password); err != nil {
				return err
			}
		case "key_prefix":
			if err := singleArg(d, &s.KeyPrefix); err != nil {
				return err
			}
		case "master_name":
			if err := singleArg(d, &s.MasterName); err != nil {
				return err
			}
		case "tls_server_name":
			if err := singleArg(d, &s.TLSServerName); err != nil {
				return err
			}

		case "db":
			var v string
			if err := singleArg(d, &v); err != nil {
				return err
			}
			db, err := strconv.Atoi(v)
			if err != nil || db < 0 {
				return d.Errf("db must be a non-negative integer, got '%s'", v)
			}
			s.DB = db

		case "timeout":
			var v string
			if err := singleArg(d, &v); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("parsing timeout: %v", err)
			}
			if dur <= 0 {
				return d.Errf("timeout must be positive, got '%s'", v)
			}
			s.Timeout = caddy.Duration(dur)

		case "tls":
			on, err := flagArg(d)
			if err != nil {
				return err
			}
			s.TLS = on
		case "tls_insecure_skip_verify":
			on, err := flagArg(d)
			if err != nil {
				return err
			}
			s.TLSInsecureSkipVerify = on

		default:
			return d.Errf("unrecognized redis store option '%s'", opt)
		}
	}
	return nil
}

// singleArg reads exactly one argument of the current option into dst.
func singleArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	val := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	*dst = val
	return nil
}

// flagArg reads a boolean option: bare means on, else "on" or "off".
func flagArg(d *caddyfile.Dispenser) (bool, error) {
	opt := d.Val()
	if !d.NextArg() {
		return true, nil
	}
	val := d.Val()
	if d.NextArg() {
		return false, d.ArgErr()
	}
	switch val {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, d.Errf("%s: want 'on' or 'off', got '%s'", opt, val)
}
