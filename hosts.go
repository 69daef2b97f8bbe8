package aiproxy

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/aiproxy/aiproxy/admin"
	"github.com/aiproxy/aiproxy/keystore"
)

// host is a resolved provider host: where to dial, what Host to send, and the
// keys to spread requests over.
type host struct {
	name       string // X-Host-Final value that selects it (lowercase)
	baseURL    string // canonical, as keystore.BaseURL.String gives it
	tls        bool
	dial       string // host:port for the nested proxy
	hostHeader string // Host header sent upstream
	pathPrefix string // put in front of the client's path; "" or "/..." without trailing "/"
	keys       []string
	models     []string       // the models it serves (routing by model)
	authName   string         // the header its key goes in
	authPrefix string         // before the key there: "Bearer " or ""
	apiPath    string         // the provider's path for the client's /v1; "" when the same
	headers    http.Header    // set on every request to it; nil when none
	next       *atomic.Uint64 // round-robin position, shared by copies
}

// The ways a provider takes its key (HostConfig.Auth).
var hostAuths = map[string][2]string{
	"bearer":    {"Authorization", "Bearer "},
	"api-key":   {"Api-Key", ""},
	"x-api-key": {"X-Api-Key", ""},
}

// newHost resolves a configured host, expanding placeholders in keys.
func newHost(c HostConfig, repl *caddy.Replacer) (*host, error) {
	base := c.BaseURL
	if base == "" {
		if c.Name == "" {
			return nil, fmt.Errorf("a name or a base_url is required")
		}
		base = keystore.DefaultBaseURL(c.Name)
	}
	u, err := parseBaseURL(base)
	if err != nil {
		return nil, err
	}
	if c.Name != "" {
		u.name = strings.ToLower(c.Name)
	}
	for _, k := range c.Keys {
		k = strings.TrimSpace(repl.ReplaceKnown(k, ""))
		if k != "" {
			u.keys = append(u.keys, k)
		}
	}
	if c.Models != nil {
		if err := keystore.ValidModelPatterns(c.Models); err != nil {
			return nil, err
		}
		u.models = c.Models
	}
	if c.Auth != "" {
		auth, ok := hostAuths[c.Auth]
		if !ok {
			return nil, fmt.Errorf("auth %q: use bearer, api-key or x-api-key", c.Auth)
		}
		u.authName, u.authPrefix = auth[0], auth[1]
	}
	if c.APIPath != "" {
		p := strings.TrimSuffix(c.APIPath, "/")
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#%") || strings.Contains(p, "//") || strings.Contains(p, "/.") {
			return nil, fmt.Errorf("api_path %q: want a clean path such as /v1beta/openai", c.APIPath)
		}
		u.apiPath = p
	}
	for name, value := range c.Headers {
		canonical := http.CanonicalHeaderKey(name)
		if !isToken(name) || hostHeaderReserved[canonical] {
			return nil, fmt.Errorf("header %q: not a header a host's requests may carry", name)
		}
		if u.headers == nil {
			u.headers = make(http.Header)
		}
		u.headers.Set(canonical, repl.ReplaceKnown(value, ""))
	}
	return u, nil
}

// isToken reports whether s is an HTTP token (RFC 9110), as a header name
// must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// hostHeaderReserved are the headers aiproxy itself sets on a provider's
// requests: a host's fixed headers cannot replace them.
var hostHeaderReserved = map[string]bool{
	"Host": true, "Authorization": true, "Api-Key": true, "X-Api-Key": true,
	"Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Accept-Encoding": true,
}

// parseBaseURL turns "https://host[:port][/prefix]" into a host with no
// keys, named after the URL's host[:port].
func parseBaseURL(raw string) (*host, error) {
	b, err := keystore.ParseBaseURL(raw)
	if err != nil {
		return nil, err
	}
	return &host{
		name:       b.Host,
		baseURL:    b.String(),
		tls:        b.Scheme == "https",
		dial:       b.Dial(),
		hostHeader: b.Host,
		pathPrefix: b.Path,
		authName:   "Authorization",
		authPrefix: "Bearer ",
		next:       new(atomic.Uint64),
	}, nil
}

// pickKey returns the next key in turn, or "" when the host has none.
func (u *host) pickKey() string {
	switch len(u.keys) {
	case 0:
		return ""
	case 1:
		return u.keys[0]
	}
	n := u.next.Add(1) - 1
	return u.keys[n%uint64(len(u.keys))]
}

// configuredHosts are the hosts the config names: the default upstream and
// the named hosts.
type configuredHosts struct {
	defaultHost *host
	hosts       []*host
}

// forAdmin lists them for the admin API, the default upstream first.
func (s configuredHosts) forAdmin() []admin.ConfiguredHost {
	out := make([]admin.ConfiguredHost, 0, len(s.hosts)+1)
	for i, u := range append([]*host{s.defaultHost}, s.hosts...) {
		out = append(out, admin.ConfiguredHost{Name: u.name, BaseURL: u.baseURL, Default: i == 0, Keys: u.keys, Models: u.models})
	}
	return out
}

// hostSnapshot is an immutable view of every known host, swapped
// atomically so the request path never locks.
type hostSnapshot struct {
	defaultHost *host
	byName      map[string]*host
	byModel     modelRoutes // which host serves which model
}

// hostTable merges the configured hosts with those registered in the store
// and keeps an in-memory snapshot, so that a proxied request costs no store
// read for choosing its host.
type hostTable struct {
	configured configuredHosts
	store      keystore.Store
	logger     *zap.Logger

	current atomic.Pointer[hostSnapshot]
	mu      sync.Mutex // serialises reloads
}

func newHostTable(configured configuredHosts, store keystore.Store, logger *zap.Logger) *hostTable {
	t := &hostTable{configured: configured, store: store, logger: logger}
	t.current.Store(t.build(nil))
	return t
}

// snapshot returns the current view.
func (t *hostTable) snapshot() *hostSnapshot {
	return t.current.Load()
}

// lookup returns the host registered under name (exact, case-insensitive).
func (s *hostSnapshot) lookup(name string) *host {
	if u, ok := s.byName[name]; ok {
		return u
	}
	return s.byName[strings.ToLower(name)]
}

// choose returns the host a request goes to: the one X-Host-Final names
// (nil when none has that name), else the one serving its model, else the
// default upstream.
func (s *hostSnapshot) choose(selected, model string) *host {
	if selected != "" {
		return s.lookup(selected)
	}
	if u := s.byModel.host(model); u != nil {
		return u
	}
	return s.defaultHost
}

// reload reads the stored hosts and swaps in a new snapshot.
func (t *hostTable) reload(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	stored, err := t.store.ListHosts(ctx)
	if err != nil {
		return err
	}
	t.current.Store(t.build(stored))
	return nil
}

// invalidate reloads at once; the admin API calls it after changing hosts.
func (t *hostTable) invalidate() {
	if err := t.reload(context.Background()); err != nil {
		t.logger.Warn("reloading hosts after a change failed; will retry", zap.Error(err))
	}
}

// refreshEvery reloads on each tick until ctx ends, so changes made by other
// instances sharing the store take effect.
func (t *hostTable) refreshEvery(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	outage := newOutageLog(t.logger, zapcore.WarnLevel,
		"refreshing hosts from the store failed; serving the last known hosts",
		"refreshing hosts from the store works again")
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := t.reload(ctx); err != nil {
				outage.fail(err)
			} else {
				outage.ok()
			}
		}
	}
}

// build merges configured hosts with stored ones. A stored host with the
// name of a configured one adds its keys to it; the config's base URL stays
// (the admin API refuses to store another, and an older release's is
// ignored).
func (t *hostTable) build(stored []keystore.Host) *hostSnapshot {
	byName := make(map[string]*host, len(t.configured.hosts)+len(stored)+1)
	add := func(u *host) {
		cp := *u
		cp.keys = append([]string(nil), u.keys...)
		byName[cp.name] = &cp
	}
	add(t.configured.defaultHost)
	for _, u := range t.configured.hosts {
		add(u)
	}
	for _, sh := range stored {
		name := strings.ToLower(sh.Name)
		u, ok := byName[name]
		if !ok {
			parsed, err := parseBaseURL(sh.EffectiveBaseURL())
			if err != nil {
				t.logger.Warn("ignoring stored host with a bad base URL",
					zap.String("host", sh.Name), zap.Error(err))
				continue
			}
			parsed.name = name
			u = parsed
			byName[name] = u
		}
		for _, k := range sh.Keys {
			u.keys = append(u.keys, k.Key)
		}
		if !ok {
			u.models = sh.Models // a configured host's are the config's
		}
	}
	// Routes in config order, then the stored hosts by name.
	order := make([]*host, 0, len(byName))
	order = append(order, byName[t.configured.defaultHost.name])
	for _, u := range t.configured.hosts {
		order = append(order, byName[u.name])
	}
	for _, sh := range stored {
		if u := byName[strings.ToLower(sh.Name)]; u != nil && !slices.Contains(order, u) {
			order = append(order, u)
		}
	}
	return &hostSnapshot{defaultHost: byName[t.configured.defaultHost.name], byName: byName,
		byModel: newModelRoutes(order)}
}
