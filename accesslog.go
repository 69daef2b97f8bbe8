package aiproxy

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// What Caddy's access log can show, and what aiproxy does about it.
//
// Caddy (v2.11) clones the request, headers included, before the first
// handler runs and logs that clone when the request ends
// (caddyhttp.Server.ServeHTTP: LoggableHTTPRequest{Request: r.Clone(...)}).
// A handler therefore cannot take a header or a part of the URL out of the
// entry: changing r changes only what later handlers and the proxy see. What
// a handler can do is drop the whole entry, with the request variable
// caddyhttp.LogSkipVar.
//
// So: a request whose URL holds the admin token is never logged (below).
// Keys in Authorization are redacted by Caddy itself; keys in Api-Key,
// X-Api-Key and the Realtime WebSocket subprotocol need the access log
// filter README shows.

// skipLogIfAdminToken drops the access log entry of a request whose URI as
// sent, percent-decoded path or Referer holds the admin token, whoever
// answers it: a worker route, or the site for a near miss such as
// "//<token>/register/x". It does not allocate.
func (h *Handler) skipLogIfAdminToken(r *http.Request) {
	if holdsToken(r.RequestURI, h.AdminToken) || holdsToken(r.URL.Path, h.AdminToken) ||
		holdsToken(r.URL.RawPath, h.AdminToken) || holdsToken(r.Header.Get("Referer"), h.AdminToken) ||
		holdsToken(originalURI(r), h.AdminToken) {
		caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	}
}

// holdsToken reports whether s contains token, which is never empty.
func holdsToken(s, token string) bool {
	return len(s) >= len(token) && token != "" && strings.Contains(s, token)
}

// originalURI is the request URI the access log shows, before any rewrite
// in front of aiproxy changed r.
func originalURI(r *http.Request) string {
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		return or.RequestURI
	}
	return ""
}
