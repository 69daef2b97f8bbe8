package aiproxy_test

import (
	"strings"
	"testing"
	"time"
)

// TestTimeLimitedKeys: ttl and expires_at on create, PATCH to expire and to
// revive, a reset that keeps the expiry, and the worker route's ?ttl.
func TestTimeLimitedKeys(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := startSite(t, siteOptions{store: backend})

			before := time.Now().UTC().Truncate(time.Second)
			code, out := s.adminJSON("POST", "/admin/users", map[string]any{"name": "temp", "ttl": "720h"})
			if code != 201 {
				t.Fatalf("create with ttl: %d %v", code, out)
			}
			exp, err := time.Parse(time.RFC3339, out["expires_at"].(string))
			if err != nil || exp.Before(before.Add(720*time.Hour)) || exp.After(time.Now().Add(720*time.Hour+time.Second)) {
				t.Fatalf("expires_at %v for ttl 720h", out["expires_at"])
			}
			key := out["key"].(string)
			if code, body := s.chat(key); code != 200 {
				t.Fatalf("unexpired key: %d %s", code, body)
			}

			// An expiry in the past suspends the key at once.
			past := "2026-01-02T03:04:05Z"
			if code, out := s.adminJSON("PATCH", "/admin/users/temp", map[string]any{"expires_at": past}); code != 200 {
				t.Fatalf("patch to past: %d %v", code, out)
			}
			code, body := s.chat(key)
			if code != 401 {
				t.Fatalf("expired key: %d %s", code, body)
			}
			if c, msg := apiError(t, body); c != "expired_api_key" || !strings.Contains(msg, past) {
				t.Fatalf("expired key: code %q message %q", c, msg)
			}

			// A reset keeps the expiry: the new key is expired too.
			code, out = s.adminJSON("POST", "/admin/users/temp/reset", nil)
			if code != 200 || out["expires_at"] != past {
				t.Fatalf("reset: %d %v", code, out)
			}
			key = out["key"].(string)
			if code, body := s.chat(key); code != 401 {
				t.Fatalf("reset key of an expired user: %d %s", code, body)
			}

			// Extending the expiry revives the key; clearing it too.
			if code, out := s.adminJSON("PATCH", "/admin/users/temp", map[string]any{"ttl": "1h"}); code != 200 {
				t.Fatalf("patch ttl: %d %v", code, out)
			}
			if code, body := s.chat(key); code != 200 {
				t.Fatalf("revived key: %d %s", code, body)
			}
			if code, out := s.adminJSON("PATCH", "/admin/users/temp", map[string]any{"expires_at": nil}); code != 200 || out["expires_at"] != nil {
				t.Fatalf("clear expiry: %d %v", code, out)
			}

			// The worker route's ?ttl.
			code, text := s.worker("GET", "/register/seeded?ttl=48h")
			if code != 200 || !keyPattern.MatchString(strings.TrimSpace(text)) {
				t.Fatalf("seed register with ttl: %d %q", code, text)
			}
			_, out = s.adminJSON("GET", "/admin/users/seeded", nil)
			if out["expires_at"] == nil {
				t.Fatalf("seed ttl not stored: %v", out)
			}
			if code, _ := s.worker("GET", "/register/bad?ttl=-1h"); code != 400 {
				t.Fatalf("negative ttl: %d", code)
			}
		})
	}
}
