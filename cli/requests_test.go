package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// requestLog answers GET /admin/requests as a site with its request log
// on does: {"data":[...]}, newest first.
const requestLog = `{"data":[
{"time":"2026-11-27T10:00:03.250Z","user":"alice","model":"gpt-4o-mini-2024-07-18","host":"api.openai.com","path":"/v1/chat/completions","status":200,"prompt_tokens":9,"completion_tokens":12,"cost_usd":0.0000085,"duration_ms":2412.731,"stream":true},
{"time":"2026-11-27T09:59:58.004Z","user":"bob","model":"llama\u001b[31m","host":"api.groq.com","path":"/v1/chat/completions","status":429,"prompt_tokens":0,"completion_tokens":0,"duration_ms":85.402,"stream":false}
]}`

func TestRequests(t *testing.T) {
	t.Parallel()
	// The handler and the test meet only through another process, which
	// the race detector does not see: state goes through a mutex.
	var mu sync.Mutex
	var query string
	logOn, routed := true, true
	set := func(f func()) { mu.Lock(); defer mu.Unlock(); f() }
	lastQuery := func() (q string) { set(func() { q = query }); return q }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/admin/requests" || r.Header.Get("Authorization") != "Bearer "+adminToken {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"message":"invalid admin token","type":"authentication_error","param":null,"code":"invalid_admin_token"}}`))
			return
		}
		if !routed { // an aiproxy without the request log
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"message":"unknown admin API path","type":"not_found_error","param":null,"code":"unknown_route"}}`))
			return
		}
		if !logOn {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"message":"the request log is off on this gateway (request_log off); turn it on with request_log <records> in its aiproxy block","type":"not_found_error","param":null,"code":"request_log_off"}}`))
			return
		}
		query = r.URL.RawQuery
		w.Write([]byte(requestLog))
	}))
	defer srv.Close()
	run := func(args ...string) result { return cli(t, adminToken, "", append(args, "--site", srv.URL)...) }

	r := run("requests")
	if q := lastQuery(); r.code != 0 || q != "" {
		t.Fatalf("requests: %v (query %q)", r, q)
	}
	rows := lines(r.stdout)
	if len(rows) != 3 || !strings.HasPrefix(rows[0], "TIME (UTC) ") {
		t.Fatalf("want a header and 2 rows: %v", r)
	}
	for _, want := range []string{"2026-11-27 10:00:03", "alice", "gpt-4o-mini-2024-07-18", "api.openai.com", "/v1/chat/completions",
		" 200 ", " 9 ", " 12 ", "0.0000085", "2.4s", "yes"} {
		if !strings.Contains(rows[1], want) {
			t.Errorf("row %q lacks %q", rows[1], want)
		}
	}
	// A model name with a terminal escape is shown quoted, not run.
	for _, want := range []string{`"llama\x1b[31m"`, " 429 ", "85ms", "no"} {
		if !strings.Contains(rows[2], want) {
			t.Errorf("row %q lacks %q", rows[2], want)
		}
	}
	if strings.Contains(r.stdout, "\x1b") {
		t.Errorf("an escape sequence reached the terminal: %q", r.stdout)
	}

	r = run("requests", "--user", "bob", "--limit", "5", "--json")
	if q := lastQuery(); r.code != 0 || q != "limit=5&user=bob" {
		t.Fatalf("--user --limit --json: %v (query %q)", r, q)
	}
	var log struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &log); err != nil || len(log.Data) != 2 {
		t.Errorf("--json: %v (%v)", r, err)
	}

	set(func() { logOn = false })
	wantCode(t, run("requests"), 1, "the request log is off on this gateway", "404")
	set(func() { routed = false })
	wantCode(t, run("requests"), 1, "does not serve /admin/requests (404 Not Found)", "older than this command")
	wantCode(t, cli(t, "wrong-token", "", "requests", "--site", srv.URL), 1, "refused the admin token")
}

func TestRequestsFromARealSite(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	key := strings.TrimSpace(s.runOK("users", "add", "alice").stdout)
	for _, p := range []string{"one two", "three"} {
		if code := s.chat(key, p); code != http.StatusOK {
			t.Fatalf("chat: %d", code)
		}
	}
	// Records are written in batches, about every second.
	var r result
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r = s.runOK("requests"); len(lines(r.stdout)) == 3 {
			break
		}
	}
	rows := lines(r.stdout)
	if len(rows) != 3 {
		t.Fatalf("want a header and 2 requests: %v", r)
	}
	for _, row := range rows[1:] {
		for _, want := range []string{" alice ", " gpt-4o-mini", " /v1/chat/completions ", " 200 "} {
			if !strings.Contains(row, want) {
				t.Errorf("row %q lacks %q", row, want)
			}
		}
	}
	r = s.runOK("requests", "--user", "alice", "--limit", "1", "--json")
	var log struct {
		Data []struct {
			User         string `json:"user"`
			PromptTokens int64  `json:"prompt_tokens"`
		} `json:"data"`
	}
	// Newest first: the second request's prompt.
	if err := json.Unmarshal([]byte(r.stdout), &log); err != nil || len(log.Data) != 1 ||
		log.Data[0].User != "alice" || log.Data[0].PromptTokens != mockopenai.ExpectedUsage("three").PromptTokens {
		t.Errorf("--json: %v (%v)", r, err)
	}
	wantCode(t, s.run("requests", "--limit", "0"), 1, "400")
}
