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
	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/meter"
)

// storeTimeout bounds every store call made while serving a request, so a
// dead store answers 503 quickly instead of hanging the client.
const storeTimeout = time.Second

// serveProxy authenticates the user, picks the upstream and hands the
// request to Caddy's reverse_proxy. Errors are written here as OpenAI-shaped
// JSON, never returned: Caddy's error log would otherwise record the request
// with headers that may hold a key. corsOrigin is the request's
// Access-Control-Allow-Origin value ("" for none).
func (h *Handler) serveProxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, corsOrigin string) error {
	user, ok := h.authenticate(w, r)
	if !ok {
		return nil
	}

	snap := h.hosts.snapshot()
	up := snap.defaultHost
	if sel := r.Header.Get("X-Host-Final"); sel != "" {
		up = snap.lookup(sel)
		if up == nil {
			apierror.Write(w, http.StatusBadRequest, apierror.TypeInvalidRequest, "unknown_host",
				fmt.Sprintf("X-Host-Final: %q is not a registered upstream host", truncate(sel, 100)))
			return nil
		}
	}
	key := up.pickKey()
	if key == "" {
		h.logger.Error("no upstream key configured", zap.String("host", up.name))
		apierror.Write(w, http.StatusServiceUnavailable, apierror.TypeServer, "no_upstream_key",
			fmt.Sprintf("the gateway has no API key for upstream %s", up.name))
		return nil
	}

	ctx := r.Context()
	caddyhttp.SetVar(ctx, varUpstreamDial, up.dial)
	caddyhttp.SetVar(ctx, varUpstreamHost, up.hostHeader)
	caddyhttp.SetVar(ctx, varUpstreamKey, key)
	caddyhttp.SetVar(ctx, VarUser, user.Name)
	if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// Shows the user in access logs as user_id, like Caddy's own auth.
		repl.Set("http.auth.user.id", user.Name)
	}

	r, mr := inspectRequest(r)
	if up.pathPrefix != "" {
		r = withPathPrefix(r, up.pathPrefix)
	}
	r = withoutKeyProtocol(r)
	if isUpgrade(r) {
		// The key is checked again while the connection lasts.
		sctx, closeSession := h.sessions.open(ctx, user)
		defer closeSession()
		r = r.WithContext(sctx)
	}

	pw := &proxyWriter{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		meter:                 meter.New(mr.kind, mr.strip),
	}
	if h.cors != nil {
		pw.cors, pw.corsOrigin = h.cors, corsOrigin
	}
	// Deferred: Caddy's proxy panics with http.ErrAbortHandler to cut off
	// a response it cannot complete (a client gone mid-stream), and such a
	// request must be counted too.
	defer h.record(user, mr, pw)
	err := h.proxies.forUpstream(up).ServeHTTP(pw, r, next)
	pw.finish()
	switch cause := context.Cause(r.Context()); {
	case err == nil:
	case errors.Is(cause, errKeyRevoked) || errors.Is(cause, errKeyExpired):
		// The key stopped being valid while the upgrade was under way.
		if !pw.wroteHeader {
			pw.status = http.StatusUnauthorized
			writeKeyNoLongerValid(w, cause)
		}
	case ctx.Err() != nil:
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
	return nil
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

// authenticate checks the user key and writes the error itself when the
// request may not pass.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (keystore.User, bool) {
	key := userKey(r.Header)
	if key == "" {
		apierror.Write(w, http.StatusUnauthorized, apierror.TypeInvalidRequest, "invalid_api_key",
			missingKeyMessage(r.Header.Get("Authorization")))
		return keystore.User{}, false
	}
	// A malformed key cannot be in the store: answer without a lookup.
	if !keystore.IsUserKeyShape(key) {
		writeInvalidKey(w)
		return keystore.User{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	user, err := h.store.LookupKey(ctx, keystore.HashKey(key))
	cancel()
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		h.lookupLog.ok()
		writeInvalidKey(w)
		return user, false
	case err != nil:
		h.lookupLog.fail(err)
		writeStoreUnavailable(w)
		return user, false
	}
	h.lookupLog.ok()
	if !user.ExpiresAt.IsZero() && !time.Now().Before(user.ExpiresAt) {
		apierror.Write(w, http.StatusUnauthorized, apierror.TypeInvalidRequest, "expired_api_key",
			"Your API key expired at "+user.ExpiresAt.UTC().Format(time.RFC3339)+".")
		return user, false
	}
	return user, true
}

// missingKeyMessage explains a request that carries no key userKey finds,
// given its Authorization header: most often a key sent without "Bearer ".
// It never repeats the header, which may hold a key.
func missingKeyMessage(authorization string) string {
	v := strings.TrimSpace(authorization)
	if v == "" || strings.EqualFold(v, "bearer") {
		return "You didn't provide an API key. Send it in an Authorization header: Authorization: Bearer sk-cfw..."
	}
	return "The Authorization header must start with \"Bearer \" before the key: send Authorization: Bearer sk-cfw..."
}

// writeKeyNoLongerValid answers a request whose key stopped being valid
// while it was served (cause errKeyRevoked or errKeyExpired).
func writeKeyNoLongerValid(w http.ResponseWriter, cause error) {
	if errors.Is(cause, errKeyExpired) {
		apierror.Write(w, http.StatusUnauthorized, apierror.TypeInvalidRequest, "expired_api_key",
			"Your API key expired.")
		return
	}
	writeInvalidKey(w)
}

func writeInvalidKey(w http.ResponseWriter) {
	apierror.Write(w, http.StatusUnauthorized, apierror.TypeInvalidRequest, "invalid_api_key",
		"Incorrect API key provided. Ask the gateway's admin for a valid sk-cfw... key.")
}

// userKey returns the key from Authorization: Bearer, api-key (Azure-style
// SDKs), x-api-key (Anthropic-style clients) or, for browsers that cannot set
// headers on a WebSocket, the Realtime API's subprotocol
// "openai-insecure-api-key.<key>", in that order.
func userKey(hdr http.Header) string {
	if v := hdr.Get("Authorization"); v != "" {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
		return ""
	}
	if v := hdr.Get("Api-Key"); v != "" {
		return strings.TrimSpace(v)
	}
	if v := hdr.Get("X-Api-Key"); v != "" {
		return strings.TrimSpace(v)
	}
	for _, v := range hdr.Values("Sec-Websocket-Protocol") {
		for proto := range strings.SplitSeq(v, ",") {
			if key, ok := strings.CutPrefix(strings.TrimSpace(proto), realtimeKeyProtocol); ok {
				return key
			}
		}
	}
	return ""
}

// realtimeKeyProtocol prefixes the key in a browser's Realtime WebSocket
// subprotocol list.
const realtimeKeyProtocol = "openai-insecure-api-key."

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
