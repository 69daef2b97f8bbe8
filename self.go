package aiproxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/admin"
	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/internal/jsonresp"
	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/usage"
)

// serveSelf answers the self-service routes, authenticated by the user's
// own key: GET /me, POST /me/reset and GET /me/usage.
func (h *Handler) serveSelf(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	user, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	route := r.URL.Path
	switch {
	case route == "/me" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.serveMe(w, r, user)

	case route == "/me/reset" && r.Method == http.MethodPost:
		h.serveSelfReset(w, r, user)

	case route == "/me/usage" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.serveUsage(w, r, user)

	case route == "/me" || route == "/me/reset" || route == "/me/usage":
		allow := "GET"
		if route == "/me/reset" {
			allow = "POST"
		}
		w.Header().Set("Allow", allow)
		apierror.Write(w, http.StatusMethodNotAllowed, apierror.TypeInvalidRequest, "method_not_allowed",
			"use "+allow+" on "+route)

	default:
		apierror.Write(w, http.StatusNotFound, apierror.TypeInvalidRequest, "unknown_route",
			"unknown self-service route; use /me, /me/reset or /me/usage")
	}
}

// serveMe answers GET /me: the user as the admin API shows it, with what
// it may spend and has left now.
func (h *Handler) serveMe(w http.ResponseWriter, r *http.Request, user keystore.User) {
	obj := admin.NewUserObject(user)
	var err error
	if obj.Spend, err = h.spendObject(r.Context(), user); err != nil {
		h.lookupLog.fail(err)
		writeStoreUnavailable(w)
		return
	}
	jsonresp.Write(w, http.StatusOK, obj)
}

// serveSelfReset gives the user a new key; the old one is refused at once.
// The expiry stays: a reset never extends a time-limited key.
func (h *Handler) serveSelfReset(w http.ResponseWriter, r *http.Request, user keystore.User) {
	if !h.selfReset() {
		apierror.Write(w, http.StatusForbidden, apierror.TypePermission, "self_service_disabled",
			"resetting your own key is turned off on this gateway; ask its admin")
		return
	}
	key := keystore.NewUserKey()
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	u, err := h.store.ResetKey(ctx, user.Name, keystore.HashKey(key), keystore.KeyHint(key))
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		// Deleted between the lookup and now.
		writeInvalidKey(w)
		return
	case err != nil:
		h.logger.Error("self-service key reset failed", zap.String("user", user.Name), zap.Error(err))
		writeStoreUnavailable(w)
		return
	}
	h.logger.Info("user reset their own key", zap.String("user", user.Name))
	h.sessions.recheck() // the old key's sessions close
	jsonresp.Write(w, http.StatusOK, admin.NewIssuedUser(u, key))
}

// serveUsage answers GET /me/usage: the caller's own usage rows, not those
// of an earlier user who had the same name.
func (h *Handler) serveUsage(w http.ResponseWriter, r *http.Request, user keystore.User) {
	ok, wait := h.selfReports.reserve(user.ID, time.Now())
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		apierror.Write(w, http.StatusTooManyRequests, apierror.TypeRateLimit, "rate_limit_exceeded",
			"you are reading your usage too often; try again in a moment")
		return
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // the client left
		}
	}
	usage.Serve(w, r, h.queryUsage, usage.Owner{Name: user.Name, ID: user.ID}, time.Now())
}

func (h *Handler) selfReset() bool {
	return h.SelfService == nil || *h.SelfService
}
