package aiproxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/meter"
)

// serveProxy authenticates the user, picks the upstream and hands the
// request to Caddy's reverse_proxy. Errors are written here as OpenAI-shaped
// JSON, never returned: Caddy's error log would otherwise record the request
// with headers that may hold a key.
func (h *Handler) serveProxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	user, ok := h.authenticate(w, r)
	if !ok {
		return nil
	}
	policy := h.userPolicy(user)

	snap := h.hosts.snapshot()
	sel := r.Header.Get("X-Host-Final")
	// The body is read for its model also when the model picks the host.
	routed := sel == "" && (snap.byModel.any || h.aliases != nil)
	r, mr, held := inspectRequest(r, h.inspect, policy.Models != nil || routed)
	defer held.release() // if the upstream never read it
	switch {
	case routed && mr.busy:
		writeServerBusy(w) // its model, unread, may pick another host
		return nil
	case routed && mr.tooLarge:
		// Sent to the default upstream, a body meant for another host
		// (an on-premises one, say) would go where it must not.
		apierror.Write(w, http.StatusRequestEntityTooLarge, apierror.TypeInvalidRequest, "request_too_large",
			fmt.Sprintf("The request body is larger than the %d MiB the gateway reads to route it by its model; name its host with X-Host-Final.", maxInspectedBody>>20))
		return nil
	}
	up := snap.choose(sel, mr.model)
	if to, ok := h.aliases[mr.model]; ok && sel == "" {
		// The alias's host; the provider gets its own name for the model.
		if aliased, edited := applyAlias(r, held, to); edited {
			r, up, mr.alias = aliased, snap.lookup(to.host), mr.model
		}
	}
	if up == nil {
		apierror.Write(w, http.StatusBadRequest, apierror.TypeInvalidRequest, "unknown_host",
			fmt.Sprintf("X-Host-Final: %q is not a registered upstream host", truncate(sel, 100)))
		return nil
	}
	key := h.health.pick(up)
	if key == "" {
		h.logger.Error("no upstream key configured", zap.String("host", up.name))
		apierror.Write(w, http.StatusServiceUnavailable, apierror.TypeServer, "no_upstream_key",
			fmt.Sprintf("the gateway has no API key for upstream %s", up.name))
		return nil
	}

	ctx := r.Context()
	caddyhttp.SetVar(ctx, VarUser, user.Name)
	if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// Shows the user in access logs as user_id, like Caddy's own auth.
		repl.Set("http.auth.user.id", user.Name)
	}

	if routed && isModelList(r) {
		// Models come from several hosts: one list of them all.
		h.serveModelUnion(w, r, snap, policy.Models)
		return nil
	}
	r, adm, ok := h.holdToPolicy(w, r, user, policy, mr, held)
	if !ok {
		return nil
	}
	listing := policy.Models != nil && isModelList(r) // on the client's path
	withoutClientKey(r.Header)
	withoutRelayHeaders(r.Header)
	if !h.ForwardBrowserHeaders {
		withoutBrowserIdentity(r.Header)
	}
	r = withoutKeyProtocol(r)
	upgrade := isUpgrade(r)
	// A gzipped answer passes to the client as it came, unless it is to
	// be edited (a stream the meter strips, a model list filtered); an
	// upgrade carries no answer body.
	setUpstreamEncoding(r.Header, !mr.strip && !listing && !upgrade, (mr.strip || listing) && !upgrade)
	if upgrade {
		// The key is checked again while the connection lasts.
		sctx, closeSession := h.sessions.open(ctx, user)
		defer closeSession()
		r = r.WithContext(sctx)
	} else {
		h.inflight.start()
		defer h.inflight.done() // after the record below: defers run last first
	}

	// A request whose body can be sent again may go to another key or
	// host when the first answers 429 or 5xx, or cannot be reached.
	plan := attempts{health: h.health, host: up, first: keyRef{up.name, key}, n: 1, max: h.maxAttempts()}
	if sel == "" && mr.alias == "" && snap.byModel.any {
		plan.others = snap.byModel.others(mr.model, up)
	}
	// Only a request with somewhere else to go pays for going there, and
	// only a small body is kept for it, so that a long answer does not
	// hold a large body in inspect_memory.
	replay := !upgrade && plan.more() &&
		(r.Body == nil || r.Body == http.NoBody || held.replayable() && held.size() <= maxReplayedBody)
	var base http.Header  // the client's answer headers before any try
	var replayed [][]byte // the body's pieces, kept to send again
	var replayedSize int64
	if replay {
		base = w.Header().Clone()
		plan.start = time.Now()
		if r.Body != nil && r.Body != http.NoBody {
			replayed, replayedSize = held.pieceList(), held.size()
		}
	}

	var pw *proxyWriter
	mr.path = r.URL.Path
	// Deferred: Caddy's proxy panics with http.ErrAbortHandler to cut off
	// a response it cannot complete (a client gone mid-stream), and such a
	// request must be counted too, once, whatever the tries.
	defer func() { h.record(user, mr, pw, adm) }()
	for try := (attempt{up, key}); ; {
		var following attempt // the try after this one, once taken
		pw = h.newProxyWriter(w, mr, adm, policy, listing)
		if replay {
			pw.nextTry = func() (ok bool) {
				following, ok = plan.next()
				return ok
			}
		}
		tr := r
		if replayed != nil {
			// Once up, the body gives its inspect_memory back: only this
			// small copy waits for a retry, not a whole body per answer
			// being generated.
			tr = withBody(r, newReplayReader(replayed, held.release), replayedSize)
		}
		tr = forHost(tr, try.host)
		mr.host = try.host.name
		caddyhttp.SetVar(ctx, varHostDial, try.host.dial)
		caddyhttp.SetVar(ctx, varHostHeader, try.host.hostHeader)
		caddyhttp.SetVar(ctx, varAuthName, try.host.authName)
		caddyhttp.SetVar(ctx, varAuthPrefix, try.host.authPrefix)
		caddyhttp.SetVar(ctx, varHostKey, try.key)
		err := h.proxies.forHost(try.host).ServeHTTP(pw, tr, next)
		// Only a request that never left is sent again when the host
		// could not be reached: one the provider may have received could
		// run twice there.
		var dial reverseproxy.DialError
		unreachable := err != nil && !pw.wroteHeader && !pw.dropped && ctx.Err() == nil && errors.As(err, &dial)
		switch {
		case pw.dropped:
			h.health.failed(try.host.name, try.key, pw.status, pw.retryAfter)
			restoreHeader(w.Header(), base)
			try = following
			continue
		case unreachable && replay && pw.nextTry():
			h.health.failed(try.host.name, try.key, 0, 0)
			restoreHeader(w.Header(), base)
			try = following
			continue
		case unreachable:
			h.health.failed(try.host.name, try.key, 0, 0)
		case pw.status == http.StatusTooManyRequests || pw.status == http.StatusUnauthorized:
			h.health.failed(try.host.name, try.key, pw.status, retryAfter(w.Header()))
		}
		pw.finish()
		h.answerFailure(w, r, pw, err, try.host, user)
		return nil
	}
}

// maxReplayedBody bounds the body kept, outside inspect_memory, to send a
// request again: chat requests are mostly far smaller.
const maxReplayedBody = 256 << 10

// newProxyWriter is the writer of one try at a request.
func (h *Handler) newProxyWriter(w http.ResponseWriter, mr meteredRequest, adm *admission, policy keystore.Policy, listing bool) *proxyWriter {
	pw := &proxyWriter{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		meter:                 meter.New(mr.kind, mr.strip),
		spend:                 adm,
	}
	if h.cors != nil {
		// ServeHTTP set our CORS headers; the writer puts them back in
		// place of the provider's.
		pw.cors, pw.corsOrigin = h.cors, w.Header().Get("Access-Control-Allow-Origin")
	}
	if listing {
		pw.models = &modelsFilter{allowed: policy.Models}
	}
	return pw
}

// restoreHeader puts the answer's headers back as they were before a try
// whose answer was dropped.
func restoreHeader(hdr, base http.Header) {
	clear(hdr)
	for k, v := range base {
		hdr[k] = v
	}
}

// answerFailure answers, when nothing went out yet, a request whose last
// try failed: a key that stopped being valid, a client gone, an upstream
// that could not be reached.
func (h *Handler) answerFailure(w http.ResponseWriter, r *http.Request, pw *proxyWriter, err error, up *host, user keystore.User) {
	switch cause := context.Cause(r.Context()); {
	case err == nil:
	case errors.Is(cause, errKeyRevoked) || errors.Is(cause, errKeyExpired):
		// The key stopped being valid while the upgrade was under way.
		if !pw.wroteHeader {
			pw.status = http.StatusUnauthorized
			writeKeyNoLongerValid(w, cause)
		}
	case r.Context().Err() != nil:
		// The client went away; there is no one to answer. Caddy's proxy
		// has cancelled the upstream request.
		if !pw.wroteHeader {
			pw.status = statusClientClosed
		}
	default:
		h.logger.Warn("upstream request failed",
			zap.String("host", up.name), zap.String("user", user.Name), zap.Error(err))
		if !pw.wroteHeader {
			// Nothing is out yet: the client gets an error it understands.
			pw.status = writeUpstreamError(w, err, up.name)
		}
	}
}

// statusClientClosed is what metrics call a request whose client left
// before any answer (nginx's convention).
const statusClientClosed = 499

// writeUpstreamError answers a failed upstream round trip and returns the
// status it used.
func writeUpstreamError(w http.ResponseWriter, err error, host string) int {
	status := http.StatusBadGateway
	message := fmt.Sprintf("upstream %s is unreachable", host)
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode == http.StatusGatewayTimeout {
		status = http.StatusGatewayTimeout
		message = fmt.Sprintf("upstream %s timed out", host)
	}
	apierror.Write(w, status, apierror.TypeServer, "upstream_error", message)
	return status
}

// withoutKeyProtocol returns r, or when a browser's Realtime WebSocket
// carries the user's key as a subprotocol, a shallow copy of r whose
// Sec-WebSocket-Protocol list lacks it. The provider authenticates by the
// Authorization header the proxy sets, which, unlike other headers, Caddy's
// debug logs redact. What is left goes as one clean list ("realtime"), and
// the header goes too when nothing is left: an empty or dangling list is a
// malformed handshake.
func withoutKeyProtocol(r *http.Request) *http.Request {
	offered := r.Header.Values("Sec-Websocket-Protocol")
	if !slices.ContainsFunc(offered, func(v string) bool { return strings.Contains(v, realtimeKeyProtocol) }) {
		return r
	}
	var keep []string
	for _, v := range offered {
		for proto := range strings.SplitSeq(v, ",") {
			proto = strings.TrimSpace(proto)
			if proto != "" && !strings.HasPrefix(proto, realtimeKeyProtocol) {
				keep = append(keep, proto)
			}
		}
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	if len(keep) == 0 {
		r2.Header.Del("Sec-Websocket-Protocol")
	} else {
		r2.Header.Set("Sec-Websocket-Protocol", strings.Join(keep, ", "))
	}
	return r2
}

// withoutClientKey takes the client's key out of the request headers, from
// any of those SDKs send it in: the provider's key goes in one of them.
func withoutClientKey(hdr http.Header) {
	delete(hdr, "Authorization")
	delete(hdr, "Api-Key")
	delete(hdr, "X-Api-Key")
}

// withoutRelayHeaders takes out of the request headers the host selector
// and what would tell a provider about the client, which Caddy's proxy does
// not add itself (requestHeadersRemoved has those): a map delete each,
// where a header op would canonicalize each name again per request.
func withoutRelayHeaders(hdr http.Header) {
	delete(hdr, "X-Host-Final")
	delete(hdr, "Cookie")
	delete(hdr, "Forwarded")
	delete(hdr, "X-Real-Ip")
}

// withoutBrowserIdentity takes out of the request headers what tells a
// provider which site and browser a user came from: Origin, Referer,
// Accept-Language, the Sec-Fetch-* and Sec-CH-* (client hints) headers,
// and a browser's User-Agent (one sent with any of those). An SDK's
// User-Agent (OpenAI/Python ...) stays: it names the library, not the
// person.
func withoutBrowserIdentity(hdr http.Header) {
	browser := false
	for name := range hdr {
		if strings.HasPrefix(name, "Sec-Fetch-") || strings.HasPrefix(name, "Sec-Ch-") {
			delete(hdr, name)
			browser = true
		}
	}
	if _, ok := hdr["Origin"]; ok {
		browser = true
	}
	delete(hdr, "Origin")
	delete(hdr, "Referer")
	delete(hdr, "Accept-Language")
	if browser {
		delete(hdr, "User-Agent")
	}
}

// forHost returns r as host u takes it: the client's /v<N> replaced by
// the host's API path, its base URL's path in front, its fixed headers set.
func forHost(r *http.Request, u *host) *http.Request {
	if u.apiPath != "" {
		r = withAPIPath(r, u.apiPath)
	}
	if u.pathPrefix != "" {
		r = withPathPrefix(r, u.pathPrefix)
	}
	if u.headers != nil {
		r2 := new(http.Request)
		*r2 = *r
		r2.Header = r.Header.Clone()
		for k, v := range u.headers {
			r2.Header[k] = v
		}
		r = r2
	}
	return r
}

// withAPIPath returns a shallow copy of r whose leading /v<N> (or
// /openai/v<N>) is apiPath; other paths are left as they are.
func withAPIPath(r *http.Request, apiPath string) *http.Request {
	path := r.URL.Path
	rest := strings.TrimPrefix(path, "/openai")
	v, after, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if !isVersionSegment(v) {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path = apiPath + "/" + after
	u.RawPath = ""
	r2.URL = &u
	return r2
}

// withPathPrefix returns a shallow copy of r whose path starts with prefix.
func withPathPrefix(r *http.Request, prefix string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path = prefix + u.Path
	if u.RawPath != "" {
		u.RawPath = prefix + u.RawPath
	}
	r2.URL = &u
	return r2
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
