package aiproxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestIsProxyPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/v1":                     true,
		"/v1/":                    true,
		"/v1/chat/completions":    true,
		"/v2/x":                   true,
		"/v10/x":                  true,
		"/openai":                 true,
		"/openai/v1/models":       true,
		"/v":                      false,
		"/v/":                     false,
		"/va/x":                   false,
		"/v1x":                    false,
		"/openaix":                false,
		"/admin/users":            false,
		"/":                       false,
		"/index.html":             false,
		"/static/v1/chat":         false,
		"/V1/chat":                false,
		"/openai-compat/v1/chats": false,
	} {
		if got := isProxyPath(path); got != want {
			t.Errorf("isProxyPath(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestUserKey(t *testing.T) {
	const k = "sk-cfwKEY"
	cases := []struct {
		name string
		hdr  http.Header
		want string
	}{
		{"bearer", http.Header{"Authorization": {"Bearer " + k}}, k},
		{"bearer lowercase", http.Header{"Authorization": {"bearer  " + k + " "}}, k},
		{"basic is not a key", http.Header{"Authorization": {"Basic " + k}}, ""},
		{"authorization wins", http.Header{"Authorization": {"Basic x"}, "Api-Key": {k}}, ""},
		{"api-key", http.Header{"Api-Key": {k}}, k},
		{"x-api-key", http.Header{"X-Api-Key": {k}}, k},
		{"subprotocol", http.Header{"Sec-Websocket-Protocol": {"realtime, openai-insecure-api-key." + k + ", openai-beta.realtime-v1"}}, k},
		{"subprotocol first", http.Header{"Sec-Websocket-Protocol": {"openai-insecure-api-key." + k}}, k},
		{"other subprotocols", http.Header{"Sec-Websocket-Protocol": {"realtime"}}, ""},
		{"none", http.Header{}, ""},
	}
	for _, c := range cases {
		if got := userKey(c.hdr); got != c.want {
			t.Errorf("%s: userKey = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestMissingKeyMessage: a key sent without "Bearer " is told how to send
// it, and the answer never repeats the header.
func TestMissingKeyMessage(t *testing.T) {
	const key = "sk-cfwKEYwithoutBEARER"
	for _, c := range []struct{ header, want string }{
		{"", "You didn't provide an API key"},
		{"Bearer", "You didn't provide an API key"},
		{key, `The Authorization header must start with "Bearer "`},
		{"Basic dXNlcjpwYXNz", `The Authorization header must start with "Bearer "`},
		{"Token " + key, `The Authorization header must start with "Bearer "`},
	} {
		got := missingKeyMessage(c.header)
		if !strings.HasPrefix(got, c.want) || !strings.Contains(got, "Authorization: Bearer sk-cfw...") {
			t.Errorf("%q: %q, want it to start with %q", c.header, got, c.want)
		}
		if strings.Contains(got, key) || strings.Contains(got, "dXNlcjpwYXNz") {
			t.Errorf("%q: the message repeats the header: %q", c.header, got)
		}
	}
}

func TestParseBaseURL(t *testing.T) {
	cases := []struct {
		raw                                string
		name, dial, hostHeader, pathPrefix string
		tls                                bool
		err                                bool
	}{
		{raw: "https://api.openai.com", name: "api.openai.com", dial: "api.openai.com:443", hostHeader: "api.openai.com", tls: true},
		{raw: "https://API.Groq.com/openai/", name: "api.groq.com", dial: "api.groq.com:443", hostHeader: "api.groq.com", pathPrefix: "/openai", tls: true},
		{raw: "http://10.0.0.5:8000/llm", name: "10.0.0.5:8000", dial: "10.0.0.5:8000", hostHeader: "10.0.0.5:8000", pathPrefix: "/llm"},
		{raw: "http://[::1]:8080", name: "[::1]:8080", dial: "[::1]:8080", hostHeader: "[::1]:8080"},
		{raw: "http://vllm.local", name: "vllm.local", dial: "vllm.local:80", hostHeader: "vllm.local"},
		{raw: "ftp://x", err: true},
		{raw: "https://", err: true},
		{raw: "https://u:p@x", err: true},
		{raw: "https://x/?a=1", err: true},
		{raw: "https://x/#f", err: true},
		{raw: "api.openai.com", err: true},
	}
	for _, c := range cases {
		u, err := parseBaseURL(c.raw)
		if c.err {
			if err == nil {
				t.Errorf("%s: no error", c.raw)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.raw, err)
			continue
		}
		if u.name != c.name || u.dial != c.dial || u.hostHeader != c.hostHeader || u.pathPrefix != c.pathPrefix || u.tls != c.tls {
			t.Errorf("%s: got name=%q dial=%q host=%q prefix=%q tls=%v", c.raw, u.name, u.dial, u.hostHeader, u.pathPrefix, u.tls)
		}
	}
}

func TestPickKeySpreadsEvenly(t *testing.T) {
	u, err := parseBaseURL("https://api.openai.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := u.pickKey(); got != "" {
		t.Fatalf("no keys: %q", got)
	}
	u.keys = []string{"a", "b", "c"}
	counts := map[string]int{}
	for range 300 {
		counts[u.pickKey()]++
	}
	if counts["a"] != 100 || counts["b"] != 100 || counts["c"] != 100 {
		t.Fatalf("uneven spread: %v", counts)
	}
}

func TestUsageDate(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 27, 23, 59, 59, 999, time.UTC), "2026-11-27"},
		{time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), "2026-11-28"},
		{time.Date(2026, 11, 28, 1, 0, 0, 0, time.FixedZone("CET", 3600)), "2026-11-28"},
		{time.Date(2026, 11, 28, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "2026-11-27"},
		{time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), "2026-11-27"},
	} {
		if got := usageDate(c.t); got != c.want {
			t.Errorf("usageDate(%v) = %s, want %s", c.t, got, c.want)
		}
	}
}

// TestUsageModel: the model a request is counted under.
