package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/internal/storetest"
	"github.com/aiproxy/aiproxy/keystore"
)

// Response shapes as clients see them.
type (
	userJSON struct {
		Name      string           `json:"name"`
		ID        string           `json:"id"`
		KeyHint   string           `json:"key_hint"`
		CreatedAt time.Time        `json:"created_at"`
		ExpiresAt *time.Time       `json:"expires_at"`
		Models    []string         `json:"models"`
		Limits    *keystore.Limits `json:"limits"`
		Budget    *keystore.Budget `json:"budget"`
		Spend     json.RawMessage  `json:"spend"`
	}
	issuedJSON struct {
		Name      string     `json:"name"`
		Key       string     `json:"key"`
		KeyHint   string     `json:"key_hint"`
		CreatedAt time.Time  `json:"created_at"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	hostJSON struct {
		Name    string `json:"name"`
		BaseURL string `json:"base_url"`
		Source  string `json:"source"`
		Default bool   `json:"default"`
		Keys    []struct {
			ID      string `json:"id"`
			KeyHint string `json:"key_hint"`
			Source  string `json:"source"`
		} `json:"keys"`
	}
	hostKeyAddedJSON struct {
		ID      string `json:"id"`
		Host    string `json:"host"`
		BaseURL string `json:"base_url"`
	}
)

func TestRESTAuth(t *testing.T) {
	env := newTestEnv(t)
	for _, tc := range []struct {
		name, auth string
	}{
		{"missing", ""},
		{"wrong token", "Bearer not-the-token"},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1]},
		{"token with suffix", "Bearer " + testToken + "x"},
		{"wrong scheme", "Basic " + testToken},
		{"no scheme", testToken},
		{"empty bearer", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, target := range []string{"/admin/users", "/admin/nope", "/admin"} {
				rec := env.restAuth(t, http.MethodGet, target, "", tc.auth)
				wantError(t, rec, http.StatusUnauthorized, "invalid_admin_token")
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("%s: no WWW-Authenticate header", target)
				}
			}
		})
	}
	if n := env.store.Calls(""); n != 0 {
		t.Errorf("unauthenticated requests made %d store calls", n)
	}

	// The scheme is case-insensitive, as RFC 9110 says.
	rec := env.restAuth(t, http.MethodGet, "/admin/users", "", "bearer "+testToken)
	decode[userList](t, rec, http.StatusOK)
}

func TestRESTEmptyTokenLocks(t *testing.T) {
	h := &Handler{Store: storetest.New(t)}
	for _, auth := range []string{"Bearer ", "Bearer", ""} {
		rec := httptestREST(h, http.MethodGet, "/admin/users", "", auth)
		wantError(t, rec, http.StatusUnauthorized, "invalid_admin_token")
	}
}

func TestRESTCreateUser(t *testing.T) {
	in := func(d time.Duration) string { return testNow.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct {
		name       string
		body       string
		wantStatus int
		wantCode   string
		wantExpiry time.Time // zero: never
	}{
		{"no expiry", `{"name":"janlay"}`, 201, "", time.Time{}},
		{"ttl", `{"name":"janlay","ttl":"720h"}`, 201, "", testNow.Add(720 * time.Hour)},
		{"expires_at", `{"name":"janlay","expires_at":"` + in(48*time.Hour) + `"}`, 201, "", testNow.Add(48 * time.Hour)},
		{"expires_at with offset", `{"name":"janlay","expires_at":"2031-01-01T02:00:00+02:00"}`, 201, "", time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"expires_at null", `{"name":"janlay","expires_at":null}`, 201, "", time.Time{}},
		{"ttl null", `{"name":"janlay","ttl":null}`, 201, "", time.Time{}},
		{"email name", `{"name":"jan.lay@example.com"}`, 201, "", time.Time{}},
		{"taken", `{"name":"taken"}`, 409, "already_exists", time.Time{}},
		{"empty body", ``, 400, "invalid_json", time.Time{}},
		{"bad JSON", `{"name":`, 400, "invalid_json", time.Time{}},
		{"not JSON", `name=janlay`, 400, "invalid_json", time.Time{}},
		{"array", `[{"name":"janlay"}]`, 400, "invalid_json", time.Time{}},
		{"unknown field", `{"name":"janlay","expire_at":"2031-01-01T00:00:00Z"}`, 400, "invalid_json", time.Time{}},
		{"name not a string", `{"name":42}`, 400, "invalid_json", time.Time{}},
		{"trailing data", `{"name":"janlay"} {"name":"other"}`, 400, "invalid_json", time.Time{}},
		{"too large", `{"name":"janlay","ttl":"` + strings.Repeat("1", maxBodyBytes) + `"}`, 413, "request_too_large", time.Time{}},
		{"missing name", `{"ttl":"1h"}`, 400, "invalid_name", time.Time{}},
		{"bad name", `{"name":"jan lay"}`, 400, "invalid_name", time.Time{}},
		{"long name", `{"name":"` + strings.Repeat("x", 65) + `"}`, 400, "invalid_name", time.Time{}},
		{"both", `{"name":"janlay","ttl":"1h","expires_at":"` + in(time.Hour) + `"}`, 400, "invalid_expiry", time.Time{}},
		{"both, null", `{"name":"janlay","ttl":"1h","expires_at":null}`, 400, "invalid_expiry", time.Time{}},
		{"bad duration", `{"name":"janlay","ttl":"30d"}`, 400, "invalid_ttl", time.Time{}},
		{"zero ttl", `{"name":"janlay","ttl":"0s"}`, 400, "invalid_ttl", time.Time{}},
		{"negative ttl", `{"name":"janlay","ttl":"-1h"}`, 400, "invalid_ttl", time.Time{}},
		{"ttl not a string", `{"name":"janlay","ttl":3600}`, 400, "invalid_json", time.Time{}},
		{"past expires_at", `{"name":"janlay","expires_at":"` + in(-time.Second) + `"}`, 400, "invalid_expires_at", time.Time{}},
		{"now expires_at", `{"name":"janlay","expires_at":"` + in(0) + `"}`, 400, "invalid_expires_at", time.Time{}},
		{"bad expires_at", `{"name":"janlay","expires_at":"tomorrow"}`, 400, "invalid_expires_at", time.Time{}},
		{"numeric expires_at", `{"name":"janlay","expires_at":1893456000}`, 400, "invalid_expires_at", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			if err := env.store.CreateUser(t.Context(), keystore.User{Name: "taken", KeyHash: "h", CreatedAt: testNow}); err != nil {
				t.Fatal(err)
			}
			rec := env.rest(t, http.MethodPost, "/admin/users", tc.body)
			if tc.wantStatus != http.StatusCreated {
				wantError(t, rec, tc.wantStatus, tc.wantCode)
				if users, _ := env.store.Real().ListUsers(t.Context()); tc.name != "taken" && len(users) != 1 {
					t.Errorf("a refused request created a user")
				}
				return
			}

			if !strings.Contains(rec.Body.String(), `"expires_at":`) {
				t.Errorf("body %s lacks expires_at", rec.Body)
			}
			got := decode[issuedJSON](t, rec, http.StatusCreated)
			stored, ok := env.user(t, got.Name)
			switch {
			case !ok:
				t.Fatalf("user %q not stored", got.Name)
			case !keystore.IsUserKeyShape(got.Key):
				t.Errorf("key %q has the wrong shape", got.Key)
			case stored.KeyHash != keystore.HashKey(got.Key):
				t.Errorf("stored hash does not match the issued key")
			case got.KeyHint != keystore.KeyHint(got.Key) || stored.KeyHint != got.KeyHint:
				t.Errorf("key_hint %q, stored %q", got.KeyHint, stored.KeyHint)
			case !got.CreatedAt.Equal(testNow) || !stored.CreatedAt.Equal(testNow):
				t.Errorf("created_at %v, stored %v; want %v", got.CreatedAt, stored.CreatedAt, testNow)
			case !stored.ExpiresAt.Equal(tc.wantExpiry):
				t.Errorf("stored expiry %v, want %v", stored.ExpiresAt, tc.wantExpiry)
			case tc.wantExpiry.IsZero() != (got.ExpiresAt == nil):
				t.Errorf("expires_at %v, want %v", got.ExpiresAt, tc.wantExpiry)
			case got.ExpiresAt != nil && !got.ExpiresAt.Equal(tc.wantExpiry):
				t.Errorf("expires_at %v, want %v", got.ExpiresAt, tc.wantExpiry)
			case got.ExpiresAt != nil && got.ExpiresAt.Location() != time.UTC:
				t.Errorf("expires_at %v is not UTC", got.ExpiresAt)
			}
			if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "/admin/users/") {
				t.Errorf("Location = %q", loc)
			}
			env.wantLookup(t, got.Key, got.Name, true)
		})
	}
}

func TestRESTUserLifecycle(t *testing.T) {
	env := newTestEnv(t)
	created := decode[issuedJSON](t, env.rest(t, http.MethodPost, "/admin/users", `{"name":"bob","ttl":"24h"}`), http.StatusCreated)
	decode[issuedJSON](t, env.rest(t, http.MethodPost, "/admin/users", `{"name":"alice"}`), http.StatusCreated)

	// Get and list show the hint, never the key or its hash.
	rec := env.rest(t, http.MethodGet, "/admin/users/bob", "")
	got := decode[userJSON](t, rec, http.StatusOK)
	if got.Name != "bob" || got.KeyHint != created.KeyHint || got.ExpiresAt == nil || !got.ExpiresAt.Equal(testNow.Add(24*time.Hour)) ||
		!keystore.IsUserID(got.ID) {
		t.Errorf("GET user = %+v", got)
	}
	rec = env.rest(t, http.MethodGet, "/admin/users", "")
	body := rec.Body.String()
	list := decode[struct{ Data []userJSON }](t, rec, http.StatusOK)
	if len(list.Data) != 2 || list.Data[0].Name != "alice" || list.Data[1].Name != "bob" {
		t.Errorf("list = %+v", list.Data)
	}
	if strings.Contains(body, created.Key) || strings.Contains(body, keystore.HashKey(created.Key)) || strings.Contains(body, `"key"`) {
		t.Errorf("listing shows a key or hash: %s", body)
	}
	if !strings.Contains(body, `"expires_at":null`) {
		t.Errorf("listing lacks a null expires_at for alice: %s", body)
	}

	// PATCH: ttl, expires_at, null, and refusals.
	for _, tc := range []struct {
		body       string
		wantStatus int
		wantCode   string
		wantExpiry time.Time
	}{
		{`{"ttl":"1h"}`, 200, "", testNow.Add(time.Hour)},
		{`{"expires_at":"2031-06-01T00:00:00Z"}`, 200, "", time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)},
		{`{"expires_at":null}`, 200, "", time.Time{}},
		{`{}`, 400, "missing_field", time.Time{}},
		{`{"ttl":"1h","expires_at":null}`, 400, "invalid_expiry", time.Time{}},
		{`{"ttl":"soon"}`, 400, "invalid_ttl", time.Time{}},
		// A past expiry suspends the key (creating such a user is refused).
		{`{"expires_at":"2020-01-01T00:00:00Z"}`, 200, "", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
		{`{"expires_at":"yesterday"}`, 400, "invalid_expires_at", time.Time{}},
		{`{"name":"eve"}`, 400, "invalid_json", time.Time{}},
		{``, 400, "invalid_json", time.Time{}},
	} {
		rec := env.rest(t, http.MethodPatch, "/admin/users/bob", tc.body)
		if tc.wantStatus != http.StatusOK {
			wantError(t, rec, tc.wantStatus, tc.wantCode)
			continue
		}
		got := decode[userJSON](t, rec, http.StatusOK)
		stored, _ := env.user(t, "bob")
		if !stored.ExpiresAt.Equal(tc.wantExpiry) || (got.ExpiresAt == nil) != tc.wantExpiry.IsZero() {
			t.Errorf("PATCH %s: expires_at %v, stored %v; want %v", tc.body, got.ExpiresAt, stored.ExpiresAt, tc.wantExpiry)
		}
	}
	wantError(t, env.rest(t, http.MethodPatch, "/admin/users/nobody", `{"ttl":"1h"}`), http.StatusNotFound, "not_found")

	// Reset: a new key, the old one refused at once, the rest kept.
	decode[userJSON](t, env.rest(t, http.MethodPatch, "/admin/users/bob", `{"ttl":"2h"}`), http.StatusOK)
	reset := decode[issuedJSON](t, env.rest(t, http.MethodPost, "/admin/users/bob/reset", ""), http.StatusOK)
	if reset.Key == created.Key || !keystore.IsUserKeyShape(reset.Key) || reset.KeyHint != keystore.KeyHint(reset.Key) {
		t.Errorf("reset key %q (hint %q), old %q", reset.Key, reset.KeyHint, created.Key)
	}
	if !reset.CreatedAt.Equal(testNow) || reset.ExpiresAt == nil || !reset.ExpiresAt.Equal(testNow.Add(2*time.Hour)) {
		t.Errorf("reset changed created_at or expiry: %+v", reset)
	}
	env.wantLookup(t, created.Key, "bob", false)
	env.wantLookup(t, reset.Key, "bob", true)
	wantError(t, env.rest(t, http.MethodPost, "/admin/users/nobody/reset", ""), http.StatusNotFound, "not_found")

	// Delete.
	rec = env.rest(t, http.MethodDelete, "/admin/users/bob", "")
	if del := decode[userDeleted](t, rec, http.StatusOK); del != (userDeleted{Name: "bob", Deleted: true}) {
		t.Errorf("DELETE = %+v", del)
	}
	env.wantLookup(t, reset.Key, "bob", false)
	wantError(t, env.rest(t, http.MethodGet, "/admin/users/bob", ""), http.StatusNotFound, "not_found")
	wantError(t, env.rest(t, http.MethodDelete, "/admin/users/bob", ""), http.StatusNotFound, "not_found")
}

func TestRESTEmptyListsAreArrays(t *testing.T) {
	env := newTestEnv(t)
	for _, target := range []string{"/admin/users", "/admin/hosts"} {
		rec := env.rest(t, http.MethodGet, target, "")
		if got := strings.TrimSpace(rec.Body.String()); rec.Code != http.StatusOK || got != `{"data":[]}` {
			t.Errorf("GET %s = %d %s", target, rec.Code, got)
		}
	}
}

func TestRESTEncodedNames(t *testing.T) {
	env := newTestEnv(t)
	created := decode[issuedJSON](t, env.rest(t, http.MethodPost, "/admin/users", `{"name":"jan.lay@example.com"}`), http.StatusCreated)
	if created.Name != "jan.lay@example.com" {
		t.Fatalf("created %q", created.Name)
	}
	for _, target := range []string{"/admin/users/jan.lay%40example.com", "/admin/users/jan.lay@example.com", "/admin/users/%6Aan.lay%40example.com"} {
		got := decode[userJSON](t, env.rest(t, http.MethodGet, target, ""), http.StatusOK)
		if got.Name != "jan.lay@example.com" {
			t.Errorf("GET %s = %q", target, got.Name)
		}
	}
	decode[userJSON](t, env.rest(t, http.MethodPatch, "/admin/users/jan.lay%40example.com", `{"ttl":"1h"}`), http.StatusOK)
	decode[issuedJSON](t, env.rest(t, http.MethodPost, "/admin/users/jan.lay%40example.com/reset", ""), http.StatusOK)
	decode[userDeleted](t, env.rest(t, http.MethodDelete, "/admin/users/jan.lay%40example.com", ""), http.StatusOK)

	// An encoded slash stays inside the segment, and is then no valid name.
	wantError(t, env.rest(t, http.MethodGet, "/admin/users/a%2Fb", ""), http.StatusBadRequest, "invalid_name")
	wantError(t, env.rest(t, http.MethodGet, "/admin/users/a%20b", ""), http.StatusBadRequest, "invalid_name")
}

func TestRESTHosts(t *testing.T) {
	env := newTestEnv(t)
	const (
		groqKey1 = "gsk_FirstSecretGroqKey1111"
		groqKey2 = "gsk_SecondSecretGroqKey2222"
		tinyKey  = "abc123"
	)
	for _, k := range []string{groqKey1, groqKey2, tinyKey} {
		env.secret(k)
	}

	// A new host without base_url gets the default.
	rec := env.rest(t, http.MethodPost, "/admin/hosts/API.Groq.com/keys", `{"key":"`+groqKey1+`"}`)
	added := decode[hostKeyAddedJSON](t, rec, http.StatusCreated)
	if added.ID == "" || added.Host != "api.groq.com" || added.BaseURL != "https://api.groq.com" {
		t.Errorf("added = %+v", added)
	}
	// base_url is normalized and replaces the old one ...
	rec = env.rest(t, http.MethodPost, "/admin/hosts/api.groq.com/keys", `{"key":"`+groqKey2+`","base_url":"https://api.groq.com/openai/"}`)
	added2 := decode[hostKeyAddedJSON](t, rec, http.StatusCreated)
	if added2.ID == added.ID || added2.BaseURL != "https://api.groq.com/openai" {
		t.Errorf("added2 = %+v", added2)
	}
	// ... and a key without base_url reports the one in effect.
	rec = env.rest(t, http.MethodPost, "/admin/hosts/api.groq.com:443/keys", `{"key":"`+tinyKey+`"}`)
	addedTiny := decode[hostKeyAddedJSON](t, rec, http.StatusCreated)
	if addedTiny.BaseURL != "https://api.groq.com:443" {
		t.Errorf("other host base_url = %q", addedTiny.BaseURL)
	}
	rec = env.rest(t, http.MethodPost, "/admin/hosts/api.groq.com/keys", `{"key":"gsk_ThirdKey33333333"}`)
	env.secret("gsk_ThirdKey33333333")
	added3 := decode[hostKeyAddedJSON](t, rec, http.StatusCreated)
	if added3.BaseURL != "https://api.groq.com/openai" {
		t.Errorf("kept base_url reported as %q", added3.BaseURL)
	}
	if n := env.hostsChanged.Load(); n != 4 {
		t.Errorf("HostsChanged called %d times, want 4", n)
	}

	rec = env.rest(t, http.MethodGet, "/admin/hosts", "")
	body := rec.Body.String()
	list := decode[struct{ Data []hostJSON }](t, rec, http.StatusOK)
	for _, secret := range []string{groqKey1, groqKey2, tinyKey, "gsk_ThirdKey33333333"} {
		if strings.Contains(body, secret) {
			t.Errorf("host listing shows an upstream key: %s", body)
		}
	}
	want := fmt.Sprintf(`[{api.groq.com https://api.groq.com/openai runtime false [{%s ...1111 runtime} {%s ...2222 runtime} {%s ...3333 runtime}]} {api.groq.com:443 https://api.groq.com:443 runtime false [{%s ... runtime}]}]`,
		added.ID, added2.ID, added3.ID, addedTiny.ID)
	if got := fmt.Sprint(list.Data); got != want {
		t.Errorf("hosts =\n%s\nwant\n%s", got, want)
	}

	// Refusals change nothing and don't signal a change.
	for _, tc := range []struct {
		target, body string
		status       int
		code         string
	}{
		{"/admin/hosts/api.groq.com/keys", `{"key":""}`, 400, "invalid_key"},
		{"/admin/hosts/api.groq.com/keys", `{}`, 400, "invalid_key"},
		{"/admin/hosts/api.groq.com/keys", `{"key":"a b"}`, 400, "invalid_key"},
		{"/admin/hosts/api.groq.com/keys", `{"key":"k","extra":1}`, 400, "invalid_json"},
		{"/admin/hosts/api.groq.com/keys", `{"key":"k","base_url":"api.groq.com"}`, 400, "invalid_base_url"},
		{"/admin/hosts/api.groq.com/keys", `{"key":"k","base_url":"ftp://api.groq.com"}`, 400, "invalid_base_url"},
		{"/admin/hosts/api.groq.com/keys", `{"key":"k","base_url":"https://u:p@api.groq.com"}`, 400, "invalid_base_url"},
		{"/admin/hosts/api.groq.com/keys", `{"key":"k","base_url":"https://api.groq.com/?a=b"}`, 400, "invalid_base_url"},
		{"/admin/hosts/api.groq.com/keys", `{"key":"k","base_url":"https://api.groq.com/#x"}`, 400, "invalid_base_url"},
		{"/admin/hosts/api_groq.com/keys", `{"key":"k"}`, 400, "invalid_host"},
		{"/admin/hosts/https:%2F%2Fapi.groq.com/keys", `{"key":"k"}`, 400, "invalid_host"},
		{"/admin/hosts/user@api.groq.com/keys", `{"key":"k"}`, 400, "invalid_host"},
	} {
		rec := env.rest(t, http.MethodPost, tc.target, tc.body)
		wantError(t, rec, tc.status, tc.code)
	}
	if n := env.hostsChanged.Load(); n != 4 {
		t.Errorf("HostsChanged called %d times after refusals, want 4", n)
	}

	// Deleting keys and hosts.
	decode[deleted](t, env.rest(t, http.MethodDelete, "/admin/hosts/api.groq.com/keys/"+added.ID, ""), http.StatusOK)
	wantError(t, env.rest(t, http.MethodDelete, "/admin/hosts/api.groq.com/keys/"+added.ID, ""), http.StatusNotFound, "not_found")
	wantError(t, env.rest(t, http.MethodDelete, "/admin/hosts/nowhere.example/keys/k0001", ""), http.StatusNotFound, "not_found")
	if got := decode[deleted](t, env.rest(t, http.MethodDelete, "/admin/hosts/API.GROQ.COM", ""), http.StatusOK); !got.Deleted {
		t.Errorf("DELETE host = %+v", got)
	}
	wantError(t, env.rest(t, http.MethodDelete, "/admin/hosts/api.groq.com", ""), http.StatusNotFound, "not_found")
	wantError(t, env.rest(t, http.MethodDelete, "/admin/hosts/-bad-/keys/x", ""), http.StatusBadRequest, "invalid_host")
	if n := env.hostsChanged.Load(); n != 6 {
		t.Errorf("HostsChanged called %d times, want 6", n)
	}
	rec = env.rest(t, http.MethodGet, "/admin/hosts", "")
	if got := decode[struct{ Data []hostJSON }](t, rec, http.StatusOK); len(got.Data) != 1 || got.Data[0].Name != "api.groq.com:443" {
		t.Errorf("hosts after deletes = %+v", got.Data)
	}
}

func TestRESTCustomHostValidation(t *testing.T) {
	env := newTestEnv(t)
	env.h.ValidHost = func(host string) error {
		if !strings.HasSuffix(host, ".example") {
			return fmt.Errorf("host %q is not allowed", host)
		}
		return nil
	}
	wantError(t, env.rest(t, http.MethodPost, "/admin/hosts/api.groq.com/keys", `{"key":"k"}`), http.StatusBadRequest, "invalid_host")
	decode[hostKeyAddedJSON](t, env.rest(t, http.MethodPost, "/admin/hosts/AI.Example/keys", `{"key":"k"}`), http.StatusCreated)
}

func TestRESTRouting(t *testing.T) {
	env := newTestEnv(t)
	for _, tc := range []struct {
		method, target string
		status         int
		code, allow    string
	}{
		{"GET", "/admin", 404, "unknown_route", ""},
		{"GET", "/admin/", 404, "unknown_route", ""},
		{"GET", "/admin/nope", 404, "unknown_route", ""},
		{"GET", "/admin/users/", 404, "unknown_route", ""},
		{"GET", "/admin/users/bob/extra", 404, "unknown_route", ""},
		{"GET", "/admin//users", 404, "unknown_route", ""},
		{"GET", "/admin/users/../hosts", 404, "unknown_route", ""},
		{"GET", "/admin/./users", 404, "unknown_route", ""},
		{"GET", "/admin/hosts/api.groq.com/keys", 405, "method_not_allowed", "POST"},
		{"PUT", "/admin/users", 405, "method_not_allowed", "GET, POST"},
		{"HEAD", "/admin/users", 405, "method_not_allowed", "GET, POST"},
		{"POST", "/admin/users/bob", 405, "method_not_allowed", "DELETE, GET, PATCH"},
		{"GET", "/admin/users/bob/reset", 405, "method_not_allowed", "POST"},
		{"POST", "/admin/hosts", 405, "method_not_allowed", "GET"},
		{"GET", "/admin/hosts/api.groq.com", 405, "method_not_allowed", "DELETE, PATCH"},
		{"GET", "/admin/hosts/api.groq.com/keys/k1", 405, "method_not_allowed", "DELETE"},
		{"POST", "/admin/usage", 405, "method_not_allowed", "GET"},
		{"GET", "/admin/usage", 501, "not_implemented", ""},
		{"GET", "/admin/usage?user=bob&from=2030-01-01", 501, "not_implemented", ""},
	} {
		rec := env.rest(t, tc.method, tc.target, "")
		wantError(t, rec, tc.status, tc.code)
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.target, got, tc.allow)
		}
	}
}

func TestRESTStoreFailures(t *testing.T) {
	routes := []struct{ method, target, body string }{
		{"POST", "/admin/users", `{"name":"bob"}`},
		{"GET", "/admin/users", ""},
		{"GET", "/admin/users/bob", ""},
		{"PATCH", "/admin/users/bob", `{"ttl":"1h"}`},
		{"DELETE", "/admin/users/bob", ""},
		{"POST", "/admin/users/bob/reset", ""},
		{"GET", "/admin/hosts", ""},
		{"POST", "/admin/hosts/api.groq.com/keys", `{"key":"gsk_x"}`},
		{"POST", "/admin/hosts/api.groq.com/keys", `{"key":"gsk_x","base_url":"https://api.groq.com/openai"}`},
		{"DELETE", "/admin/hosts/api.groq.com/keys/k1", ""},
		{"DELETE", "/admin/hosts/api.groq.com", ""},
	}
	for _, failure := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("dial tcp: connection refused: %w", keystore.ErrUnavailable), 503, "store_unavailable"},
		{fmt.Errorf("corrupt record"), 500, "internal_error"},
	} {
		env := newTestEnv(t)
		env.store.FailAll(failure.err)
		for _, r := range routes {
			rec := env.rest(t, r.method, r.target, r.body)
			body := wantError(t, rec, failure.status, failure.code)
			if strings.Contains(body.Error.Message, "refused") || strings.Contains(body.Error.Message, "corrupt") {
				t.Errorf("%s %s: error detail leaked to the client: %q", r.method, r.target, body.Error.Message)
			}
			if body.Error.Type != "server_error" {
				t.Errorf("%s %s: type %q", r.method, r.target, body.Error.Type)
			}
		}
		if env.hostsChanged.Load() != 0 {
			t.Errorf("HostsChanged called after failures")
		}
		if n := env.logs.FilterField(zapOp("list users")).Len(); n != 1 {
			t.Errorf("store failure of list users logged %d times, want 1", n)
		}
	}
}
