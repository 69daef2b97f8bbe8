package aiproxy_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/aiproxy/aiproxy/internal/netfault"
)

// TestKeysSurviveReload: users and run-time hosts outlive a config reload,
// on both stores, and the embedded store's file is not locked by the old
// config while the new one starts.
func TestKeysSurviveReload(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			store := storeLine(t, backend)
			s := startSite(t, siteOptions{store: store})
			key := s.register("steady")
			// Same store, a changed config: Caddy provisions the new handler
			// before cleaning up the old one.
			s.load(siteOptions{store: store, extra: "cors https://changed.example"})
			if code, body := s.chat(key); code != 200 {
				t.Fatalf("after reload: %d %s", code, body)
			}
			s.load(siteOptions{store: store})
			if code, body := s.chat(key); code != 200 {
				t.Fatalf("after second reload: %d %s", code, body)
			}
		})
	}
}

// TestConfigValidation: an admin token is required, at least 16
// characters long, and an empty one from an unset variable names it, in
// JSON and in the Caddyfile; an unknown store lists the backends.
func TestConfigValidation(t *testing.T) {
	t.Setenv("AIPROXY_TEST_SHORT_TOKEN", "short")
	store := `"store": {"backend": "file", "path": "` + filepath.Join(t.TempDir(), "v.db") + `"}`
	jsonConfig := func(handler string) string {
		return `{"apps": {"http": {"servers": {"s": {"listen": [":9080"], "routes": [{"handle": [` + handler + `]}]}}}}}`
	}
	for _, c := range []struct {
		name, config, adapter, want string
	}{
		{"missing", jsonConfig(`{"handler": "aiproxy", ` + store + `}`), "json",
			"admin_token is required: set it to a random secret of at least 16 characters"},
		{"unset variable", jsonConfig(`{"handler": "aiproxy", "admin_token": "{env.AIPROXY_TEST_UNSET_TOKEN}", ` + store + `}`), "json",
			"admin_token is empty: is AIPROXY_TEST_UNSET_TOKEN set?"},
		{"short variable", jsonConfig(`{"handler": "aiproxy", "admin_token": "{env.AIPROXY_TEST_SHORT_TOKEN}", ` + store + `}`), "json",
			"admin_token (from {env.AIPROXY_TEST_SHORT_TOKEN}): too short: 5 of at least 16 characters"},
		{"one character", "http://localhost:9080 {\n\taiproxy {\n\t\tadmin_token x\n\t\tstore file " +
			filepath.Join(t.TempDir(), "x.db") + "\n\t}\n}\n", "caddyfile",
			"admin_token: too short: 1 of at least 16 characters"},
		{"fifteen characters", jsonConfig(`{"handler": "aiproxy", "admin_token": "0123456789abcde", ` + store + `}`), "json",
			"too short: 15 of at least 16"},
		{"unset variable, Caddyfile", "http://localhost:9080 {\n\taiproxy {\n\t\tadmin_token {env.AIPROXY_TEST_UNSET_TOKEN}\n\t\tstore file " +
			filepath.Join(t.TempDir(), "u.db") + "\n\t}\n}\n", "caddyfile",
			"admin_token is empty: is AIPROXY_TEST_UNSET_TOKEN set?"},
		{"no value", "http://localhost:9080 {\n\taiproxy {\n\t\tadmin_token\n\t}\n}\n", "caddyfile",
			"admin_token needs a value"},
		{"unknown store", jsonConfig(`{"handler": "aiproxy", "admin_token": "0123456789abcdef", "store": {"backend": "sqlite"}}`), "json",
			`unknown backend \"sqlite\"; use one of: file, redis`},
		{"unknown store, Caddyfile", "http://localhost:9080 {\n\taiproxy {\n\t\tadmin_token 0123456789abcdef\n\t\tstore sqlite\n\t}\n}\n", "caddyfile",
			`unknown backend \"sqlite\"; use one of: file, redis`},
	} {
		t.Run(c.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, c.config, c.adapter, c.want)
		})
	}
}

// TestNoSecretsInLogs runs the main flows with debug logging and access logs
// on, then checks no user key, admin token or upstream key was written.
func TestNoSecretsInLogs(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	opts := siteOptions{
		global: fmt.Sprintf("log {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}", logFile),
		// The access log filter README recommends: Caddy redacts only
		// Authorization and cookies, not the other key headers.
		siteDir: "log {\n\t\toutput file " + logFile +
			"\n\t\tformat filter {\n\t\t\trequest>headers>Api-Key delete\n\t\t\trequest>headers>X-Api-Key delete\n\t\t\trequest>headers>Sec-Websocket-Protocol delete\n\t\t}\n\t}",
	}
	s := startSite(t, opts)
	key := s.register("quiet")
	code, body := s.worker("GET", "/reset/quiet")
	newKey := strings.TrimSpace(body)
	if code != 200 {
		t.Fatal(code, body)
	}
	port, err := netfault.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s.adminJSON("POST", "/admin/hosts/down.test/keys", map[string]any{
		"key": "sk-upstream-logged-7777", "base_url": fmt.Sprintf("http://127.0.0.1:%d", port)})
	s.worker("GET", "/addkey/down.test/sk-upstream-logged-8888")
	s.chat(newKey)
	s.chat(key) // refused: the old key
	s.request("GET", "/v1/models", nil, "Api-Key", newKey)
	s.request("GET", "/v1/models", nil, "X-Api-Key", newKey)
	wsRoundTrip(t, s, "Sec-WebSocket-Protocol: realtime, openai-insecure-api-key."+newKey)
	s.request("POST", "/v1/chat/completions", strings.NewReader(`{"model":"error-500"}`),
		"Authorization", "Bearer "+newKey, "Content-Type", "application/json")
	for range 2 { // both keys of a host whose dial fails
		if code, _ := s.chat(newKey, "X-Host-Final", "down.test"); code != 502 {
			t.Fatalf("down host: %d", code)
		}
	}
	s.adminJSON("GET", "/admin/users", nil)
	s.adminJSON("POST", "/admin/users/quiet/reset", nil)

	// Reloading flushes and closes the log writers of the old config.
	s.load(siteOptions{})
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logs, []byte(`"uri":"/v1/chat/completions"`)) || !bytes.Contains(logs, []byte(`"uri":"/v1/models"`)) ||
		!bytes.Contains(logs, []byte(`"user_id":"quiet"`)) {
		t.Fatalf("the access log did not record the proxied requests: %s", logs)
	}
	for name, secret := range map[string]string{
		"user key": key, "reset key": newKey, "admin token": adminToken,
		"upstream key": upstreamKey, "REST upstream key": "sk-upstream-logged-7777",
		"upstream key via addkey": "sk-upstream-logged-8888",
	} {
		if i := bytes.Index(logs, []byte(secret)); i >= 0 {
			t.Logf("%s", logs[max(0, i-600):min(len(logs), i+100)])
			t.Errorf("the %s appears in the logs", name)
		}
	}
}
