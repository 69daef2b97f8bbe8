package aiproxy

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/aiproxy/aiproxy/keystore"
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
//		request_log <records>|off
//		default_limits {
//			models <pattern>...
//			rpm|tpm|max_parallel <n>
//			budget_tokens|budget_requests <n>
//			budget_usd <dollars>
//			budget_period day|week|month|total
//		}
//		price <model> <input> <output> [<cached_input>]
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

		case "forward_browser_headers":
			on, err := parseOnOff(d)
			if err != nil {
				return err
			}
			h.ForwardBrowserHeaders = on

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

		case "request_log":
			if err := h.unmarshalRequestLog(d); err != nil {
				return err
			}

		case "default_limits":
			if h.DefaultLimits != nil {
				return d.Err("default_limits may be given only once: put every limit in one block")
			}
			p, err := unmarshalDefaultLimits(d)
			if err != nil {
				return err
			}
			h.DefaultLimits = p

		case "max_attempts":
			arg, err := oneArg(d)
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 {
				return d.Errf("max_attempts: %q is not a number of tries of 1 or more (1: no retries)", arg)
			}
			h.MaxAttempts = n

		case "alias":
			args := d.RemainingArgs()
			if len(args) != 3 {
				return d.Errf("alias takes a public name, a host and the host's model: alias fast api.groq.com llama-3.3-70b-versatile")
			}
			if slices.ContainsFunc(h.Aliases, func(o AliasConfig) bool { return o.Name == args[0] }) {
				return d.Errf("alias %s is given twice; keep one line", args[0])
			}
			h.Aliases = append(h.Aliases, AliasConfig{Name: args[0], Host: args[1], Model: args[2]})

		case "price":
			c, err := unmarshalPrice(d)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(h.Prices, func(o PriceConfig) bool { return o.Model == c.Model }) {
				return d.Errf("price: %s is priced twice; keep one line", c.Model)
			}
			h.Prices = append(h.Prices, c)

		default:
			return d.Errf("unrecognized aiproxy option '%s'", d.Val())
		}
	}
	return nil
}

// unmarshalRequestLog parses `request_log <records>|off`.
func (h *Handler) unmarshalRequestLog(d *caddyfile.Dispenser) error {
	arg, err := oneArg(d)
	if err != nil {
		return err
	}
	if arg == "off" {
		h.DisableRequestLog, h.RequestLogSize = true, 0
		return nil
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || checkRequestLogSize(n) != nil {
		return d.Errf("request_log: want the number of records to keep, from 1 to %d (default %d), or off; got %q",
			keystore.MaxRequestLog, defaultRequestLogSize, arg)
	}
	h.DisableRequestLog, h.RequestLogSize = false, n
	return nil
}

// unmarshalDefaultLimits parses the default_limits block, a limit a line,
// each given at most once (0: no limit on that axis).
func unmarshalDefaultLimits(d *caddyfile.Dispenser) (*keystore.Policy, error) {
	if d.NextArg() {
		return nil, d.Errf("default_limits takes a block, not arguments: default_limits { rpm 60 }, a limit a line")
	}
	var p keystore.Policy
	var limits keystore.Limits
	var budget keystore.Budget
	counts := map[string]**int64{
		"rpm": &limits.RPM, "tpm": &limits.TPM, "max_parallel": &limits.MaxParallel,
		"budget_tokens": &budget.Tokens, "budget_requests": &budget.Requests,
	}
	seen := map[string]bool{}
	for d.NextBlock(1) {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("default_limits: %s given twice; keep one line", name)
		}
		seen[name] = true
		switch field := counts[name]; {
		case field != nil:
			n, err := unmarshalCount(d)
			if err != nil {
				return nil, err
			}
			*field = &n
		case name == "models":
			models := d.RemainingArgs()
			if err := keystore.ValidModelPatterns(models); err != nil {
				return nil, d.Errf("default_limits: %v", err)
			}
			p.Models = models
		case name == "budget_usd":
			usd, err := unmarshalDollars(d)
			if err != nil {
				return nil, err
			}
			budget.USD = &usd
		case name == "budget_period":
			arg, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if err := keystore.Period(arg).Validate(); err != nil {
				return nil, d.Errf("default_limits: budget_period: %v", err)
			}
			budget.Period = keystore.Period(arg)
		default:
			return nil, d.Errf("unrecognized default_limits option '%s'", name)
		}
	}
	if len(seen) == 0 {
		return nil, d.Err("default_limits: give its limits in a block, a limit a line: models, rpm, tpm, max_parallel, budget_tokens, budget_requests, budget_usd, budget_period")
	}
	if limits != (keystore.Limits{}) {
		p.Limits = &limits
	}
	if budget != (keystore.Budget{}) {
		p.Budget = &budget
	}
	if err := p.Validate(); err != nil {
		return nil, d.Errf("default_limits: %v", err)
	}
	return &p, nil
}

// unmarshalCount parses the one argument of a default_limits count.
func unmarshalCount(d *caddyfile.Dispenser) (int64, error) {
	name := d.Val()
	arg, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n < 0 || n > keystore.MaxLimit {
		return 0, d.Errf("default_limits: %s: want a whole number from 0 (no limit) to %d, got %q", name, keystore.MaxLimit, arg)
	}
	return n, nil
}

// unmarshalDollars parses the one argument of budget_usd.
func unmarshalDollars(d *caddyfile.Dispenser) (float64, error) {
	arg, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	usd, err := strconv.ParseFloat(arg, 64)
	if err != nil || !(usd >= 0 && usd <= keystore.MaxBudgetUSD) {
		return 0, d.Errf("default_limits: budget_usd: want US dollars from 0 (no limit) to %v such as 20 or 7.50, got %q", keystore.MaxBudgetUSD, arg)
	}
	return usd, nil
}

// unmarshalPrice parses `price <model> <input> <output> [<cached_input>]`,
// prices in US dollars per million tokens.
func unmarshalPrice(d *caddyfile.Dispenser) (PriceConfig, error) {
	args := d.RemainingArgs()
	if len(args) < 3 || len(args) > 4 {
		return PriceConfig{}, d.Err("price: want a model and 2 or 3 prices in US dollars per million tokens: price <model> <input> <output> [<cached_input>], e.g. price gpt-4o-mini 0.15 0.60 0.075")
	}
	c := PriceConfig{Model: args[0]}
	if err := keystore.ValidModelPattern(c.Model); err != nil {
		return c, d.Errf("price: the model: %v", err)
	}
	fields := []struct {
		name string
		v    *float64
	}{{"input", &c.Input}, {"output", &c.Output}, {"cached input", &c.CachedInput}}
	for i, arg := range args[1:] {
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(v >= 0) || math.IsInf(v, 1) {
			return c, d.Errf("price %s: the %s price %q is not a number of US dollars per million tokens such as 0.15", c.Model, fields[i].name, arg)
		}
		*fields[i].v = v
	}
	if err := c.price().Validate(); err != nil {
		return c, d.Errf("price %s: %v", c.Model, err)
	}
	return c, nil
}

// oneArg returns the one argument of the current line.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	arg := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return arg, nil
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
		case "models":
			models := d.RemainingArgs()
			if err := keystore.ValidModelPatterns(models); err != nil {
				return u, d.Errf("host: %v", err)
			}
			u.Models = append(u.Models, models...)
		case "auth":
			arg, err := oneArg(d)
			if err != nil {
				return u, err
			}
			if _, ok := hostAuths[arg]; !ok {
				return u, d.Errf("host: auth %q: use bearer, api-key or x-api-key", arg)
			}
			u.Auth = arg
		case "api_path":
			arg, err := oneArg(d)
			if err != nil {
				return u, err
			}
			u.APIPath = arg
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return u, d.Errf("host: header takes a name and a value: header HTTP-Referer https://chat.example.com")
			}
			if u.Headers == nil {
				u.Headers = map[string]string{}
			}
			u.Headers[args[0]] = args[1]
		default:
			return u, d.Errf("unrecognized host option '%s'", d.Val())
		}
	}
	if u.BaseURL != "" {
		if _, err := parseBaseURL(u.BaseURL); err != nil {
			return u, d.Errf("host: %v", err)
		}
	}
	if _, err := newHost(HostConfig{Name: "check", BaseURL: "http://check", Auth: u.Auth, APIPath: u.APIPath, Headers: u.Headers},
		caddy.NewReplacer()); err != nil {
		return u, d.Errf("host: %v", err)
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
