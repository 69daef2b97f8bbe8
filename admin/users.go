package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/jsonresp"
	"github.com/aiproxy/aiproxy/keystore"
)

// handleCreateUser answers POST /admin/users with 201 and the new key.
func (h *Handler) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	var req createUserRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if err := keystore.ValidUserName(req.Name); err != nil {
		writeError(w, invalid("invalid_name", err))
		return
	}
	expiresAt, _, e := h.resolveExpiry(req.TTL, req.ExpiresAt, false)
	if e != nil {
		writeError(w, e)
		return
	}
	var policy keystore.Policy
	if !req.policyFields.empty() {
		if e := req.apply(&policy); e != nil {
			writeError(w, e)
			return
		}
		if e := h.checkPolicy(policy); e != nil {
			writeError(w, e)
			return
		}
	}
	u, key, e := h.createUser(r.Context(), req.Name, expiresAt, policy)
	if e != nil {
		writeError(w, e)
		return
	}
	w.Header().Set("Location", "/admin/users/"+url.PathEscape(u.Name))
	jsonresp.Write(w, http.StatusCreated, NewIssuedUser(u, key))
}

// handleListUsers answers GET /admin/users.
func (h *Handler) handleListUsers(w http.ResponseWriter, r *http.Request) {
	users, err := h.Store.ListUsers(r.Context())
	if err != nil {
		writeError(w, h.storeError(err, "list users", "users"))
		return
	}
	list := userList{Data: make([]UserObject, 0, len(users))}
	for _, u := range users {
		list.Data = append(list.Data, NewUserObject(u))
	}
	jsonresp.Write(w, http.StatusOK, list)
}

// handleGetUser answers GET /admin/users/{name}.
func (h *Handler) handleGetUser(w http.ResponseWriter, r *http.Request) {
	name, e := pathUser(r)
	if e != nil {
		writeError(w, e)
		return
	}
	u, err := h.Store.GetUser(r.Context(), name)
	if err != nil {
		writeError(w, h.storeError(err, "get user", userWhat(name), zap.String("user", name)))
		return
	}
	obj := NewUserObject(u)
	if h.Spend != nil {
		if obj.Spend, err = h.Spend(r.Context(), u); err != nil {
			writeError(w, h.storeError(err, "read spending", userWhat(name), zap.String("user", name)))
			return
		}
	}
	jsonresp.Write(w, http.StatusOK, obj)
}

// handlePatchUser answers PATCH /admin/users/{name}: it sets the expiry from
// ttl or expires_at, or clears it with "expires_at": null, and merges the
// models, limits and budget given (see policyFields.apply).
func (h *Handler) handlePatchUser(w http.ResponseWriter, r *http.Request) {
	name, e := pathUser(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var req patchUserRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	// A past expiry suspends the key at once without deleting the user.
	expiresAt, set, e := h.resolveExpiry(req.TTL, req.ExpiresAt, true)
	if e != nil {
		writeError(w, e)
		return
	}
	if !set && req.policyFields.empty() {
		writeError(w, badRequest("missing_field",
			`nothing to change: give "ttl", "expires_at", "models", "limits" or "budget" (null clears one)`))
		return
	}
	var u keystore.User
	if !req.policyFields.empty() {
		// The policy first: a refused one must not leave the expiry changed.
		if u, e = h.updatePolicy(r.Context(), name, req.policyFields); e != nil {
			writeError(w, e)
			return
		}
	}
	if set {
		if u, e = h.setExpiry(r.Context(), name, expiresAt); e != nil {
			writeError(w, e)
			return
		}
	}
	jsonresp.Write(w, http.StatusOK, NewUserObject(u))
}

// handleDeleteUser answers DELETE /admin/users/{name} with 200 and
// {"name":...,"deleted":true} rather than 204, so that scripts can print
// what happened.
func (h *Handler) handleDeleteUser(w http.ResponseWriter, r *http.Request) {
	name, e := pathUser(r)
	if e != nil {
		writeError(w, e)
		return
	}
	if e := h.deleteUser(r.Context(), name); e != nil {
		writeError(w, e)
		return
	}
	jsonresp.Write(w, http.StatusOK, userDeleted{Name: name, Deleted: true})
}

// handleResetUser answers POST /admin/users/{name}/reset with the new key.
// The expiry is kept.
func (h *Handler) handleResetUser(w http.ResponseWriter, r *http.Request) {
	name, e := pathUser(r)
	if e != nil {
		writeError(w, e)
		return
	}
	u, key, e := h.resetUser(r.Context(), name, time.Time{})
	if e != nil {
		writeError(w, e)
		return
	}
	jsonresp.Write(w, http.StatusOK, NewIssuedUser(u, key))
}

// resolveExpiry turns a request's optional, exclusive ttl and expires_at into
// an expiry time. set reports whether either was given; a zero time with set
// means "never expires" (expires_at: null). An expires_at in the past is
// refused unless allowPast.
func (h *Handler) resolveExpiry(ttl *string, expiresAt json.RawMessage, allowPast bool) (t time.Time, set bool, e *adminError) {
	hasExpiresAt := len(expiresAt) > 0
	switch {
	case ttl != nil && hasExpiresAt:
		return time.Time{}, false, badRequest("invalid_expiry", `give either "ttl" or "expires_at", not both`)

	case ttl != nil:
		d, err := parseTTL(*ttl)
		if err != nil {
			return time.Time{}, false, invalid("invalid_ttl", err)
		}
		return h.now().Truncate(time.Second).Add(d), true, nil

	case hasExpiresAt:
		if string(expiresAt) == "null" {
			return time.Time{}, true, nil
		}
		var s string
		if err := json.Unmarshal(expiresAt, &s); err != nil {
			return time.Time{}, false, badRequest("invalid_expires_at", `"expires_at" must be an RFC 3339 time string or null`)
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, false, badRequest("invalid_expires_at",
				`"expires_at" %q is not an RFC 3339 time such as 2030-12-31T23:59:59Z`, s)
		}
		if !allowPast && !t.After(h.now()) {
			return time.Time{}, false, badRequest("invalid_expires_at", `"expires_at" is not in the future`)
		}
		return t.UTC(), true, nil
	}
	return time.Time{}, false, nil
}
