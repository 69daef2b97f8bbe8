package aiproxy_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestRESTAdmin drives the JSON admin API through Caddy on both stores.
func TestRESTAdmin(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := startSite(t, siteOptions{store: backend})

			code, out := s.adminJSON("POST", "/admin/users", map[string]any{"name": "bob@example.com"})
			key, _ := out["key"].(string)
			if code != 201 || out["name"] != "bob@example.com" || !keyPattern.MatchString(key) {
				t.Fatalf("create: %d %v", code, out)
			}
			if code, out := s.adminJSON("POST", "/admin/users", map[string]any{"name": "bob@example.com"}); code != 409 {
				t.Fatalf("duplicate: %d %v", code, out)
			}
			for _, bad := range []map[string]any{{"name": ""}, {"name": "a b"}, {"name": strings.Repeat("x", 65)}, {"nom": "x"}} {
				if code, out := s.adminJSON("POST", "/admin/users", bad); code != 400 {
					t.Fatalf("bad create %v: %d %v", bad, code, out)
				}
			}
			if code, body := s.chat(key); code != 200 {
				t.Fatalf("chat with REST-created key: %d %s", code, body)
			}

			code, out = s.adminJSON("GET", "/admin/users", nil)
			data, _ := out["data"].([]any)
			if code != 200 || len(data) != 1 {
				t.Fatalf("list: %d %v", code, out)
			}
			u := data[0].(map[string]any)
			if u["key_hint"] != "sk-cfw..."+key[len(key)-4:] {
				t.Fatalf("key_hint %v", u["key_hint"])
			}
			if code, out := s.adminJSON("GET", "/admin/users/bob%40example.com", nil); code != 200 || out["name"] != "bob@example.com" {
				t.Fatalf("get: %d %v", code, out)
			}
			if code, _ := s.adminJSON("GET", "/admin/users/nobody", nil); code != 404 {
				t.Fatalf("get missing: %d", code)
			}

			code, out = s.adminJSON("POST", "/admin/users/bob@example.com/reset", nil)
			newKey, _ := out["key"].(string)
			if code != 200 || !keyPattern.MatchString(newKey) || newKey == key {
				t.Fatalf("reset: %d %v", code, out)
			}
			if code, _ := s.chat(key); code != 401 {
				t.Fatalf("old key after REST reset: %d", code)
			}

			// Listings never show a full key, user or upstream.
			if code, out := s.adminJSON("POST", "/admin/hosts/groq.test/keys",
				map[string]any{"key": "sk-groq-secret-9999", "base_url": "https://api.groq.com/openai"}); code != 201 || out["id"] == "" {
				t.Fatalf("add host key: %d %v", code, out)
			}
			for _, path := range []string{"/admin/users", "/admin/users/bob@example.com", "/admin/hosts"} {
				_, _, raw := s.request("GET", path, nil, "Authorization", "Bearer "+adminToken)
				for _, secret := range []string{newKey, key, "sk-groq-secret-9999"} {
					if strings.Contains(string(raw), secret) {
						t.Fatalf("%s shows a full key: %s", path, raw)
					}
				}
			}
			code, out = s.adminJSON("GET", "/admin/hosts", nil)
			hosts, _ := out["data"].([]any)
			if code != 200 || len(hosts) != 2 || hosts[1].(map[string]any)["base_url"] != "https://api.groq.com/openai" {
				t.Fatalf("hosts: %d %v; want the default upstream and groq.test", code, out)
			}
			if code, _ := s.adminJSON("DELETE", "/admin/hosts/groq.test", nil); code != 200 {
				t.Fatalf("delete host: %d", code)
			}
			if code, body := s.chat(newKey, "X-Host-Final", "groq.test"); code != 400 {
				t.Fatalf("deleted host still selectable: %d %s", code, body)
			}

			if code, _ := s.adminJSON("DELETE", "/admin/users/bob@example.com", nil); code != 200 {
				t.Fatalf("delete: %d", code)
			}
			if code, _ := s.chat(newKey); code != 401 {
				t.Fatalf("deleted user's key: %d", code)
			}
			if code, _ := s.adminJSON("DELETE", "/admin/users/bob@example.com", nil); code != 404 {
				t.Fatalf("delete again: %d", code)
			}
		})
	}
}

// TestRESTAdminAuth: the admin API needs the admin token as a Bearer token.
func TestRESTAdminAuth(t *testing.T) {
	s := startSite(t, siteOptions{})
	user := s.register("someone")
	for name, hdr := range map[string][]string{
		"none":     nil,
		"wrong":    {"Authorization", "Bearer not-the-token"},
		"prefix":   {"Authorization", "Bearer " + adminToken[:5]},
		"user key": {"Authorization", "Bearer " + user},
	} {
		code, _, body := s.request("GET", "/admin/users", nil, hdr...)
		if code != 401 {
			t.Errorf("%s: %d %s", name, code, body)
			continue
		}
		apiError(t, body)
	}
}

// TestAdminTokenGuessingIsThrottled: after 10 wrong admin tokens in a
// minute, a client (as Caddy sees it behind a trusted proxy) gets 429 from
// the REST API, even with the right token, and the worker routes answer it
// as an unknown path, even with the right token, so guessing there is
// throttled too and still tells nothing. Other clients are not affected.
func TestAdminTokenGuessingIsThrottled(t *testing.T) {
	s := startSite(t, siteOptions{global: "servers {\n\t\ttrusted_proxies static private_ranges\n\t}"})
	from := func(client string) []string { return []string{"X-Forwarded-For", client} }
	bearer := func(client, token string) []string {
		return append(from(client), "Authorization", "Bearer "+token)
	}

	const guesser = "203.0.113.7"
	for i := range 10 {
		code, _, body := s.request("GET", "/admin/users", nil, bearer(guesser, fmt.Sprintf("guess-%02d-of-the-token", i))...)
		if code != 401 {
			t.Fatalf("guess %d: %d %s", i, code, body)
		}
	}
	code, hdr, body := s.request("GET", "/admin/users", nil, bearer(guesser, adminToken)...)
	if code != 429 {
		t.Fatalf("right token after 10 wrong ones: %d %s, want 429", code, body)
	}
	if c, _ := apiError(t, body); c != "rate_limit_exceeded" {
		t.Errorf("code %q", c)
	}
	if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", hdr.Get("Retry-After"))
	}
	if code, _, body := s.request("GET", "/admin/users", nil, bearer("203.0.113.8", adminToken)...); code != 200 {
		t.Fatalf("another client: %d %s", code, body)
	}

	// The worker routes: a wrong token of a token's size is a guess, the
	// answer is the site's own, and after 10 the right token gets it too.
	const seedGuesser = "203.0.113.9"
	wantCode, _, wantBody := s.request("GET", "/nothing/here", nil, from(seedGuesser)...)
	for i := range 10 {
		code, _, body := s.request("GET", fmt.Sprintf("/guess-%02d-of-the-token/register/mallory", i), nil, from(seedGuesser)...)
		if code != wantCode || !bytes.Equal(body, wantBody) {
			t.Fatalf("seed guess %d: %d %q, want the unknown-path answer", i, code, body)
		}
	}
	code, _, body = s.request("GET", "/"+adminToken+"/register/mallory", nil, from(seedGuesser)...)
	if code != wantCode || !bytes.Equal(body, wantBody) {
		t.Fatalf("right token from a throttled client: %d %q, want the unknown-path answer", code, body)
	}
	if code, out := s.adminJSON("GET", "/admin/users/mallory", nil); code != 404 {
		t.Fatalf("a throttled client registered a user: %d %v", code, out)
	}
	if code, _, _ := s.request("GET", "/admin/users", nil, bearer(seedGuesser, adminToken)...); code != 429 {
		t.Fatalf("REST for a client throttled on the worker routes: %d, want 429", code)
	}
	if code, _, body := s.request("GET", "/"+adminToken+"/register/alice", nil, from("203.0.113.10")...); code != 200 {
		t.Fatalf("worker route from another client: %d %s", code, body)
	}
}
