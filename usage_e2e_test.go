package aiproxy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/meter"
)

// usageRow is one row of GET /admin/usage or /me/usage: the store's row,
// whose JSON the APIs answer with.
type usageRow = keystore.UsageRow

// usage returns the admin API's usage rows for a query string.
func (s *site) usage(query string) []usageRow {
	s.t.Helper()
	code, _, body := s.request("GET", "/admin/usage?"+query, nil, "Authorization", "Bearer "+adminToken)
	if code != 200 {
		s.t.Fatalf("usage %s: %d %s", query, code, body)
	}
	var out struct {
		Data []usageRow `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		s.t.Fatalf("usage: %v: %s", err, body)
	}
	return out.Data
}

// usageFor sums a user's rows for one model.
func (s *site) usageFor(user, model string) usageRow {
	s.t.Helper()
	var sum usageRow
	for _, r := range s.usage("user=" + user) {
		if r.User != user || r.Model != model {
			continue
		}
		sum.Add(r.UsageCounts)
	}
	return sum
}

func wantUsage(t *testing.T, got usageRow, requests int64, u mockopenai.Usage, estimated int64) {
	t.Helper()
	if got.Requests != requests || got.PromptTokens != requests*u.PromptTokens ||
		got.CompletionTokens != requests*u.CompletionTokens || got.TotalTokens != requests*u.TotalTokens ||
		got.EstimatedRequests != estimated {
		t.Fatalf("usage %+v, want %d requests of %+v, %d estimated", got, requests, u, estimated)
	}
}

// post sends a JSON body with a user key and returns status and body.
func (s *site) post(key, path, body string) (int, []byte) {
	s.t.Helper()
	code, _, out := s.request("POST", path, strings.NewReader(body),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	return code, out
}

// TestUsageExact: non-streamed chat, completions, embeddings and responses,
// and streams with and without include_usage, counted exactly, on both stores.
func TestUsageExact(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := startSite(t, siteOptions{store: backend})
			key := s.register("counted")
			prompt := "count these five words"
			chat := mockopenai.ExpectedUsage(prompt)
			msg := fmt.Sprintf(`"messages":[{"role":"user","content":%q}]`, prompt)

			for _, body := range []string{
				`{"model":"gpt-4o-mini",` + msg + `}`,
				`{"model":"gpt-4o-mini","stream":true,` + msg + `}`,
				`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},` + msg + `}`,
			} {
				if code, out := s.post(key, "/v1/chat/completions", body); code != 200 {
					t.Fatalf("chat %s: %d %s", body, code, out)
				}
			}
			wantUsage(t, s.usageFor("counted", "gpt-4o-mini"), 3, chat, 0)

			if code, out := s.post(key, "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"three more words","stream":true}`); code != 200 {
				t.Fatalf("completions: %d %s", code, out)
			}
			wantUsage(t, s.usageFor("counted", "gpt-3.5-turbo-instruct"), 1, mockopenai.ExpectedUsage("three more words"), 0)

			if code, out := s.post(key, "/v1/embeddings", `{"model":"text-embedding-3-small","input":["a b","c d e"]}`); code != 200 {
				t.Fatalf("embeddings: %d %s", code, out)
			}
			wantUsage(t, s.usageFor("counted", "text-embedding-3-small"), 1, mockopenai.Usage{PromptTokens: 5, TotalTokens: 5}, 0)

			for _, stream := range []string{"false", "true"} {
				if code, out := s.post(key, "/v1/responses", `{"model":"gpt-4o","input":"respond with four words","stream":`+stream+`}`); code != 200 {
					t.Fatalf("responses: %d %s", code, out)
				}
			}
			wantUsage(t, s.usageFor("counted", "gpt-4o"), 2, mockopenai.ExpectedUsage("respond with four words"), 0)

			// Requests without usage (a model list) count as requests,
			// under (none) when they succeed, under - when they fail.
			s.request("GET", "/v1/models", nil, "Authorization", "Bearer "+key)
			if got := s.usageFor("counted", "(none)"); got.Requests != 1 || got.EstimatedRequests != 0 {
				t.Fatalf("model list: %+v", got)
			}
			if got := s.usageFor("counted", "-"); got.Requests != 0 {
				t.Fatalf("a successful model list counted as failed: %+v", got)
			}
			// Other users' rows stay apart.
			other := s.register("other")
			s.post(other, "/v1/chat/completions", `{"model":"gpt-4o-mini",`+msg+`}`)
			wantUsage(t, s.usageFor("other", "gpt-4o-mini"), 1, chat, 0)
			wantUsage(t, s.usageFor("counted", "gpt-4o-mini"), 3, chat, 0)
		})
	}
}

// TestStreamWithoutIncludeUsageIsUntouched: the gateway asks the provider
// for usage, but a client that did not ask sees exactly the bytes a direct
// call would have given it.
func TestStreamWithoutIncludeUsageIsUntouched(t *testing.T) {
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream me these words"}]}`
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		t.Run(path, func(t *testing.T) {
			req := body
			if path == "/v1/completions" {
				req = `{"model":"gpt-3.5-turbo-instruct","stream":true,"prompt":"stream me these words"}`
			}
			// A fresh mock for each call: its ids count its requests.
			direct := mockopenai.New(t, upstreamKey)
			want := directCall(t, direct.URL+path, req)

			s := startSite(t, siteOptions{})
			key := s.register("purist")
			code, out := s.post(key, path, req)
			if code != 200 {
				t.Fatalf("%d %s", code, out)
			}
			if got := s.upstream.LastRequest().Body; !bytes.Contains(got, []byte(`"include_usage":true`)) {
				t.Fatalf("the gateway did not ask for usage: %s", got)
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("client saw\n%s\nwant (direct)\n%s", out, want)
			}
		})
	}
}

// directCall posts to the mock with the provider key and returns the body.
func directCall(t *testing.T, url, body string) []byte {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+upstreamKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("direct: %d %s", res.StatusCode, out)
	}
	return out
}

// TestUsageClientDisconnect: a client that leaves mid-stream is still
// counted, marked estimated, and the upstream request is cancelled.
func TestUsageClientDisconnect(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("leaver")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", siteURL+"/v1/chat/completions", strings.NewReader(
		`{"model":"gated","stream":true,"messages":[{"role":"user","content":"one two three four"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(res.Body)
	for range 2 { // the role chunk and the first content chunk
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	<-s.upstream.GateWaiting()
	cancel()
	res.Body.Close()
	select {
	case <-s.upstream.Canceled():
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
	// The handler records after the proxy returns; the query flushes first,
	// so poll until the record is in.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := s.usageFor("leaver", "gated")
		if got.Requests == 1 {
			if got.EstimatedRequests != 1 || got.CompletionTokens < 1 {
				t.Fatalf("disconnected stream counted as %+v", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("disconnected stream not counted: %+v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUsageWithoutUsage: a provider that sends no usage gets the request
// counted and marked estimated, not invented.
func TestUsageWithoutUsage(t *testing.T) {
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","model":"bare-1","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
	}))
	defer bare.Close()
	s := startSite(t, siteOptions{extra: "host bare.test {\n\t\t\tbase_url " + bare.URL + "\n\t\t\tkey k\n\t\t}"})
	key := s.register("bare")
	code, _, out := s.request("POST", "/v1/chat/completions", strings.NewReader(`{"model":"bare-1","messages":[]}`),
		"Authorization", "Bearer "+key, "X-Host-Final", "bare.test", "Content-Type", "application/json")
	if code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	got := s.usageFor("bare", "bare-1")
	if got.Requests != 1 || got.EstimatedRequests != 1 || got.PromptTokens != 0 {
		t.Fatalf("usage %+v", got)
	}
}

// TestUsageOversizedCountsClamped: a provider that reports an absurd token
// count (here int64's largest) has it counted as meter.MaxTokens, so the
// day's sums neither wrap around nor overflow.
func TestUsageOversizedCountsClamped(t *testing.T) {
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","model":"huge-1","choices":[],`+
			`"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":1,"total_tokens":9223372036854775807}}`)
	}))
	defer huge.Close()
	s := startSite(t, siteOptions{extra: "host huge.test {\n\t\t\tbase_url " + huge.URL + "\n\t\t\tkey k\n\t\t}"})
	key := s.register("huge")
	for range 2 {
		code, _, out := s.request("POST", "/v1/chat/completions", strings.NewReader(`{"model":"huge-1","messages":[]}`),
			"Authorization", "Bearer "+key, "X-Host-Final", "huge.test", "Content-Type", "application/json")
		if code != 200 {
			t.Fatalf("%d %s", code, out)
		}
	}
	got := s.usageFor("huge", "huge-1")
	if got.Requests != 2 || got.PromptTokens != 2*meter.MaxTokens || got.TotalTokens != 2*meter.MaxTokens || got.CompletionTokens != 2 {
		t.Fatalf("usage %+v, want twice %d prompt tokens", got, int64(meter.MaxTokens))
	}
}

// TestUsageExactAcrossReload: requests in flight and arriving during a
// graceful config reload are all counted, once.
func TestUsageExactAcrossReload(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			store := storeLine(t, backend)
			s := startSite(t, siteOptions{store: store})
			key := s.register("steady")
			var ok atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(
							`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"a b c"}]}`))
						req.Header.Set("Authorization", "Bearer "+key)
						res, err := client.Do(req)
						if err != nil {
							continue // a connection closed by the reload: not answered, not counted
						}
						body, err := io.ReadAll(res.Body)
						res.Body.Close()
						if err == nil && res.StatusCode == 200 && bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
							ok.Add(1)
						}
					}
				}()
			}
			for i := range 3 {
				waitFor(t, func() bool { return ok.Load() >= int64(50*(i+1)) })
				s.load(siteOptions{store: store, extra: fmt.Sprintf("host_refresh_interval %ds", i+2)})
			}
			close(stop)
			wg.Wait()
			got := s.usageFor("steady", "gpt-4o-mini")
			u := mockopenai.ExpectedUsage("a b c")
			if got.Requests < ok.Load() || got.Requests-got.EstimatedRequests != ok.Load() {
				t.Fatalf("%d complete answers, usage %+v", ok.Load(), got)
			}
			full := got.Requests - got.EstimatedRequests
			if got.PromptTokens != full*u.PromptTokens {
				t.Fatalf("prompt tokens %d for %d complete requests of %d", got.PromptTokens, full, u.PromptTokens)
			}
		})
	}
}

// waitFor polls cond until it holds, failing after 20 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUsageQueries: filters, date ranges, CSV, and bad queries.
func TestUsageQueries(t *testing.T) {
	s := startSite(t, siteOptions{})
	a, b := s.register("alice"), s.register("bob")
	s.post(a, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x y"}]}`)
	s.post(a, "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x y"}]}`)
	s.post(b, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x y"}]}`)
	today := time.Now().UTC().Format(time.DateOnly)

	if rows := s.usage(""); len(rows) != 3 {
		t.Fatalf("all rows: %+v", rows)
	}
	if rows := s.usage("user=alice"); len(rows) != 2 {
		t.Fatalf("alice: %+v", rows)
	}
	if rows := s.usage("model=gpt-4o-mini"); len(rows) != 2 || rows[0].User != "alice" || rows[1].User != "bob" {
		t.Fatalf("by model: %+v", rows)
	}
	if rows := s.usage("from=" + today + "&to=" + today); len(rows) != 3 || rows[0].Date != today {
		t.Fatalf("today: %+v", rows)
	}
	if rows := s.usage("from=2020-01-01&to=2020-01-31"); len(rows) != 0 {
		t.Fatalf("old range: %+v", rows)
	}

	code, hdr, body := s.request("GET", "/admin/usage?format=csv&user=alice", nil, "Authorization", "Bearer "+adminToken)
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") || err != nil || len(records) != 3 ||
		records[0][0] != "date" || records[0][2] != "user_id" || records[0][4] != "requests" || records[1][1] != "alice" {
		t.Fatalf("csv: %d %v %q", code, err, body)
	}

	for _, q := range []string{"from=2026-13-01", "to=yesterday", "from=2026-02-01&to=2026-01-01",
		"from=2020-01-01&to=2026-01-01", "format=xml"} {
		code, _, body := s.request("GET", "/admin/usage?"+q, nil, "Authorization", "Bearer "+adminToken)
		if code != 400 {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
}

// TestUsageFollowsTheUserNotTheName: a user deleted and created again under
// the same name starts with no usage in /me/usage, while the admin still
// sees both users' history, told apart by user_id.
func TestUsageFollowsTheUserNotTheName(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := startSite(t, siteOptions{store: backend})
			chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q"}]}`
			first := s.register("reused")
			s.post(first, "/v1/chat/completions", chat)
			if code, _, body := s.request("DELETE", "/admin/users/reused", nil, "Authorization", "Bearer "+adminToken); code != 200 {
				t.Fatalf("delete: %d %s", code, body)
			}
			second := s.register("reused")
			s.post(second, "/v1/chat/completions", chat)
			s.post(second, "/v1/chat/completions", chat)

			code, _, body := s.request("GET", "/me/usage", nil, "Authorization", "Bearer "+second)
			var mine struct{ Data []usageRow }
			_ = json.Unmarshal(body, &mine)
			if code != 200 || len(mine.Data) != 1 || mine.Data[0].Requests != 2 {
				t.Fatalf("GET /me/usage of the new user: %d %s; want only its own 2 requests", code, body)
			}
			rows := s.usage("user=reused")
			if len(rows) != 2 || rows[0].UserID == rows[1].UserID || rows[0].Requests+rows[1].Requests != 3 {
				t.Fatalf("admin usage of the name: %+v; want both users' rows, apart", rows)
			}
		})
	}
}

// TestSelfService: a user sees and resets their own key and reads their own
// usage; the admin can turn self-reset off.
func TestSelfService(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := startSite(t, siteOptions{store: backend})
			key := s.register("me")
			other := s.register("notme")
			s.post(other, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q"}]}`)
			s.post(key, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q r"}]}`)

			code, _, body := s.request("GET", "/me", nil, "Authorization", "Bearer "+key)
			var me map[string]any
			_ = json.Unmarshal(body, &me)
			if code != 200 || me["name"] != "me" || me["key_hint"] != "sk-cfw..."+key[len(key)-4:] || strings.Contains(string(body), key) {
				t.Fatalf("GET /me: %d %s", code, body)
			}

			code, _, body = s.request("GET", "/me/usage?user=notme", nil, "Authorization", "Bearer "+key)
			var usage struct{ Data []usageRow }
			_ = json.Unmarshal(body, &usage)
			if code != 200 || len(usage.Data) != 1 || usage.Data[0].User != "me" || usage.Data[0].Requests != 1 {
				t.Fatalf("GET /me/usage: %d %s", code, body)
			}

			code, _, body = s.request("POST", "/me/reset", nil, "Authorization", "Bearer "+key)
			var reset map[string]any
			_ = json.Unmarshal(body, &reset)
			newKey, _ := reset["key"].(string)
			if code != 200 || !keyPattern.MatchString(newKey) || newKey == key {
				t.Fatalf("POST /me/reset: %d %s", code, body)
			}
			if code, _ := s.chat(key); code != 401 {
				t.Fatalf("old key after self-reset: %d", code)
			}
			if code, _ := s.chat(newKey); code != 200 {
				t.Fatalf("new key after self-reset: %d", code)
			}
			if code, _, _ := s.request("GET", "/me", nil); code != 401 {
				t.Fatalf("GET /me without a key: %d", code)
			}
			if code, _, _ := s.request("GET", "/me/reset", nil, "Authorization", "Bearer "+newKey); code != 405 {
				t.Fatalf("GET /me/reset: %d", code)
			}

			s.load(siteOptions{extra: "self_service off"})
			code, _, body = s.request("POST", "/me/reset", nil, "Authorization", "Bearer "+newKey)
			if code != 403 {
				t.Fatalf("self-reset turned off: %d %s", code, body)
			}
			if c, _ := apiError(t, body); c != "self_service_disabled" {
				t.Fatalf("code %q", c)
			}
			if code, _, _ := s.request("GET", "/me", nil, "Authorization", "Bearer "+newKey); code != 200 {
				t.Fatalf("GET /me with self-reset off: %d", code)
			}
		})
	}
}

// TestMetrics: Prometheus counters at the site's metrics handler and at
// Caddy's admin endpoint, with the user's name or an empty user label.
func TestMetrics(t *testing.T) {
	s := startSite(t, siteOptions{siteDir: "handle /metrics {\n\t\tmetrics\n\t}"})
	key := s.register("measured")
	s.post(key, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a b"}]}`)
	_, _, body := s.request("GET", "/metrics", nil)
	res, err := http.Get("http://localhost:2999/metrics") // Caddy's admin endpoint
	if err != nil {
		t.Fatal(err)
	}
	adminBody, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`aiproxy_requests_total{kind="chat",model="gpt-4o-mini",status="200",user="measured"} 1`,
		`aiproxy_tokens_total{kind="chat",model="gpt-4o-mini",type="prompt",user="measured"} 2`,
		`aiproxy_tokens_total{kind="chat",model="gpt-4o-mini",type="completion",user="measured"} 2`,
	} {
		if !strings.Contains(string(body), want) || !strings.Contains(string(adminBody), want) {
			t.Fatalf("metrics lack %s:\n%s", want, grepLines(body, "aiproxy_"))
		}
	}

	s.load(siteOptions{siteDir: "handle /metrics {\n\t\tmetrics\n\t}", extra: "metrics_per_user off"})
	s.post(key, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a b"}]}`)
	_, _, body = s.request("GET", "/metrics", nil)
	if want := `aiproxy_requests_total{kind="chat",model="gpt-4o-mini",status="200",user=""} 1`; !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %s:\n%s", want, body[:min(len(body), 3000)])
	}
	if strings.Contains(string(body), `user="measured"`) {
		t.Fatalf("user label with metrics_per_user off:\n%s", grepLines(body, "aiproxy_"))
	}
}

func grepLines(body []byte, prefix string) string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
