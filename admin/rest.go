package admin

import (
	"fmt"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
)

// ServeREST handles a request whose path is /admin or starts with /admin/,
// authenticated with "Authorization: Bearer <admin_token>". It always writes
// a response: JSON on success, an OpenAI-shaped error otherwise (401 before
// anything else for a missing or wrong token, so that unauthenticated callers
// learn nothing about the routes). A client that sent too many wrong tokens
// gets 429 for a while, whatever it sends (see authThrottle).
//
// Routes:
//
//	POST   /admin/users                  {"name","ttl"?,"expires_at"?,"models"?,"limits"?,"budget"?} -> 201 issued user
//	GET    /admin/users                  -> {"data":[user...]}
//	GET    /admin/users/{name}           -> user
//	PATCH  /admin/users/{name}           {"ttl"?,"expires_at"?|null,"models"?,"limits"?,"budget"?} -> user
//	DELETE /admin/users/{name}           -> {"name","deleted":true}
//	POST   /admin/users/{name}/reset     -> issued user
//	GET    /admin/hosts                  -> {"data":[host...]}
//	POST   /admin/hosts/{host}/keys      {"key","base_url"?} -> 201 {"id","host","base_url"}
//	DELETE /admin/hosts/{host}/keys/{id} -> {"deleted":true}
//	PATCH  /admin/hosts/{host}           {"models":[...]|null} -> host (stored hosts only)
//	DELETE /admin/hosts/{host}           -> {"deleted":true}
//	POST   /admin/hosts/{host}/restore   -> {"host","restored"}: resting and set-aside keys in use again
//	GET    /admin/usage                  -> usage rows, JSON or CSV
//	GET    /admin/requests?user=&limit=  -> {"data":[request...]}, the request log, newest first
//
// A user is {"name","id","key_hint","created_at","expires_at","models",
// "limits","budget"} (expires_at null when the key never expires; the
// policy fields null when the site's defaults apply); GET of one user adds
// "spend", the policy in force and what is left of it. An issued user adds
// "key", the only time a key is ever shown. A host is {"name","base_url","keys":[{"id","key_hint"}]}.
// A request is {"time","user","model","host","path","status",
// "prompt_tokens","completion_tokens","cost_usd","duration_ms","stream"}
// (RequestObject).
func (h *Handler) ServeREST(w http.ResponseWriter, r *http.Request) {
	h.setup()
	// Answers carry keys or user data, and errors must not be cached either.
	w.Header().Set("Cache-Control", "no-store")

	client := h.clientOf(r)
	if wait := h.throttle.blocked(client); wait > 0 {
		writeThrottled(w, wait)
		return
	}
	if e := h.authenticate(r); e != nil {
		if r.Header.Get("Authorization") != "" {
			h.authFailed(client) // a token was tried
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="aiproxy admin"`)
		writeError(w, e)
		return
	}
	h.throttle.succeed(client)
	// ServeMux would redirect an unclean path (double slash, dot segment) in
	// plain text; such a path is no admin route anyway.
	if !isCleanPath(r.URL.EscapedPath()) {
		notFound(w, r)
		return
	}
	h.restMux.ServeHTTP(w, r)
}

// authenticate checks the admin token in the Authorization header.
func (h *Handler) authenticate(r *http.Request) *adminError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return unauthorized("missing admin token; send Authorization: Bearer <admin_token>")
	}
	scheme, token, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") || !h.tokenMatches(strings.TrimSpace(token)) {
		return unauthorized("invalid admin token")
	}
	return nil
}

func unauthorized(msg string) *adminError {
	return &adminError{
		status:  http.StatusUnauthorized,
		errType: apierror.TypeAuthentication,
		code:    "invalid_admin_token",
		msg:     msg,
	}
}

// newRESTMux builds the REST routes. Patterns carry no method: methods
// dispatches on it, so that every 404 and 405 is JSON, never ServeMux's plain
// text.
func (h *Handler) newRESTMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/admin/users", methods{
		http.MethodGet:  h.handleListUsers,
		http.MethodPost: h.handleCreateUser,
	})
	mux.Handle("/admin/users/{name}", methods{
		http.MethodGet:    h.handleGetUser,
		http.MethodPatch:  h.handlePatchUser,
		http.MethodDelete: h.handleDeleteUser,
	})
	mux.Handle("/admin/users/{name}/reset", methods{
		http.MethodPost: h.handleResetUser,
	})
	mux.Handle("/admin/hosts", methods{
		http.MethodGet: h.handleListHosts,
	})
	mux.Handle("/admin/hosts/{host}", methods{
		http.MethodPatch:  h.handlePatchHost,
		http.MethodDelete: h.handleDeleteHost,
	})
	mux.Handle("/admin/hosts/{host}/keys", methods{
		http.MethodPost: h.handleAddHostKey,
	})
	mux.Handle("/admin/hosts/{host}/keys/{id}", methods{
		http.MethodDelete: h.handleDeleteHostKey,
	})
	mux.Handle("/admin/hosts/{host}/restore", methods{
		http.MethodPost: h.handleRestoreKeys,
	})
	mux.Handle("/admin/usage", methods{
		http.MethodGet: h.serveUsage,
	})
	mux.Handle("/admin/requests", methods{
		http.MethodGet: h.serveRequests,
	})
	mux.HandleFunc("/", notFound)
	return mux
}

// methods routes one path by request method and answers any other method
// with a JSON 405 and an Allow header.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if handle, ok := m[r.Method]; ok {
		handle(w, r)
		return
	}
	allowed := slices.Sorted(maps.Keys(m))
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	apierror.Write(w, http.StatusMethodNotAllowed, apierror.TypeInvalidRequest, "method_not_allowed",
		fmt.Sprintf("method %s is not allowed here; use %s", r.Method, strings.Join(allowed, " or ")))
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	apierror.Write(w, http.StatusNotFound, apierror.TypeNotFound, "unknown_route", "unknown admin API path")
}

// isCleanPath reports whether p is already in the form ServeMux routes
// without redirecting.
func isCleanPath(p string) bool {
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean == p
}

// writeError sends e as an OpenAI-shaped error.
func writeError(w http.ResponseWriter, e *adminError) {
	apierror.Write(w, e.status, e.errType, e.code, e.msg)
}

// pathUser returns the valid user name from the {name} path segment, which
// ServeMux has already percent-decoded.
func pathUser(r *http.Request) (string, *adminError) {
	name := r.PathValue("name")
	if err := keystore.ValidUserName(name); err != nil {
		return "", invalid("invalid_name", err)
	}
	return name, nil
}

// pathHost returns the valid, lowercased host from the {host} path segment.
func (h *Handler) pathHost(r *http.Request) (string, *adminError) {
	return h.checkHost(r.PathValue("host"))
}

// checkHost lowercases host, as X-Host-Final matching is exact, and
// validates it.
func (h *Handler) checkHost(host string) (string, *adminError) {
	host = strings.ToLower(host)
	if err := h.validHost(host); err != nil {
		return "", invalid("invalid_host", err)
	}
	return host, nil
}
