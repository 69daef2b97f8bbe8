package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
)

// Request bodies of the REST API. Unknown fields are refused, so a typo such
// as "expire_at" is an error rather than silently ignored.
type (
	// createUserRequest is the body of POST /admin/users.
	createUserRequest struct {
		Name string `json:"name"`
		// TTL and ExpiresAt are optional and exclusive; see resolveExpiry.
		TTL       *string         `json:"ttl"`
		ExpiresAt json.RawMessage `json:"expires_at"`
		policyFields
	}

	// patchUserRequest is the body of PATCH /admin/users/{name}. A JSON null
	// expires_at clears the expiry, which is why it stays raw until decoded.
	patchUserRequest struct {
		TTL       *string         `json:"ttl"`
		ExpiresAt json.RawMessage `json:"expires_at"`
		policyFields
	}

	// patchHostRequest is the body of PATCH /admin/hosts/{host}; a JSON
	// null clears the models, which is why they stay raw until decoded.
	patchHostRequest struct {
		Models json.RawMessage `json:"models"`
	}

	// addHostKeyRequest is the body of POST /admin/hosts/{host}/keys.
	addHostKeyRequest struct {
		Key     string `json:"key"`
		BaseURL string `json:"base_url"`
	}
)

// Response bodies of the REST API.
type (
	// UserObject is a user as listed: a hint of the key, never the key or
	// its hash.
	UserObject struct {
		Name      string     `json:"name"`
		ID        string     `json:"id,omitempty"` // the user_id of its usage rows
		KeyHint   string     `json:"key_hint"`
		CreatedAt time.Time  `json:"created_at"`
		ExpiresAt *time.Time `json:"expires_at"` // null: never expires
		// The user's own policy; null fields take the site's defaults.
		Models []string         `json:"models"`
		Limits *keystore.Limits `json:"limits"`
		Budget *keystore.Budget `json:"budget"`
		// Spend is what applies and what is left now (single-user answers).
		Spend *SpendObject `json:"spend,omitempty"`
	}

	// SpendObject is what a user may spend, the site's defaults applied,
	// and what is left of it now.
	SpendObject struct {
		// Effective is the policy the user's requests are held to.
		Effective keystore.Policy `json:"effective"`
		// Left is what remains now on each limited axis.
		Left SpendLeft `json:"left"`
	}

	// SpendLeft is what remains of each limit now; a limit not set is absent.
	SpendLeft struct {
		RequestsThisMinute *int64     `json:"requests_this_minute,omitempty"`
		TokensThisMinute   *int64     `json:"tokens_this_minute,omitempty"`
		Parallel           *int64     `json:"parallel,omitempty"`
		BudgetRequests     *int64     `json:"budget_requests,omitempty"`
		BudgetTokens       *int64     `json:"budget_tokens,omitempty"`
		BudgetUSD          *float64   `json:"budget_usd,omitempty"`
		Period             string     `json:"period,omitempty"`
		ResetsAt           *time.Time `json:"resets_at,omitempty"` // when the budget period ends
	}

	// IssuedUser answers create and reset: the only time a key is shown.
	IssuedUser struct {
		Name      string     `json:"name"`
		Key       string     `json:"key"`
		KeyHint   string     `json:"key_hint"`
		CreatedAt time.Time  `json:"created_at"`
		ExpiresAt *time.Time `json:"expires_at"`
	}

	userList struct {
		Data []UserObject `json:"data"`
	}

	userDeleted struct {
		Name    string `json:"name"`
		Deleted bool   `json:"deleted"`
	}

	// hostObject is an upstream host with hints of its keys.
	hostObject struct {
		Name    string          `json:"name"`
		BaseURL string          `json:"base_url"` // effective: "https://"+name by default
		Source  string          `json:"source"`   // sourceConfig or sourceRuntime
		Default bool            `json:"default,omitempty"`
		Models  []string        `json:"models,omitempty"` // routed here by the request's model
		Keys    []hostKeyObject `json:"keys"`
	}

	hostKeyObject struct {
		ID      string    `json:"id,omitempty"` // run-time keys only: the API cannot remove the config's
		KeyHint string    `json:"key_hint"`
		Source  string    `json:"source"`
		State   *KeyState `json:"state,omitempty"` // absent: in use
	}

	// KeyState is why a provider key is out of use, or was lately failing,
	// as this instance saw it.
	KeyState struct {
		// Status is "resting" (after a 429, until Until), "set_aside"
		// (after a 401 or 403, until restored) or "ok" (in use, with
		// failures counted).
		Status string `json:"status"`
		// Reason is the last failure: an HTTP status, or "unreachable".
		Reason string `json:"reason"`
		// At is when it happened.
		At time.Time `json:"at"`
		// Until is when a resting key is used again.
		Until *time.Time `json:"until,omitempty"`
		// Errors counts the key's failures in this instance.
		Errors int64 `json:"errors"`
	}

	keysRestored struct {
		Host     string `json:"host"`
		Restored int    `json:"restored"`
	}

	hostList struct {
		Data []hostObject `json:"data"`
	}

	hostKeyAdded struct {
		ID      string `json:"id"`
		Host    string `json:"host"`
		BaseURL string `json:"base_url"`
	}

	deleted struct {
		Deleted bool `json:"deleted"`
	}
)

// NewUserObject is how the APIs show a user: never the key itself.
func NewUserObject(u keystore.User) UserObject {
	return UserObject{
		Name:      u.Name,
		ID:        u.ID,
		KeyHint:   u.KeyHint,
		CreatedAt: u.CreatedAt.UTC(),
		ExpiresAt: expiryPtr(u.ExpiresAt),
		Models:    u.Models,
		Limits:    u.Limits,
		Budget:    u.Budget,
	}
}

// NewIssuedUser shows a user with a key just issued, shown this once.
func NewIssuedUser(u keystore.User, key string) IssuedUser {
	return IssuedUser{
		Name:      u.Name,
		Key:       key,
		KeyHint:   u.KeyHint,
		CreatedAt: u.CreatedAt.UTC(),
		ExpiresAt: expiryPtr(u.ExpiresAt),
	}
}

// expiryPtr turns the store's "zero means never" into JSON null.
func expiryPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Where a host or key comes from.
const (
	sourceConfig  = "config"  // the Caddyfile or JSON config
	sourceRuntime = "runtime" // the admin API or the worker addkey route, kept in the store
)

func newHostObject(host keystore.Host) hostObject {
	keys := make([]hostKeyObject, 0, len(host.Keys))
	for _, k := range host.Keys {
		keys = append(keys, hostKeyObject{ID: k.ID, KeyHint: upstreamKeyHint(k.Key), Source: sourceRuntime})
	}
	return hostObject{Name: host.Name, BaseURL: host.EffectiveBaseURL(), Source: sourceRuntime, Models: host.Models, Keys: keys}
}

// minHintedKeyLen is the shortest upstream key whose last 4 characters are
// shown; for shorter ones they would give away too much of it.
const minHintedKeyLen = 12

// upstreamKeyHint returns "..." and the key's last 4 characters.
func upstreamKeyHint(key string) string {
	if len(key) < minHintedKeyLen {
		return "..."
	}
	return "..." + key[len(key)-4:]
}

// maxBodyBytes bounds a REST request body; real ones are a few hundred bytes.
const maxBodyBytes = 64 << 10

// decodeBody decodes the request body, which must be exactly one JSON object
// with only known fields, into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *adminError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return badRequest("invalid_json", "request body must be a single JSON object")
	}
	return nil
}

// bodyError explains why a body did not decode.
func bodyError(err error) *adminError {
	var (
		tooLarge  *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &adminError{
			status:  http.StatusRequestEntityTooLarge,
			errType: apierror.TypeInvalidRequest,
			code:    "request_too_large",
			msg:     "request body is larger than 64 KiB",
		}
	case errors.Is(err, io.EOF):
		return badRequest("invalid_json", "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid_json", "request body is truncated JSON")
	case errors.As(err, &syntaxErr):
		return badRequest("invalid_json", "request body is not valid JSON (at byte %d): %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badRequest("invalid_json", "request body must be a JSON object")
		}
		return badRequest("invalid_json", "field %q must be a %s", typeErr.Field, strings.TrimPrefix(typeErr.Type.String(), "*"))
	}
	// Unknown fields and the rest: encoding/json's message is clear enough.
	return badRequest("invalid_json", "invalid request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}
