package aiproxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// The two gateways of the distributed tests, sharing one Redis store.
var twinSites = []string{"http://localhost:9080", "http://localhost:9081"}

// startTwins starts two gateways on one Redis store, with extra lines in
// both aiproxy blocks.
func startTwins(t *testing.T, extra string) *site {
	t.Helper()
	up := mockopenai.New(t, upstreamKey)
	store := storeLine(t, "redis")
	gateway := func(addr string) string {
		return fmt.Sprintf("%s {\n\taiproxy {\n\t\tadmin_token %s\n\t\tupstream %s %s\n\t\t%s\n\t\t%s\n\t}\n}\n",
			addr, adminToken, up.URL, upstreamKey, store, extra)
	}
	config := func(grace string) string {
		return "{\n\tskip_install_trust\n\tadmin localhost:2999\n\thttp_port 9080\n\thttps_port 9443\n\tgrace_period " + grace + "\n}\n" +
			gateway(twinSites[0]) + gateway(twinSites[1])
	}
	caddytest.NewTester(t).InitServer(config("1ns"), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return &site{t: t, upstream: up, client: &http.Client{Timeout: 20 * time.Second}, store: store,
		// A reload writes both instances' pending usage, as a shutdown
		// would (Caddy skips a config identical to the running one).
		reload: func() { caddytest.NewTester(t).InitServer(config("2ns"), "caddyfile") },
	}
}

// outcome is one answer of a concurrent run.
type outcome struct {
	status     int
	code       string // the error code, for errors
	retryAfter string
}

// hammer sends n requests at once, alternating between the twins, and
// returns their outcomes.
func hammer(t *testing.T, s *site, key string, n int, body func(i int) string) []outcome {
	t.Helper()
	out := make([]outcome, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", twinSites[i%2]+"/v1/chat/completions", strings.NewReader(body(i)))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			<-start
			res, err := s.client.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			defer res.Body.Close()
			var e struct {
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			raw, err := io.ReadAll(res.Body)
			if err != nil {
				t.Errorf("request %d: reading: %v", i, err)
			}
			if res.StatusCode != 200 {
				_ = json.Unmarshal(raw, &e)
			}
			out[i] = outcome{status: res.StatusCode, code: e.Error.Code, retryAfter: res.Header.Get("Retry-After")}
		})
	}
	close(start)
	wg.Wait()
	return out
}

// TestRPMExactAcrossInstances: rpm N, 3N requests at once over two
// instances on one Redis: exactly N pass in the window, the rest get 429
// rate_limit_exceeded with Retry-After.
func TestRPMExactAcrossInstances(t *testing.T) {
	s := startTwins(t, "")
	const n = 8
	key := s.createUser("ann", map[string]any{"limits": map[string]any{"rpm": n}})
	ok := 0
	for _, o := range hammer(t, s, key, 3*n, func(int) string { return chatBody("gpt-4o-mini", "hi") }) {
		switch {
		case o.status == 200:
			ok++
		case o.status == 429 && o.code == "rate_limit_exceeded" && o.retryAfter != "":
		default:
			t.Errorf("unexpected answer %+v", o)
		}
	}
	if ok != n {
		t.Fatalf("%d requests passed, want exactly %d", ok, n)
	}
	if got := len(s.upstream.Requests()); got != n {
		t.Fatalf("the provider got %d requests, want %d", got, n)
	}
}

// TestTokenBudgetExactAcrossInstances: a token budget and 50 requests at
// once, JSON and streams mixed, over two instances: some pass, the rest get
// insufficient_quota, and the tokens recorded never pass the budget.
func TestTokenBudgetExactAcrossInstances(t *testing.T) {
	s := startTwins(t, "")
	const budget = 2500
	key := s.createUser("ann", map[string]any{"budget": map[string]any{"tokens": budget}})
	prompt := "count these words exactly across two gateways please"
	outcomes := hammer(t, s, key, 50, func(i int) string {
		if i%2 == 0 {
			return chatBody("gpt-4o-mini", prompt, `"stream":true`, `"max_tokens":20`)
		}
		return chatBody("gpt-4o-mini", prompt, `"max_completion_tokens":20`)
	})
	ok := passedUnderBudget(t, outcomes)
	if ok == 0 || ok == 50 {
		t.Fatalf("%d of 50 passed: the budget should let some through and stop the rest", ok)
	}
	s.reload()
	var total int64
	for _, r := range s.usage("user=ann") {
		total += r.TotalTokens
	}
	if total > budget || total == 0 {
		t.Fatalf("recorded %d tokens against a budget of %d", total, budget)
	}
	t.Logf("%d of 50 passed, %d of %d tokens recorded", ok, total, budget)
}

// TestUSDBudgetExactAcrossInstances: a USD budget at configured prices and
// 40 requests at once over two instances: some pass, the rest get
// insufficient_quota, and the cost recorded never passes the budget.
func TestUSDBudgetExactAcrossInstances(t *testing.T) {
	// $1,000 and $2,000 per million tokens: a cent buys 10 prompt tokens.
	s := startTwins(t, "price gpt-4o-mini 1000 2000")
	const budget = 0.5
	key := s.createUser("ann", map[string]any{"budget": map[string]any{"usd": budget}})
	prompt := "spend exactly what the budget allows and not a cent more"
	outcomes := hammer(t, s, key, 40, func(i int) string {
		if i%2 == 0 {
			return chatBody("gpt-4o-mini", prompt, `"stream":true`)
		}
		return chatBody("gpt-4o-mini", prompt, `"max_tokens":30`)
	})
	ok := passedUnderBudget(t, outcomes)
	if ok == 0 || ok == 40 {
		t.Fatalf("%d of 40 passed: the budget should let some through and stop the rest", ok)
	}
	s.reload()
	code, _, raw := s.request("GET", "/admin/usage?user=ann", nil, "Authorization", "Bearer "+adminToken)
	var rows struct {
		Data []struct {
			Model   string  `json:"model"`
			CostUSD float64 `json:"cost_usd"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(raw, &rows) != nil {
		t.Fatalf("usage: %d %s", code, raw)
	}
	var spent float64
	for _, r := range rows.Data {
		spent += r.CostUSD
	}
	if spent > budget || spent == 0 {
		t.Fatalf("recorded $%f against a budget of $%v", spent, budget)
	}
	t.Logf("%d of 40 passed, $%.4f of $%v recorded", ok, spent, budget)
}

// TestMaxParallelAcrossInstances: max_parallel 2 holds across two
// instances: with a stream open on each, a third request on either is
// refused; when one ends, its place is free at once.
func TestMaxParallelAcrossInstances(t *testing.T) {
	s := startTwins(t, "")
	key := s.createUser("ann", map[string]any{"limits": map[string]any{"max_parallel": 2}})
	var open []*http.Response
	for _, site := range twinSites {
		req, _ := http.NewRequest("POST", site+"/v1/chat/completions",
			strings.NewReader(chatBody(mockopenai.ModelGated, "one two three", `"stream":true`)))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := s.client.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("stream via %s: %v %v", site, res, err)
		}
		if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		open = append(open, res)
	}
	for _, site := range twinSites {
		req, _ := http.NewRequest("POST", site+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 429 {
			t.Fatalf("a third request via %s: %d", site, res.StatusCode)
		}
	}
	s.upstream.OpenGate()
	for _, res := range open {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	for _, site := range twinSites {
		req, _ := http.NewRequest("POST", site+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("after the streams ended, via %s: %d", site, res.StatusCode)
		}
	}
}

// passedUnderBudget counts the answers that passed; every other one must
// be a spent budget's 429 insufficient_quota.
func passedUnderBudget(t *testing.T, outcomes []outcome) int {
	t.Helper()
	ok := 0
	for _, o := range outcomes {
		switch {
		case o.status == 200:
			ok++
		case o.status == 429 && o.code == "insufficient_quota":
		default:
			t.Errorf("unexpected answer %+v", o)
		}
	}
	return ok
}
