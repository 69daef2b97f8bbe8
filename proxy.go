package aiproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
)

// storeTimeout bounds every store call made while serving a request, so a
// dead store answers 503 quickly instead of hanging the client.
const storeTimeout = time.Second

// serveProxy authenticates the user, picks the upstream and hands the
// request to Caddy's reverse_proxy. Errors are written here as OpenAI-shaped
// JSON, never returned: Caddy's error log would otherwise record the request
// with headers that may hold a key.
func (h *Handler) serveProxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
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

	if up.pathPrefix != "" {
		r = withPathPrefix(r, up.pathPrefix)
	}

	tw := &trackingWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := h.proxies.forUpstream(up).ServeHTTP(tw, r, next)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return nil // the client went away; there is no one to answer
	}
	h.logger.Warn("upstream request failed",
		zap.String("host", up.name), zap.String("user", user.Name), zap.Error(err))
	if tw.wroteHeader {
		return nil // part of the answer is out; it cannot become an error now
	}
	status := http.StatusBadGateway
	message := fmt.Sprintf("upstream %s is unreachable", up.name)
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode == http.StatusGatewayTimeout {
		status = http.StatusGatewayTimeout
		message = fmt.Sprintf("upstream %s timed out", up.name)
	}
	apierror.Write(w, status, apierror.TypeServer, "upstream_error", message)
	return nil
}

// authenticate checks the user key and writes the error itself when the
// request may not pass.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (keystore.User, bool) {
	key := userKey(r.Header)
	if key == "" {
		apierror.Write(w, http.StatusUnauthorized, apierror.TypeInvalidRequest, "invalid_api_key",
			"You didn't provide an API key. Send it in an Authorization header: Bearer sk-cfw...")
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
		writeInvalidKey(w)
		return user, false
	case err != nil:
		h.logger.Error("key lookup failed", zap.Error(err))
		apierror.Write(w, http.StatusServiceUnavailable, apierror.TypeServer, "store_unavailable",
			"the gateway's key store is unavailable; try again shortly")
		return user, false
	}
	if !user.ExpiresAt.IsZero() && !time.Now().Before(user.ExpiresAt) {
		apierror.Write(w, http.StatusUnauthorized, apierror.TypeInvalidRequest, "expired_api_key",
			"Your API key expired at "+user.ExpiresAt.UTC().Format(time.RFC3339)+".")
		return user, false
	}
	return user, true
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

// trackingWriter records whether the response has started, so an upstream
// failure is answered with an error only while that is still possible. It
// embeds Caddy's wrapper, whose Unwrap keeps flushing and hijacking (SSE,
// WebSocket) working through http.ResponseController.
type trackingWriter struct {
	*caddyhttp.ResponseWriterWrapper
	wroteHeader bool
}

func (w *trackingWriter) WriteHeader(status int) {
	// 1xx are interim: the final status is still to come (but 101 is final).
	if status >= 200 || status == http.StatusSwitchingProtocols {
		w.wroteHeader = true
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *trackingWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriterWrapper.Write(p)
}

func (w *trackingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wroteHeader = true
	return w.ResponseWriterWrapper.ReadFrom(r)
}
