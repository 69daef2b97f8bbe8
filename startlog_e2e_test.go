package aiproxy_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// startLine is what aiproxy logs at Info when a config loads.
type startLine struct {
	Level    string         `json:"level"`
	Store    map[string]any `json:"store"`
	Upstream struct {
		Name string `json:"name"`
		Keys int    `json:"keys"`
	} `json:"upstream"`
	Hosts          []map[string]any `json:"hosts"`
	SeedAdminPaths bool             `json:"seed_admin_paths"`
	SelfService    bool             `json:"self_service"`
	CORS           string           `json:"cors"`
	Host           string           `json:"host"`
	UnsetVariables []string         `json:"unset_variables"`
}

// entries returns the log lines whose message starts with msg.
func (l *logFile) entries(msg string) []startLine {
	l.t.Helper()
	var found []startLine
	for line := range strings.Lines(l.read()) {
		var e struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || !strings.HasPrefix(e.Msg, msg) {
			continue
		}
		var s startLine
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			l.t.Fatalf("%v: %s", err, line)
		}
		found = append(found, s)
	}
	return found
}

// TestStartLogSaysWhatRuns: at start, an Info line names the store and
// where its data is, the upstreams with their key counts and the route
// groups that are on, and shows no key or token.
func TestStartLogSaysWhatRuns(t *testing.T) {
	lf := newLogFile(t)
	store := filepath.Join(t.TempDir(), "start.db")
	s := startSite(t, siteOptions{
		global: lf.global(),
		store:  "store file " + store,
		extra:  "host api.groq.com gsk-start-Secret-1 gsk-start-Secret-2\n\t\tcors https://chat.example.com\n\t\tself_service off",
	})
	lines := lf.entries("aiproxy ready")
	if len(lines) != 1 {
		t.Fatalf("%d start lines in %s", len(lines), lf.read())
	}
	got := lines[0]
	mock, _ := url.Parse(s.upstream.URL)
	if got.Level != "info" || got.Store["backend"] != "file" || got.Store["path"] != store ||
		got.Upstream.Name != mock.Host || got.Upstream.Keys != 1 ||
		!reflect.DeepEqual(got.Hosts, []map[string]any{{"name": "api.groq.com", "keys": 2.0}}) ||
		!got.SeedAdminPaths || got.SelfService || got.CORS != "https://chat.example.com" {
		t.Fatalf("start line %+v in %s", got, lf.read())
	}
	if n := len(lf.entries("the default upstream has no API key")); n != 0 {
		t.Fatalf("warned of a missing key %d times with a key", n)
	}
	for _, secret := range []string{upstreamKey, "gsk-start-Secret", adminToken} {
		if strings.Contains(lf.read(), secret) {
			t.Errorf("the log shows %q", secret)
		}
	}
}

// TestStartLogWarnsOfNoUpstreamKey: a default upstream without a key, as
// when OPENAI_API_KEY is unset, is a Warn at start naming the variable.
func TestStartLogWarnsOfNoUpstreamKey(t *testing.T) {
	lf := newLogFile(t)
	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	%s
}
%s {
	aiproxy {
		admin_token %s
		upstream https://api.openai.com {env.AIPROXY_TEST_UNSET_OPENAI_KEY}
		store redis {
			address %s
			key_prefix test-nokey:
		}
	}
}
`, lf.global(), siteURL, adminToken, redisAddr)
	caddytest.NewTester(t).InitServer(cfg, "caddyfile")

	start := lf.entries("aiproxy ready")
	warn := lf.entries("the default upstream has no API key")
	if len(start) != 1 || start[0].Store["backend"] != "redis" || start[0].Store["key_prefix"] != "test-nokey:" ||
		!reflect.DeepEqual(start[0].Store["addresses"], []any{redisAddr}) ||
		start[0].Upstream.Name != "api.openai.com" || start[0].Upstream.Keys != 0 || start[0].CORS != "*" {
		t.Fatalf("start line %+v in %s", start, lf.read())
	}
	if len(warn) != 1 || warn[0].Level != "warn" || warn[0].Host != "api.openai.com" ||
		!reflect.DeepEqual(warn[0].UnsetVariables, []string{"AIPROXY_TEST_UNSET_OPENAI_KEY"}) {
		t.Fatalf("warnings %+v in %s", warn, lf.read())
	}
}
