// Package aiproxy is a Caddy HTTP handler that turns a site into an
// OpenAI-compatible API gateway: users call it with their own sk-cfw... keys,
// it checks the key, swaps in the provider's key and proxies the request
// through Caddy's own reverse_proxy, streaming the answer back.
package aiproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/aiproxy/aiproxy/admin"
	_ "github.com/aiproxy/aiproxy/cli" // the `caddy aiproxy` command
	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/pricing"
	"github.com/aiproxy/aiproxy/ui"
	"github.com/aiproxy/aiproxy/usage"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the aiproxy HTTP handler. It answers, on its site:
//
//   - /v<N>/... and /openai/...: proxied to the upstream provider for any
//     request that carries a valid user key;
//   - /me, /me/reset, /me/usage: self-service with the user's own key;
//   - /admin/ui/, /me/ui/: the admin dashboard and the user page, whose
//     files load without a token;
//   - /admin/...: the JSON admin API (Bearer admin token);
//   - /<admin_token>/...: the original worker's admin routes;
//   - OPTIONS on any of these: CORS preflight.
//
// Every other request goes on to the next handler, so a site can serve other
// content next to the gateway.
type Handler struct {
	// AdminToken authenticates the admin API and the original worker's admin routes.
	// Required, at least 16 characters. Placeholders such as
	// {env.AIPROXY_ADMIN_TOKEN} are expanded at provision time, which keeps
	// the secret out of the adapted config.
	AdminToken string `json:"admin_token,omitempty"`

	// Upstream is where requests go when they carry no X-Host-Final header.
	// Default: https://api.openai.com with no configured keys (keys may then be
	// registered at run time for host api.openai.com).
	Upstream *HostConfig `json:"upstream,omitempty"`

	// Hosts are upstreams a client may pick with the X-Host-Final header,
	// or by the model it asks for (HostConfig.Models), besides those
	// registered at run time through the admin API.
	Hosts []HostConfig `json:"hosts,omitempty"`

	// MaxAttempts bounds the tries of one request, the first included: a
	// request a provider answers with 429 or 5xx, or that cannot reach
	// it, goes again, before anything reached the client, to the host's
	// next key, then to the next host serving its model. A stream is never
	// tried again once its answer started. 1 turns retries off. Default: 3.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// Aliases are public model names that stand for a host's own model:
	// a request for one, without X-Host-Final, goes to its host with the
	// host's model name in the body, and is counted under the alias.
	Aliases []AliasConfig `json:"aliases,omitempty"`

	// StoreRaw configures where users and run-time hosts are kept. Default:
	// {"backend":"file"}, a bbolt file in Caddy's data directory.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=aiproxy.stores inline_key=backend"`

	// CORSOrigins lists the origins browsers may call the API from. Empty
	// means "*" (any origin: keys, not cookies, authenticate requests).
	CORSOrigins []string `json:"cors_origins,omitempty"`

	// DisableCORS turns CORS handling off entirely: no preflight answers and
	// no CORS headers added.
	DisableCORS bool `json:"disable_cors,omitempty"`

	// WorkerRoutes enables the original worker's admin routes, which carry
	// the admin token in the URL path. Default: true.
	WorkerRoutes *bool `json:"seed_admin_paths,omitempty"`

	// ForwardBrowserHeaders sends providers what browsers tell about their
	// users: Origin, Referer, Accept-Language, Sec-Fetch-*, Sec-CH-*, and a
	// browser's User-Agent. Default: false, they are taken out, so a
	// provider cannot tell which site or browser a request came from.
	ForwardBrowserHeaders bool `json:"forward_browser_headers,omitempty"`

	// SelfService lets users reset their own key with POST /me/reset.
	// Default: true. GET /me and GET /me/usage are always available.
	SelfService *bool `json:"self_service,omitempty"`

	// MetricsPerUser puts the user's name in the Prometheus metrics' user
	// label; off leaves the label empty. Turn it off on sites with many
	// users to keep the series few. Default: true.
	MetricsPerUser *bool `json:"metrics_per_user,omitempty"`

	// HostRefreshInterval is how often run-time hosts are re-read from the
	// store, so that changes made on another instance sharing the store take
	// effect. Changes made through this instance apply at once. Default: 5s.
	HostRefreshInterval caddy.Duration `json:"host_refresh_interval,omitempty"`

	// UsageRetention, when set, lets usage statistics older than this go:
	// the Redis store expires whole months once their last day is this old,
	// the file store prunes day by day. Default: kept for ever.
	UsageRetention caddy.Duration `json:"usage_retention,omitempty"`

	// InspectMemory bounds the memory, in bytes, that request bodies held
	// to read their model and streaming options may take at once, all
	// requests of this handler together. A body is held from when it
	// arrives until it has been sent upstream (16 MiB at most each). A
	// request whose body finds no room is proxied as it comes, uninspected:
	// it is counted under the model the answer names, and a stream that did
	// not ask for usage is counted as estimated. Under sustained load the
	// process may hold up to about twice this, as Go's garbage collector
	// lets the heap grow to twice what is live. Default: 64 MiB.
	InspectMemory int64 `json:"inspect_memory,omitempty"`

	// SessionCheckInterval is how often the keys of open WebSocket sessions
	// (the Realtime API) are checked again, so that a session closes soon
	// after its key is reset, deleted or expires, also when that happens on
	// another instance sharing the store. Each check costs one store lookup
	// per distinct key with a session open; changes made through this
	// instance close sessions at once. Default: 2s.
	SessionCheckInterval caddy.Duration `json:"session_check_interval,omitempty"`

	// StreamCloseDelay keeps open WebSocket sessions going for up to this
	// long after a config reload or unload, instead of closing them all at
	// once (Caddy's reverse_proxy stream_close_delay). Their keys are still
	// checked meanwhile. Default: 0, close at once.
	StreamCloseDelay caddy.Duration `json:"stream_close_delay,omitempty"`

	// StreamTimeout, when non-zero, closes every WebSocket session after
	// this long, whatever its key (Caddy's reverse_proxy stream_timeout).
	// Default: no limit.
	StreamTimeout caddy.Duration `json:"stream_timeout,omitempty"`

	// DefaultLimits is the policy of every user, field by field, where the
	// user's own policy leaves a field unset: the models users may call,
	// their rate limits and their budget. A limit of 0 means none. A USD
	// budget counts requests at Prices, so each model it lists by exact
	// name needs a price. Default: none, users are not limited.
	DefaultLimits *keystore.Policy `json:"default_limits,omitempty"`

	// Prices are what models cost, in US dollars per million tokens: the
	// cost counted against USD budgets and shown in usage reports. They
	// are laid over the built-in prices of OpenAI's models (package
	// pricing, as of pricing.DefaultPricesDate), replacing a built-in
	// price of the same pattern. A model without a price shows no cost in
	// usage reports.
	Prices []PriceConfig `json:"prices,omitempty"`

	// RequestLogSize is how many of the latest proxied requests the
	// request log keeps (GET /admin/requests): time, user, model, host,
	// path, status, tokens, cost, duration and whether it streamed, never
	// a body, a key or a header. From 1 to 1,000,000. Records are written
	// to the store in batches, once a second. Default: 10,000.
	RequestLogSize int `json:"request_log_size,omitempty"`

	// DisableRequestLog turns the request log off: nothing is written, and
	// GET /admin/requests answers 404.
	DisableRequestLog bool `json:"disable_request_log,omitempty"`

	store       keystore.Store
	prices      *pricing.Table // the default prices and the configured ones
	aliases     map[string]aliasTarget
	health      *keyHealth    // provider keys resting or set aside
	modelLists  *modelLists   // hosts' model lists, for one list of them all
	reports     chan struct{} // one token per usage report running
	selfReports *reportPace   // paces each user's own reports
	hosts       *hostTable
	proxies     hostProxies
	cors        *corsPolicy
	inspect     *inspectBudget // bounds the request bodies held for inspection
	admin       *admin.Handler
	ui          ui.Handler
	usage       *usage.Aggregator
	requestLog  *requestLog       // nil: the request log is off
	settler     *settler          // settles admissions off the request path
	models      *usage.ModelBound // bounds the models usage is counted under
	metrics     *metrics
	sessions    *sessionTable
	logger      *zap.Logger
	// lookupLog logs a store outage once, not at every request it fails.
	lookupLog *outageLog

	adminTokenRaw string    // AdminToken as configured, before expansion
	hostsRead     bool      // the store's hosts were read at provision
	cleanedUp     bool      // Caddy calls Cleanup once; a failed Provision too
	inflight      *inflight // set by Provision
}

// HostConfig is one upstream provider.
type HostConfig struct {
	// Name is the host name clients put in X-Host-Final. Default: the host
	// (and port, if any) of BaseURL. Required when BaseURL is empty.
	Name string `json:"name,omitempty"`

	// BaseURL is the provider's origin, optionally with a path prefix that
	// is put in front of every proxied path, e.g. "https://api.openai.com"
	// or "http://10.0.0.5:8000/llm". Default: "https://" + Name.
	BaseURL string `json:"base_url,omitempty"`

	// Keys are the provider API keys; requests are spread over them in
	// turn. Placeholders such as {env.OPENAI_API_KEY} are expanded at
	// provision time.
	Keys []string `json:"keys,omitempty"`

	// Models are the models this host serves: exact names or globs with
	// '*' ('*' also matches '/'). A request without X-Host-Final whose
	// body names a matching model goes here: an exact name before any
	// glob, the glob with the most characters that are not wildcards
	// before the others, and the first host in config order on a tie.
	// Requests that name no model go to the default upstream.
	Models []string `json:"models,omitempty"`

	// Auth is how the provider takes its key: "bearer" (Authorization:
	// Bearer <key>, the default), "api-key" (Azure OpenAI's api-key
	// header) or "x-api-key".
	Auth string `json:"auth,omitempty"`

	// APIPath is the provider's path for the client's /v1, when it is not
	// /v1: e.g. "/v1beta/openai" for Google Gemini, whose OpenAI-compatible
	// API is at /v1beta/openai/chat/completions. Default: /v1 stays /v1.
	APIPath string `json:"api_path,omitempty"`

	// Headers are set on every request to this host, e.g. OpenRouter's
	// HTTP-Referer and X-Title. Placeholders such as {env.NAME} are
	// expanded at provision time.
	Headers map[string]string `json:"headers,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.aiproxy",
		New: func() caddy.Module { return new(Handler) },
	}
}

// defaultUpstream is used when the config names none.
const defaultUpstream = "https://api.openai.com"

const defaultHostRefresh = 5 * time.Second

// Provision sets up the store, the upstream table and the nested proxies.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.lookupLog = newOutageLog(h.logger, zapcore.ErrorLevel,
		"key lookups fail; requests get 503 store_unavailable until the store answers",
		"key lookups work again")
	repl := caddy.NewReplacer()
	h.adminTokenRaw = h.AdminToken
	h.AdminToken = repl.ReplaceKnown(h.AdminToken, "")

	configured, err := h.resolveHosts(repl)
	if err != nil {
		return err
	}

	if h.aliases, err = resolveAliases(h.Aliases, configured); err != nil {
		return err
	}
	if h.prices, err = h.priceTable(); err != nil {
		return err
	}
	if h.DefaultLimits != nil {
		if err := validateDefaultLimits(h.DefaultLimits, h.prices); err != nil {
			return err
		}
	}

	if err := checkRequestLogSize(h.RequestLogSize); err != nil {
		return err
	}

	if h.StoreRaw == nil {
		h.StoreRaw = json.RawMessage(`{"backend":"file"}`)
	}
	h.store, err = loadStore(ctx, h.StoreRaw)
	if err != nil {
		return err
	}

	h.proxies, err = loadHostProxies(ctx, streamOptions{
		closeDelay: h.StreamCloseDelay,
		timeout:    h.StreamTimeout,
	})
	if err != nil {
		return err
	}

	if !h.DisableCORS {
		h.cors = newCORSPolicy(h.CORSOrigins)
	}

	h.inspect = &inspectBudget{limit: h.InspectMemory}
	if h.InspectMemory == 0 {
		h.inspect.limit = defaultInspectMemory
	}

	h.health = newKeyHealth()
	h.modelLists = newModelLists(h.logger)
	h.hosts = newHostTable(configured, h.store, h.logger)
	// A store that is down at start must not keep Caddy from starting:
	// configured hosts work, and the refresh loop retries.
	if err := h.hosts.reload(ctx); err != nil {
		h.logger.Warn("reading run-time hosts from the store failed; will retry", zap.Error(err))
	} else {
		h.hostsRead = true
	}
	interval := time.Duration(h.HostRefreshInterval)
	if interval <= 0 {
		interval = defaultHostRefresh
	}
	// The context ends when this config is unloaded, stopping the loop.
	go h.hosts.refreshEvery(ctx, interval)

	h.metrics, err = newMetrics(ctx.GetMetricsRegistry(), h.MetricsPerUser == nil || *h.MetricsPerUser)
	if err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	h.models = new(usage.ModelBound)
	h.usage = usage.NewAggregator(h.store, h.logger.Named("usage"), 0)
	h.usage.Retention = time.Duration(h.UsageRetention)
	if !h.DisableRequestLog {
		h.requestLog = newRequestLog(h.store, h.requestLogSize(), h.logger.Named("request_log"), h.metrics.requestLogDropped)
		h.usage.Siblings = append(h.usage.Siblings, h.requestLog)
	}
	h.usage.Start()
	h.settler = newSettler(h.store, h.logger.Named("spend"))
	h.reports = make(chan struct{}, maxConcurrentReports)
	h.selfReports = new(reportPace)
	h.inflight = new(inflight)

	check := time.Duration(h.SessionCheckInterval)
	if check <= 0 {
		check = defaultSessionCheck
	}
	h.sessions = newSessionTable(h.store, check, h.logger)

	h.ui = ui.Handler{SelfReset: h.selfReset()}
	h.admin = &admin.Handler{
		Store:           h.store,
		Token:           h.AdminToken,
		Logger:          h.logger.Named("admin"),
		HostsChanged:    h.hosts.invalidate,
		ConfiguredHosts: configured.forAdmin(),
		UsersChanged:    h.sessions.recheck,
		Usage:           h.queryUsage,
		CheckPolicy:     h.checkPolicy,
		KeyState:        h.health.report,
		RestoreKeys:     h.health.restore,
		Spend:           h.spendObject,
		ClientIP:        clientIP,
	}
	if h.requestLog != nil {
		h.admin.Requests = h.requestLog.recent
		h.admin.RequestLogSize = h.requestLog.keep
	}
	return nil
}

// clientIP is the client address Caddy found for r: the remote address, or
// the one a trusted proxy forwarded (the server's trusted_proxies).
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// configuredHosts resolves the configured default upstream and hosts.
func (h *Handler) resolveHosts(repl *caddy.Replacer) (configuredHosts, error) {
	def := HostConfig{BaseURL: defaultUpstream}
	if h.Upstream != nil {
		def = *h.Upstream
	}
	if def.BaseURL == "" && def.Name == "" {
		def.BaseURL = defaultUpstream
	}
	var s configuredHosts
	var err error
	s.defaultHost, err = newHost(def, repl)
	if err != nil {
		return s, fmt.Errorf("upstream: %v", err)
	}
	for i, hc := range h.Hosts {
		u, err := newHost(hc, repl)
		if err != nil {
			return s, fmt.Errorf("hosts[%d]: %v", i, err)
		}
		s.hosts = append(s.hosts, u)
	}
	return s, nil
}

// inflightWait bounds how long Cleanup waits for proxied requests still
// running to end, so their usage is in the last flush.
const inflightWait = 10 * time.Second

// Cleanup writes the usage counted but not yet stored, so a config reload or
// a graceful shutdown loses nothing, then releases the store. It also runs
// after a failed Provision, so it copes with a half-built handler.
func (h *Handler) Cleanup() error {
	if h.cleanedUp {
		return nil
	}
	h.cleanedUp = true
	var err error
	if h.usage != nil {
		ctx, cancel := context.WithTimeout(context.Background(), inflightWait)
		if h.inflight != nil && !h.inflight.wait(ctx) {
			h.logger.Warn("requests still running after the config was stopped; their usage is written when they end, if the process still runs")
		}
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		err = h.usage.Close(ctx)
		cancel()
	}
	if h.settler != nil {
		h.settler.close() // before the store goes
	}
	if h.store != nil {
		err = errors.Join(err, closeStore(h.store))
	}
	return err
}

// Validate checks the provisioned configuration, then logs what it runs with.
func (h *Handler) Validate() error {
	if h.MaxAttempts < 0 {
		return fmt.Errorf("max_attempts: %d is negative; want 1 or more (1: no retries)", h.MaxAttempts)
	}
	if h.InspectMemory < 0 {
		return fmt.Errorf("inspect_memory: %d is negative; want a size such as 64MiB", h.InspectMemory)
	}

	if err := checkAdminToken(h.adminTokenRaw, h.AdminToken); err != nil {
		return err
	}
	h.logStart()
	return nil
}

// checkAdminToken checks the expanded admin token; raw is the configured
// value, to name the environment variable an empty or short token came from.
func checkAdminToken(raw, token string) error {
	env := envPlaceholder(raw)
	switch {
	case strings.TrimSpace(raw) == "":
		return fmt.Errorf("admin_token is required: set it to a random secret of at least %d characters, e.g. admin_token {env.AIPROXY_ADMIN_TOKEN}",
			admin.MinTokenLength)
	case strings.TrimSpace(token) == "" && env != "":
		return fmt.Errorf("admin_token is empty: is %s set?", env)
	}
	if err := admin.ValidToken(token); err != nil {
		if env != "" {
			return fmt.Errorf("admin_token (from {env.%s}): %v", env, err)
		}
		return fmt.Errorf("admin_token: %v", err)
	}
	return nil
}

// envPlaceholder returns the name of the first environment variable s
// refers to as {env.NAME}, or "".
func envPlaceholder(s string) string {
	_, rest, ok := strings.Cut(s, "{env.")
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, "}")
	if !ok {
		return ""
	}
	return name
}

// ServeHTTP routes the request to the proxy, the admin API or the seed admin
// routes, or passes it on. A non-canonical path of ours is refused first
// (see pathFault).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.skipLogIfAdminToken(r)
	route, fault := canonicalRoute(r.URL.Path)
	if fault != "" && route == routeNone {
		return next.ServeHTTP(w, r) // the site's, and never a worker route
	}
	if route == routeNone && isRootAPIRequest(r) {
		route = routeWrongURL // an app's POST /, not a visitor's GET
	}
	if route == routeUI && fault == "" {
		// Same-origin pages: no CORS, and no token to load them.
		h.ui.ServeHTTP(w, r)
		return nil
	}
	if route != routeNone && h.cors != nil {
		if r.Method == http.MethodOptions {
			h.cors.preflight(w, r)
			return nil
		}
		// Errors too need CORS headers, or browsers hide them from apps.
		h.cors.decorate(w.Header(), h.cors.allowOrigin(r))
	}
	if fault != "" {
		// Before any key check or upstream choice: nothing is dialed.
		writePathFault(w, r, fault)
		return nil
	}
	switch route {
	case routeProxy:
		return h.serveProxy(w, r, next)
	case routeSelf:
		h.serveSelf(w, r)
		return nil
	case routeAdmin:
		h.admin.ServeREST(w, r)
		return nil
	case routeNoVersion:
		writeMissingVersion(w, r)
		return nil
	case routeWrongURL:
		mistake := urlMistake(r.URL.Path)
		if mistake == "" {
			mistake = mistakeSiteRoot
		}
		writeURLMistake(w, r, mistake)
		return nil
	}
	if h.workerRoutes() && h.admin.ServeWorkerRoutes(w, r) {
		return nil // not logged: the path holds the token
	}
	return next.ServeHTTP(w, r)
}

// requestLogSize is RequestLogSize or its default.
func (h *Handler) requestLogSize() int {
	if h.RequestLogSize == 0 {
		return defaultRequestLogSize
	}
	return h.RequestLogSize
}

// maxAttempts is MaxAttempts or its default.
func (h *Handler) maxAttempts() int {
	if h.MaxAttempts <= 0 {
		return defaultMaxAttempts
	}
	return h.MaxAttempts
}

func (h *Handler) workerRoutes() bool {
	return h.WorkerRoutes == nil || *h.WorkerRoutes
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
