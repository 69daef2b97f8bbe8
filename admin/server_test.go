package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aiproxy/aiproxy/keystore"
)

// siteHandler routes like the aiproxy module: /admin to ServeREST, then the
// worker routes, then the site's own content.
func siteHandler(h *Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/admin" || strings.HasPrefix(r.URL.Path, "/admin/"):
			h.ServeREST(w, r)
		case h.ServeWorkerRoutes(w, r):
		default:
			http.Error(w, "the site's own 404", http.StatusNotFound)
		}
	})
}

func TestOverHTTP(t *testing.T) {
	env := newTestEnv(t)
	srv := httptest.NewServer(siteHandler(env.h))
	defer srv.Close()

	do := func(method, path, body string, admin bool) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if admin {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, string(b)
	}

	// The original worker's README commands, as curl sends them.
	status, hdr, body := do("GET", "/"+testToken+"/register/janlay", "", false)
	key := strings.TrimSuffix(body, "\n")
	env.secret(key)
	if status != 200 || !keystore.IsUserKeyShape(key) || hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("register: %d %q %v", status, body, hdr)
	}
	if status, _, body := do("DELETE", "/"+testToken+"/janlay", "", false); status != 200 || body != "OK\n" {
		t.Errorf("delete: %d %q", status, body)
	}
	env.wantLookup(t, key, "janlay", false)

	// A wrong token is answered like any unknown path.
	wantStatus, wantHdr, wantBody := do("GET", "/no-such-page/register/janlay", "", false)
	for _, method := range []string{"GET", "DELETE"} {
		status, hdr, body := do(method, "/wrong-token/register/janlay", "", false)
		if status != wantStatus || body != wantBody || hdr.Get("Content-Type") != wantHdr.Get("Content-Type") || hdr.Get("Cache-Control") != "" {
			t.Errorf("%s with wrong token: %d %q %v; unknown path: %d %q", method, status, body, hdr, wantStatus, wantBody)
		}
	}

	// REST with an encoded name, end to end.
	status, _, body = do("POST", "/admin/users", `{"name":"a@b.example","ttl":"1h"}`, true)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	if i := strings.Index(body, `"key":"`); i >= 0 {
		env.secret(body[i+7 : i+7+keystore.UserKeyLen])
	}
	if status, _, body := do("GET", "/admin/users/a%40b.example", "", true); status != 200 || !strings.Contains(body, `"name":"a@b.example"`) {
		t.Errorf("get encoded: %d %s", status, body)
	}
	if status, _, body := do("GET", "/admin/users/a%40b.example", "", false); status != 401 || !strings.Contains(body, "invalid_admin_token") {
		t.Errorf("get without token: %d %s", status, body)
	}
	if status, hdr, body := do("PUT", "/admin/users", "", true); status != 405 || hdr.Get("Allow") != "GET, POST" || !strings.Contains(body, `"code":"method_not_allowed"`) {
		t.Errorf("PUT: %d %v %s", status, hdr, body)
	}
	// Clients don't clean escaped dot segments; the answer must still be JSON.
	if status, hdr, body := do("GET", "/admin/users/%2E%2E/hosts", "", true); status != 404 || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("dot segment: %d %v %s", status, hdr, body)
	}
}

func TestConcurrentUse(t *testing.T) {
	env := newTestEnv(t)
	const workers = 16
	keys := make(chan string, 2*workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			// The first requests race on the Handler's lazy setup.
			rec := httptest.NewRecorder()
			target := workerPrefix + "/register/shared"
			if i%2 == 1 {
				target = workerPrefix + "/reset/shared"
			}
			if env.h.ServeWorkerRoutes(rec, httptest.NewRequest("GET", target, nil)) && rec.Code == http.StatusOK {
				keys <- strings.TrimSpace(rec.Body.String())
			}
			rec = httptestREST(env.h, "POST", "/admin/users/shared/reset", "", "Bearer "+testToken)
			if rec.Code == http.StatusOK {
				keys <- rec.Body.String()[strings.Index(rec.Body.String(), `"key":"`)+7:][:keystore.UserKeyLen]
			}
			httptestREST(env.h, "GET", "/admin/users", "", "Bearer "+testToken)
		})
	}
	wg.Wait()
	close(keys)

	// However the calls interleaved, exactly one issued key works.
	valid := 0
	for key := range keys {
		env.secret(key)
		if _, err := env.store.LookupKey(t.Context(), keystore.HashKey(key)); err == nil {
			valid++
		}
	}
	if valid != 1 {
		t.Errorf("%d issued keys work, want exactly 1", valid)
	}
}
