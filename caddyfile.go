package aiproxy

import (
	"math"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("aiproxy", parseCaddyfile)
	// Before respond, so a site can end in a catch-all respond or file_server.
	httpcaddyfile.RegisterDirectiveOrder("aiproxy", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	aiproxy {
//		admin_token <token>
//		upstream <base_url> [<key>...]
//		host <name|base_url> [<key>...]
//		host <name> {
//			base_url <url>
//			key <key>...
//		}
//		store file [<path>]
//		store redis [<address>...] {
//			...
//		}
//		cors <origin>... | off
//		seed_admin_paths on|off
//		self_service on|off
//		metrics_per_user on|off
//		host_refresh_interval <duration>
//		usage_retention <duration>
//		session_check_interval <duration>
//		stream_close_delay <duration>
//		stream_timeout <duration>
//		inspect_memory <size>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "admin_token":
			if !d.NextArg() {
				// {$VAR} is replaced before parsing: its name is gone here.
				return d.Errf("admin_token needs a value (an unset {$VAR} leaves none): use admin_token {env.AIPROXY_ADMIN_TOKEN}, which names the variable when it is unset and keeps the token out of the adapted config")
			}
			h.AdminToken = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}

		case "upstream":
			if h.Upstream != nil {
				return d.Err("upstream may be given only once; use host for more upstreams")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			u := HostConfig{BaseURL: d.Val(), Keys: d.RemainingArgs()}
			if _, err := parseBaseURL(u.BaseURL); err != nil {
				return d.Errf("upstream: %v", err)
			}
			h.Upstream = &u

		case "host":
			u, err := unmarshalHost(d)
			if err != nil {
				return err
			}
			h.Hosts = append(h.Hosts, u)

		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			backend := d.Val()
			if _, err := storeModule(backend); err != nil {
				return d.Err(err.Error())
			}
			unm, err := caddyfile.UnmarshalModule(d, storeNamespace+"."+backend)
			if err != nil {
				return err
			}
			h.StoreRaw = caddyconfig.JSONModuleObject(unm, "backend", backend, nil)

		case "cors":
			origins := d.RemainingArgs()
			switch {
			case len(origins) == 0:
				return d.ArgErr()
			case len(origins) == 1 && origins[0] == "off":
				h.DisableCORS = true
			case len(origins) == 1 && origins[0] == "*":
				h.CORSOrigins = nil
			default:
				for _, o := range origins {
					if o == "*" || o == "off" {
						return d.Errf("cors: %q cannot be combined with other origins", o)
					}
					if !strings.Contains(o, "://") {
						return d.Errf("cors: origin %q must include the scheme, e.g. https://chat.example.com", o)
					}
				}
				h.CORSOrigins = origins
			}

		case "seed_admin_paths":
			on, err := parseOnOff(d)
			if err != nil {
				return err
			}
			h.WorkerRoutes = &on

		case "self_service":
			on, err := parseOnOff(d)
			if err != nil {
				return err
			}
			h.SelfService = &on

		case "metrics_per_user":
			on, err := parseOnOff(d)
			if err != nil {
				return err
			}
			h.MetricsPerUser = &on

		case "host_refresh_interval", "session_check_interval", "stream_close_delay", "stream_timeout", "usage_retention":
			if err := h.unmarshalDuration(d); err != nil {
				return err
			}

		case "inspect_memory":
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil || size == 0 || size > math.MaxInt64 {
				return d.Errf("inspect_memory: want a size such as 64MiB, got %q", d.Val())
			}
			h.InspectMemory = int64(size)
			if d.NextArg() {
				return d.ArgErr()
			}

		default:
			return d.Errf("unrecognized aiproxy option '%s'", d.Val())
		}
	}
	return nil
}

// unmarshalDuration parses `<option> <duration>` for the duration options.
// Intervals must be positive; the stream options take 0 for "off".
func (h *Handler) unmarshalDuration(d *caddyfile.Dispenser) error {
	name := d.Val()
	fields := map[string]*caddy.Duration{
		"host_refresh_interval":  &h.HostRefreshInterval,
		"session_check_interval": &h.SessionCheckInterval,
		"stream_close_delay":     &h.StreamCloseDelay,
		"stream_timeout":         &h.StreamTimeout,
		"usage_retention":        &h.UsageRetention,
	}
	if !d.NextArg() {
		return d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	switch {
	case strings.HasSuffix(name, "_interval") && (err != nil || dur <= 0):
		return d.Errf("%s: want a positive duration such as 5s, got %q", name, d.Val())
	case err != nil || dur < 0:
		return d.Errf("%s: want a duration such as 5m, or 0 for none, got %q", name, d.Val())
	}
	*fields[name] = caddy.Duration(dur)
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// unmarshalHost parses `host <name|base_url> [<key>...]` with an optional
// block of base_url and key lines.
func unmarshalHost(d *caddyfile.Dispenser) (HostConfig, error) {
	var u HostConfig
	if !d.NextArg() {
		return u, d.ArgErr()
	}
	if strings.Contains(d.Val(), "://") {
		u.BaseURL = d.Val()
	} else {
		u.Name = d.Val()
	}
	u.Keys = d.RemainingArgs()
	for d.NextBlock(1) {
		switch d.Val() {
		case "base_url":
			if !d.NextArg() {
				return u, d.ArgErr()
			}
			u.BaseURL = d.Val()
			if d.NextArg() {
				return u, d.ArgErr()
			}
		case "key", "keys":
			keys := d.RemainingArgs()
			if len(keys) == 0 {
				return u, d.ArgErr()
			}
			u.Keys = append(u.Keys, keys...)
		default:
			return u, d.Errf("unrecognized host option '%s'", d.Val())
		}
	}
	if u.BaseURL != "" {
		if _, err := parseBaseURL(u.BaseURL); err != nil {
			return u, d.Errf("host: %v", err)
		}
	}
	if u.Name != "" && (strings.ContainsAny(u.Name, "/@ ") || u.Name != strings.ToLower(u.Name)) {
		return u, d.Errf("host: %q is not a lowercase host name", u.Name)
	}
	return u, nil
}

func parseOnOff(d *caddyfile.Dispenser) (bool, error) {
	name := d.Val()
	if !d.NextArg() {
		return false, d.ArgErr()
	}
	var on bool
	switch d.Val() {
	case "on":
		on = true
	case "off":
	default:
		return false, d.Errf("%s: want on or off, got %q", name, d.Val())
	}
	if d.NextArg() {
		return false, d.ArgErr()
	}
	return on, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
