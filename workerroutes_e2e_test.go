package aiproxy_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestSeedUserLifecycle walks the original worker's admin commands on both
// stores: register, use, reset (old key refused at once), delete.
func TestWorkerRoutesUserLifecycle(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := startSite(t, siteOptions{store: backend})

			key := s.register("janlay")
			if code, body := s.chat(key); code != 200 {
				t.Fatalf("chat with new key: %d %s", code, body)
			}
			if got := s.upstream.LastRequest().Header.Get("Authorization"); got != "Bearer "+upstreamKey {
				t.Fatalf("upstream saw Authorization %q, want the provider key", got)
			}

			code, body := s.worker("GET", "/reset/janlay")
			newKey := strings.TrimSuffix(body, "\n")
			if code != 200 || !keyPattern.MatchString(newKey) || newKey == key {
				t.Fatalf("reset: %d %q", code, body)
			}
			if code, body := s.chat(key); code != 401 {
				t.Fatalf("old key after reset: %d %s", code, body)
			} else if c, _ := apiError(t, body); c != "invalid_api_key" {
				t.Fatalf("old key after reset: code %q", c)
			}
			if code, body := s.chat(newKey); code != 200 {
				t.Fatalf("new key after reset: %d %s", code, body)
			}

			// Registering an existing user resets it, as the worker did.
			again := s.register("janlay")
			if again == newKey {
				t.Fatal("register of an existing user returned the same key")
			}
			if code, _ := s.chat(newKey); code != 401 {
				t.Fatalf("key replaced by register still works: %d", code)
			}

			if code, body := s.worker("DELETE", "/janlay"); code != 200 || body != "OK\n" {
				t.Fatalf("delete: %d %q", code, body)
			}
			if code, _ := s.chat(again); code != 401 {
				t.Fatalf("key of deleted user: %d", code)
			}
			if code, _ := s.worker("DELETE", "/janlay"); code != 404 {
				t.Fatalf("delete of a missing user: %d", code)
			}
			if code, _ := s.worker("GET", "/reset/nobody"); code != 404 {
				t.Fatalf("reset of a missing user: %d", code)
			}
			if code, _ := s.worker("GET", "/register/bad%20name"); code != 400 {
				t.Fatalf("register with a bad name: %d", code)
			}
		})
	}
}

// TestSeedWrongTokenIsUnknownPath: a wrong token must look exactly like any
// other path the site does not know (no oracle for guessing the token).
func TestWorkerRoutesWrongTokenIsUnknownPath(t *testing.T) {
	s := startSite(t, siteOptions{})
	wantCode, _, wantBody := s.request("GET", "/nothing/here", nil)
	for _, path := range []string{
		"/wrong-token/register/janlay",
		"/" + adminToken[:len(adminToken)-1] + "/register/janlay",
		"/" + adminToken + "x/register/janlay",
		"/" + strings.ToUpper(adminToken) + "/reset/janlay",
	} {
		code, _, body := s.request("GET", path, nil)
		if code != wantCode || string(body) != string(wantBody) {
			t.Errorf("%s: %d %q, want the unknown-path answer %d %q", path, code, body, wantCode, wantBody)
		}
	}
	if code, _ := s.worker("DELETE", "/ghost"); code != http.StatusNotFound {
		t.Fatalf("delete with the right token of a missing user: %d", code)
	}
}

// TestSeedAddKey registers an upstream host and key at run time and uses it
// through X-Host-Final.
func TestWorkerRoutesAddKey(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := startSite(t, siteOptions{store: backend})
			groq := newHost(t, "sk-groq-0001")
			// A host registered with addkey is dialed at https://host; this
			// test names the mock by its address through REST instead, then
			// adds a second key with the worker route.
			host := "groq.test"
			if code, out := s.adminJSON("POST", "/admin/hosts/"+host+"/keys",
				map[string]any{"key": "sk-groq-0001", "base_url": groq.URL}); code != 201 {
				t.Fatalf("add host: %d %v", code, out)
			}
			if code, body := s.worker("GET", "/addkey/"+host+"/sk-groq-0002"); code != 200 || body != "OK\n" {
				t.Fatalf("addkey: %d %q", code, body)
			}
			key := s.register("ann")
			seen := map[string]bool{}
			for range 4 {
				code, body := s.chat(key, "X-Host-Final", host)
				// The mock accepts only its first key; the second gets 401
				// from the provider, passed through untouched.
				if code != 200 && code != 401 {
					t.Fatalf("chat via %s: %d %s", host, code, body)
				}
				seen[groq.LastRequest().Header.Get("Authorization")] = true
			}
			if !seen["Bearer sk-groq-0001"] || !seen["Bearer sk-groq-0002"] || len(seen) != 2 {
				t.Fatalf("keys used for the host: %v, want both, spread", seen)
			}
			if n := len(s.upstream.Requests()); n != 0 {
				t.Fatalf("default upstream got %d requests meant for %s", n, host)
			}
		})
	}
}
