package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/aiproxy/aiproxy/internal/storetest"
	"github.com/aiproxy/aiproxy/keystore"
)

const testToken = "t0p-s3cret-Admin-token"

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testEnv is a Handler over a real store that fails on demand, a fixed clock and an observed
// logger. On cleanup it fails the test if any log entry holds a secret: the
// token, or any key seen in a request or response.
type testEnv struct {
	h            *Handler
	store        *storetest.Store
	logs         *observer.ObservedLogs
	hostsChanged atomic.Int32

	mu      sync.Mutex
	secrets []string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	env := &testEnv{store: storetest.New(t), logs: logs}
	var clients atomic.Uint32
	env.h = &Handler{
		Store:        env.store,
		Token:        testToken,
		Logger:       zap.New(core),
		Now:          func() time.Time { return testNow },
		HostsChanged: func() { env.hostsChanged.Add(1) },
		// Every request from a client of its own: tests of anything but
		// the throttle may fail authentication as often as they like.
		ClientIP: func(*http.Request) string {
			n := clients.Add(1)
			return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
		},
	}
	env.secret(testToken)
	t.Cleanup(func() { env.checkLogs(t) })
	return env
}

// secret records s as something no log entry may contain.
func (e *testEnv) secret(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s)
}

func (e *testEnv) checkLogs(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, entry := range e.logs.All() {
		text := entry.Message + " " + fmt.Sprint(entry.ContextMap())
		for _, s := range e.secrets {
			if strings.Contains(text, s) {
				t.Errorf("log entry %q holds a secret", entry.Message)
			}
		}
	}
}

// rest sends a REST request with the right admin token.
func (e *testEnv) rest(t *testing.T, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	return e.restAuth(t, method, target, body, "Bearer "+testToken)
}

// restAuth sends a REST request with the given Authorization header ("" for
// none) and checks what every REST answer must have.
func (e *testEnv) restAuth(t *testing.T, method, target, body, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	e.h.ServeREST(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", method, target, ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s %s: Cache-Control = %q, want no-store", method, target, cc)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Errorf("%s %s: body is not JSON: %q", method, target, rec.Body)
	}
	var issued struct {
		Key string `json:"key"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &issued) == nil && issued.Key != "" {
		e.secret(issued.Key)
	}
	return rec
}

// worker sends a worker-route request and checks the headers of handled ones.
func (e *testEnv) worker(t *testing.T, method, target string) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	rec := httptest.NewRecorder()
	handled := e.h.ServeWorkerRoutes(rec, httptest.NewRequest(method, target, nil))
	if !handled {
		return rec, false
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("%s %s: Content-Type = %q", method, target, ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s %s: Cache-Control = %q, want no-store", method, target, cc)
	}
	if !strings.HasSuffix(rec.Body.String(), "\n") {
		t.Errorf("%s %s: body %q does not end in a newline", method, target, rec.Body)
	}
	if key := strings.TrimSpace(rec.Body.String()); keystore.IsUserKeyShape(key) {
		e.secret(key)
	}
	return rec, true
}

// workerKey runs a worker route command expected to answer 200 with a new key.
func (e *testEnv) workerKey(t *testing.T, method, target string) string {
	t.Helper()
	rec, handled := e.worker(t, method, target)
	if !handled || rec.Code != http.StatusOK {
		t.Fatalf("%s %s: handled=%v, status %d, body %q", method, target, handled, rec.Code, rec.Body)
	}
	key := strings.TrimSuffix(rec.Body.String(), "\n")
	if !keystore.IsUserKeyShape(key) {
		t.Fatalf("%s %s: body %q is not a key", method, target, rec.Body)
	}
	return key
}

// apiError is the OpenAI error shape.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// wantError checks rec is an OpenAI-shaped error with status and code.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) apiError {
	t.Helper()
	var body apiError
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	gotCode := "<null>"
	if body.Error.Code != nil {
		gotCode = *body.Error.Code
	}
	if rec.Code != status || gotCode != code || body.Error.Message == "" || body.Error.Type == "" {
		t.Errorf("got %d code %s (%s: %q), want %d code %s", rec.Code, gotCode, body.Error.Type, body.Error.Message, status, code)
	}
	return body
}

// decode unmarshals a successful answer with the wanted status.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder, status int) T {
	t.Helper()
	var v T
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %q", rec.Code, status, rec.Body)
	}
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields() // the response shapes are a contract
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %T: %v", v, err)
	}
	return v
}

// user reads a user straight from the store, neither counting a call nor
// meeting an injected failure.
func (e *testEnv) user(t *testing.T, name string) (keystore.User, bool) {
	t.Helper()
	u, err := e.store.Real().GetUser(t.Context(), name)
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("GetUser(%q): %v", name, err)
	}
	return u, err == nil
}

// wantLookup checks whether key currently authenticates as user name.
func (e *testEnv) wantLookup(t *testing.T, key, name string, ok bool) {
	t.Helper()
	u, err := e.store.LookupKey(t.Context(), keystore.HashKey(key))
	switch {
	case ok && (err != nil || u.Name != name):
		t.Errorf("key of %q: LookupKey = %q, %v; want it accepted", name, u.Name, err)
	case !ok && err == nil:
		t.Errorf("old key of %q still accepted (as %q)", name, u.Name)
	}
}

// httptestREST sends a REST request to a bare Handler.
func httptestREST(h *Handler, method, target, body, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeREST(rec, req)
	return rec
}

// zapOp matches the op field storeError logs.
func zapOp(op string) zap.Field { return zap.String("op", op) }
