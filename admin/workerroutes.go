package admin

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aiproxy/aiproxy/keystore"
)

// ServeWorkerRoutes handles the original worker's admin routes, the admin token being
// the first path segment:
//
//	GET|POST /{token}/register/{name}[?ttl=720h]  -> 200 "<key>\n" (an existing user gets a new key)
//	GET|POST /{token}/reset/{name}[?ttl=720h]     -> 200 "<key>\n", 404 for an unknown user
//	DELETE   /{token}/{name}                      -> 200 "OK\n"
//	GET|POST /{token}/addkey/{host}/{key}         -> 200 "OK\n"
//
// Answers are text/plain. When the first segment is not the admin token it
// returns false without writing anything, so that the caller treats the
// request like any other unknown path and a wrong token is not told apart
// from one (no oracle). With the right token it always answers, with 404 for
// an unknown command, and returns true.
//
// Guesses are throttled without an oracle: a first segment that is not the
// token but long enough to be one (MinTokenLength, a public figure) counts
// as a failed authentication of the client, as a wrong REST token does; a
// client refused for too many failures gets the unknown-path answer (false)
// for the right token too, so it cannot tell a right guess from a wrong one
// and guesses at most maxAuthFailures times per failureWindow.
func (h *Handler) ServeWorkerRoutes(w http.ResponseWriter, r *http.Request) bool {
	h.setup()
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/")
	if !ok {
		return false
	}
	first, command, _ := strings.Cut(rest, "/")
	token, err := url.PathUnescape(first)
	if err != nil || !h.tokenMatches(token) {
		if err == nil && len(token) >= MinTokenLength {
			h.authFailed(h.clientOf(r))
		}
		return false
	}
	client := h.clientOf(r)
	if h.throttle.blocked(client) > 0 {
		return false
	}
	h.throttle.succeed(client)

	// The path holds the token: from here on, log names and hosts only.
	w.Header().Set("Cache-Control", "no-store")
	if e := h.serveWorkerCommand(w, r, command); e != nil {
		writeText(w, e.status, e.msg)
	}
	return true
}

// Worker route command words.
const (
	cmdRegister = "register"
	cmdReset    = "reset"
	cmdAddKey   = "addkey"
)

// serveWorkerCommand runs the command in the path after the token and writes
// its success answer; a failure is returned for the caller to write.
func (h *Handler) serveWorkerCommand(w http.ResponseWriter, r *http.Request, command string) *adminError {
	args, e := splitWorkerPath(command)
	if e != nil {
		return e
	}
	ctx := r.Context()

	switch {
	case len(args) == 2 && (args[0] == cmdRegister || args[0] == cmdReset):
		if e := workerMethod(w, r); e != nil {
			return e
		}
		if err := keystore.ValidUserName(args[1]); err != nil {
			return invalid("invalid_name", err)
		}
		expiresAt, e := h.workerExpiry(r)
		if e != nil {
			return e
		}
		var key string
		if args[0] == cmdRegister {
			_, key, e = h.registerUser(ctx, args[1], expiresAt)
		} else {
			_, key, e = h.resetUser(ctx, args[1], expiresAt)
		}
		if e != nil {
			return e
		}
		writeText(w, http.StatusOK, key)
		return nil

	case len(args) == 3 && args[0] == cmdAddKey:
		if e := workerMethod(w, r); e != nil {
			return e
		}
		host, e := h.checkHost(args[1])
		if e != nil {
			return e
		}
		if err := validUpstreamKey(args[2]); err != nil {
			return invalid("invalid_key", err)
		}
		if _, e := h.addHostKey(ctx, host, "", args[2]); e != nil {
			return e
		}
		writeText(w, http.StatusOK, "OK")
		return nil

	case len(args) == 1 && r.Method == http.MethodDelete:
		// Any single segment, even "register", is a user name here, as in
		// the original worker.
		if err := keystore.ValidUserName(args[0]); err != nil {
			return invalid("invalid_name", err)
		}
		if e := h.deleteUser(ctx, args[0]); e != nil {
			return e
		}
		writeText(w, http.StatusOK, "OK")
		return nil

	case len(args) == 1 && args[0] != "" && !isWorkerCommand(args[0]):
		w.Header().Set("Allow", http.MethodDelete)
		return &adminError{status: http.StatusMethodNotAllowed, msg: "method not allowed; delete a user with DELETE"}
	}
	return &adminError{
		status: http.StatusNotFound,
		msg:    "unknown admin command; use register/{name}, reset/{name}, addkey/{host}/{key}, or DELETE /{name}",
	}
}

// splitWorkerPath splits the escaped path after the token into decoded
// segments, so that %40 in a name reads as '@'.
func splitWorkerPath(escaped string) ([]string, *adminError) {
	args := strings.Split(escaped, "/")
	for i, arg := range args {
		decoded, err := url.PathUnescape(arg)
		if err != nil {
			return nil, &adminError{status: http.StatusBadRequest, msg: "malformed percent-encoding in path"}
		}
		args[i] = decoded
	}
	return args, nil
}

func isWorkerCommand(s string) bool {
	return s == cmdRegister || s == cmdReset || s == cmdAddKey
}

// workerMethod allows GET and POST, as the original worker (and curl's
// default) used them.
func workerMethod(w http.ResponseWriter, r *http.Request) *adminError {
	if r.Method == http.MethodGet || r.Method == http.MethodPost {
		return nil
	}
	w.Header().Set("Allow", "GET, POST")
	return &adminError{status: http.StatusMethodNotAllowed, msg: "method not allowed; use GET or POST"}
}

// workerExpiry reads the optional ?ttl= of register and reset; zero means no
// change (reset) or no expiry (new user).
func (h *Handler) workerExpiry(r *http.Request) (time.Time, *adminError) {
	q := r.URL.Query()
	if !q.Has("ttl") {
		return time.Time{}, nil
	}
	d, err := parseTTL(q.Get("ttl"))
	if err != nil {
		return time.Time{}, invalid("invalid_ttl", err)
	}
	return h.now().Truncate(time.Second).Add(d), nil
}

// writeText sends a worker route's plain-text answer and a newline.
func writeText(w http.ResponseWriter, status int, msg string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}
