package aiproxy_test

import (
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
			if code != 200 || len(hosts) != 1 || hosts[0].(map[string]any)["base_url"] != "https://api.groq.com/openai" {
				t.Fatalf("hosts: %d %v", code, out)
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
