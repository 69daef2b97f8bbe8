package aiproxy

// auth.go: the user key a request carries, its lookup in the store, and the
// errors that refuse it.

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
)

// storeTimeout bounds every store call made while serving a request, so a
// dead store answers 503 quickly instead of hanging the client.
const storeTimeout = time.Second

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
	// No deadline of ours: each store bounds its own lookups (Redis's
	// within twice its timeout), and a timer per request costs more than
	// a lookup served from memory.
	user, err := h.store.LookupKey(r.Context(), keystore.HashKey(key))
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

func writeStoreUnavailable(w http.ResponseWriter) {
	apierror.Write(w, http.StatusServiceUnavailable, apierror.TypeServer, "store_unavailable",
		"the gateway's key store is unavailable; try again shortly")
}
