package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/keystore"
)

const workerPrefix = "/" + testToken

func TestWorkerRoutesRegisterAndReset(t *testing.T) {
	env := newTestEnv(t)

	first := env.workerKey(t, http.MethodGet, workerPrefix+"/register/janlay")
	env.wantLookup(t, first, "janlay", true)
	u, _ := env.user(t, "janlay")
	if !u.CreatedAt.Equal(testNow) || !u.ExpiresAt.IsZero() || u.KeyHint != keystore.KeyHint(first) {
		t.Errorf("registered user = %+v", u)
	}

	// Registering again is a reset, as in the original worker.
	env.h.Now = func() time.Time { return testNow.Add(time.Hour) }
	second := env.workerKey(t, http.MethodPost, workerPrefix+"/register/janlay")
	if second == first {
		t.Fatal("register twice gave the same key")
	}
	env.wantLookup(t, first, "janlay", false)
	env.wantLookup(t, second, "janlay", true)
	if u, _ := env.user(t, "janlay"); !u.CreatedAt.Equal(testNow) {
		t.Errorf("re-register changed created_at to %v", u.CreatedAt)
	}

	third := env.workerKey(t, http.MethodGet, workerPrefix+"/reset/janlay")
	env.wantLookup(t, second, "janlay", false)
	env.wantLookup(t, third, "janlay", true)

	rec, handled := env.worker(t, http.MethodGet, workerPrefix+"/reset/nobody")
	if !handled || rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `user "nobody" not found`) {
		t.Errorf("reset of unknown user: %v %d %q", handled, rec.Code, rec.Body)
	}
	if _, ok := env.user(t, "nobody"); ok {
		t.Error("reset created a user")
	}
}

func TestWorkerRoutesTTL(t *testing.T) {
	env := newTestEnv(t)
	expiry := func(name string) time.Time {
		u, _ := env.user(t, name)
		return u.ExpiresAt
	}

	env.workerKey(t, http.MethodGet, workerPrefix+"/register/bob?ttl=720h")
	if got := expiry("bob"); !got.Equal(testNow.Add(720 * time.Hour)) {
		t.Errorf("register ttl: expiry %v", got)
	}
	env.workerKey(t, http.MethodGet, workerPrefix+"/reset/bob")
	if got := expiry("bob"); !got.Equal(testNow.Add(720 * time.Hour)) {
		t.Errorf("reset without ttl changed expiry to %v", got)
	}
	env.workerKey(t, http.MethodGet, workerPrefix+"/reset/bob?ttl=1h")
	if got := expiry("bob"); !got.Equal(testNow.Add(time.Hour)) {
		t.Errorf("reset ttl: expiry %v", got)
	}
	env.workerKey(t, http.MethodGet, workerPrefix+"/register/bob")
	if got := expiry("bob"); !got.Equal(testNow.Add(time.Hour)) {
		t.Errorf("re-register without ttl changed expiry to %v", got)
	}
	env.workerKey(t, http.MethodGet, workerPrefix+"/register/bob?ttl=2h")
	if got := expiry("bob"); !got.Equal(testNow.Add(2 * time.Hour)) {
		t.Errorf("re-register ttl: expiry %v", got)
	}

	for _, ttl := range []string{"", "30d", "0s", "-5m", "x"} {
		rec, _ := env.worker(t, http.MethodGet, workerPrefix+"/register/carol?ttl="+ttl)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "ttl") {
			t.Errorf("ttl=%q: %d %q", ttl, rec.Code, rec.Body)
		}
	}
	if _, ok := env.user(t, "carol"); ok {
		t.Error("a bad ttl still created the user")
	}
}

func TestWorkerRoutesDeleteAndAddKey(t *testing.T) {
	env := newTestEnv(t)
	key := env.workerKey(t, http.MethodGet, workerPrefix+"/register/jan.lay%40example.com")
	if _, ok := env.user(t, "jan.lay@example.com"); !ok {
		t.Fatal("%40 was not decoded")
	}

	rec, handled := env.worker(t, http.MethodDelete, workerPrefix+"/jan.lay%40example.com")
	if !handled || rec.Code != http.StatusOK || rec.Body.String() != "OK\n" {
		t.Errorf("DELETE: %v %d %q", handled, rec.Code, rec.Body)
	}
	env.wantLookup(t, key, "jan.lay@example.com", false)
	rec, _ = env.worker(t, http.MethodDelete, workerPrefix+"/jan.lay%40example.com")
	if rec.Code != http.StatusNotFound {
		t.Errorf("second DELETE: %d %q", rec.Code, rec.Body)
	}

	// A user may be called like a command; DELETE still means "delete user".
	env.workerKey(t, http.MethodGet, workerPrefix+"/register/register")
	if rec, _ := env.worker(t, http.MethodDelete, workerPrefix+"/register"); rec.Code != http.StatusOK {
		t.Errorf("DELETE user named register: %d %q", rec.Code, rec.Body)
	}

	const upstream = "gsk_SeedAddedSecretKey9876"
	env.secret(upstream)
	rec, _ = env.worker(t, http.MethodGet, workerPrefix+"/addkey/API.Groq.COM/"+upstream)
	if rec.Code != http.StatusOK || rec.Body.String() != "OK\n" {
		t.Errorf("addkey: %d %q", rec.Code, rec.Body)
	}
	rec, _ = env.worker(t, http.MethodPost, workerPrefix+"/addkey/api.groq.com/sk%2Bplus")
	if rec.Code != http.StatusOK {
		t.Errorf("addkey with escaped key: %d %q", rec.Code, rec.Body)
	}
	hosts, _ := env.store.ListHosts(t.Context())
	if len(hosts) != 1 || hosts[0].Name != "api.groq.com" || hosts[0].BaseURL != "" ||
		len(hosts[0].Keys) != 2 || hosts[0].Keys[0].Key != upstream || hosts[0].Keys[1].Key != "sk+plus" {
		t.Errorf("hosts = %+v", hosts)
	}
	if n := env.hostsChanged.Load(); n != 2 {
		t.Errorf("HostsChanged called %d times, want 2", n)
	}
}

func TestWorkerRoutesErrors(t *testing.T) {
	env := newTestEnv(t)
	env.workerKey(t, http.MethodGet, workerPrefix+"/register/bob")
	for _, tc := range []struct {
		method, path string
		status       int
		allow, body  string
	}{
		{"GET", "/register/bad%20name", 400, "", "user name"},
		{"GET", "/register/", 400, "", "user name is empty"},
		{"GET", "/register/a%2Fb", 400, "", "user name"},
		{"GET", "/reset/" + strings.Repeat("x", 65), 400, "", "limit is 64"},
		{"GET", "/addkey/api_groq.com/k", 400, "", "host name"},
		{"GET", "/addkey/https:%2F%2Fapi.groq.com/k", 400, "", "scheme"},
		{"GET", "/addkey/api.groq.com/", 400, "", "key is empty"},
		{"GET", "/addkey/api.groq.com/a%0Ab", 400, "", "printable"},
		{"DELETE", "/bad%21", 400, "", "user name"},
		{"DELETE", "/nobody", 404, "", `user "nobody" not found`},
		{"PUT", "/register/bob", 405, "GET, POST", "GET or POST"},
		{"DELETE", "/reset/bob", 405, "GET, POST", "GET or POST"},
		{"PATCH", "/addkey/api.groq.com/k", 405, "GET, POST", "GET or POST"},
		{"GET", "/bob", 405, "DELETE", "DELETE"},
		{"POST", "/bob", 405, "DELETE", "DELETE"},
		{"GET", "", 404, "", "unknown admin command"},
		{"GET", "/", 404, "", "unknown admin command"},
		{"GET", "/register", 404, "", "unknown admin command"},
		{"GET", "/addkey/api.groq.com", 404, "", "unknown admin command"},
		{"GET", "/register/bob/extra", 404, "", "unknown admin command"},
		{"GET", "/users/bob", 404, "", "unknown admin command"},
	} {
		rec, handled := env.worker(t, tc.method, workerPrefix+tc.path)
		if !handled {
			t.Errorf("%s %s: not handled", tc.method, tc.path)
			continue
		}
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q %q; want %d Allow %q containing %q",
				tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body, tc.status, tc.allow, tc.body)
		}
		if strings.Contains(rec.Body.String(), testToken) {
			t.Errorf("%s %s: answer echoes the token", tc.method, tc.path)
		}
	}
	if n := env.hostsChanged.Load(); n != 0 {
		t.Errorf("HostsChanged called %d times after refusals", n)
	}
}

func TestWorkerRoutesWrongTokenPassesOn(t *testing.T) {
	env := newTestEnv(t)
	for _, path := range []string{
		"/",
		"/index.html",
		"/wrong-token/register/bob",
		"/" + strings.ToUpper(testToken) + "/register/bob",
		"/" + testToken[:len(testToken)-1] + "/register/bob",
		"/" + testToken + "x/register/bob",
		"/x" + testToken + "/register/bob",
		"//" + testToken + "/register/bob",
		"/v1/chat/completions",
		"/admin/users",
	} {
		for _, method := range []string{"GET", "POST", "DELETE", "PUT"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(method, "http://example.com"+path, nil)
			if env.h.ServeWorkerRoutes(rec, req) {
				t.Errorf("%s %s: handled", method, path)
			}
			if len(rec.Header()) != 0 || rec.Body.Len() != 0 || rec.Flushed {
				t.Errorf("%s %s: wrote headers %v or body %q", method, path, rec.Header(), rec.Body)
			}
		}
	}
	if n := env.store.Calls(""); n != 0 {
		t.Errorf("wrong tokens made %d store calls", n)
	}
	if n := env.logs.Len(); n != 0 {
		t.Errorf("wrong tokens logged %d entries", n)
	}
}

func TestWorkerRoutesEscapedToken(t *testing.T) {
	env := newTestEnv(t)
	env.h = &Handler{Store: env.store, Token: "p@ss w/rd", Logger: env.h.Logger}
	env.secret("p@ss w/rd")
	rec := httptest.NewRecorder()
	if !env.h.ServeWorkerRoutes(rec, httptest.NewRequest("GET", "/p%40ss%20w%2Frd/register/bob", nil)) || rec.Code != http.StatusOK {
		t.Errorf("escaped token: %d %q", rec.Code, rec.Body)
	}
	env.secret(strings.TrimSpace(rec.Body.String()))
}

func TestWorkerRoutesStoreFailures(t *testing.T) {
	for _, failure := range []struct {
		err    error
		status int
		body   string
	}{
		{fmt.Errorf("i/o timeout: %w", keystore.ErrUnavailable), 503, "key store unavailable\n"},
		{fmt.Errorf("boom"), 500, "internal error\n"},
	} {
		env := newTestEnv(t)
		env.store.FailAll(failure.err)
		for _, tc := range []struct{ method, path string }{
			{"GET", "/register/bob"},
			{"GET", "/register/bob?ttl=1h"},
			{"POST", "/reset/bob"},
			{"DELETE", "/bob"},
			{"GET", "/addkey/api.groq.com/gsk_k"},
		} {
			rec, handled := env.worker(t, tc.method, workerPrefix+tc.path)
			if !handled || rec.Code != failure.status || rec.Body.String() != failure.body {
				t.Errorf("%s %s: %v %d %q; want %d %q", tc.method, tc.path, handled, rec.Code, rec.Body, failure.status, failure.body)
			}
		}
		if env.hostsChanged.Load() != 0 {
			t.Error("HostsChanged called after a failure")
		}
	}
}
