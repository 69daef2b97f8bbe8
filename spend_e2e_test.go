package aiproxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aiproxy/aiproxy"
	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// createUser creates a user through the REST API with a policy and
// returns its key.
func (s *site) createUser(name string, policy map[string]any) string {
	s.t.Helper()
	body := map[string]any{"name": name}
	for k, v := range policy {
		body[k] = v
	}
	code, out := s.adminJSON("POST", "/admin/users", body)
	if code != http.StatusCreated {
		s.t.Fatalf("create %s: %d %v", name, code, out)
	}
	return out["key"].(string)
}

// chatBody is a chat completion request for model with prompt, and extra
// members such as `"stream":true`.
func chatBody(model, prompt string, extra ...string) string {
	members := append([]string{fmt.Sprintf(`"model":%q`, model),
		fmt.Sprintf(`"messages":[{"role":"user","content":%q}]`, prompt)}, extra...)
	return "{" + strings.Join(members, ",") + "}"
}

// TestModelAllowList: a key with a models list reaches only those models,
// on every endpoint that names one, before anything is dialed; its model
// list shows only them.
func TestModelAllowList(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.createUser("ann", map[string]any{"models": []string{"gpt-4o-mini", "gpt-4.1*", "text-embedding-3-*"}})
	before := len(s.upstream.Requests())
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", chatBody("gpt-4o", "hi")},
		{"/v1/chat/completions", chatBody("gpt-4.2", "hi")},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"no model"}]}`},
		{"/v1/responses", `{"model":"o3","input":"hi"}`},
		{"/v1/embeddings", `{"model":"text-embedding-ada-002","input":"hi"}`},
		{"/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"hi"}`},
		{"/v1/images/generations", `{"model":"dall-e-3","prompt":"a cat"}`},
	} {
		code, out := s.post(key, tc.path, tc.body)
		if c, _ := apiError(t, out); code != http.StatusForbidden || c != "model_not_allowed" {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, code, out)
		}
	}
	if code, _, out := s.request("GET", "/v1/models/gpt-4o", nil, "Authorization", "Bearer "+key); code != http.StatusForbidden {
		t.Errorf("GET a model outside the list: %d %s", code, out)
	}
	if n := len(s.upstream.Requests()); n != before {
		t.Fatalf("refused requests reached the provider: %d", n-before)
	}
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", chatBody("gpt-4o-mini", "hi")},
		{"/v1/chat/completions", chatBody("gpt-4.1-mini", "hi", `"stream":true`)},
		{"/v1/responses", `{"model":"gpt-4.1","input":"hi"}`},
		{"/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`},
	} {
		if code, out := s.post(key, tc.path, tc.body); code != http.StatusOK {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, code, out)
		}
	}
	if ids, _ := s.listedModels(key); !slices.Equal(ids, []string{"gpt-4o-mini", "text-embedding-3-small"}) {
		t.Fatalf("listed models %v, want only the allowed ones", ids)
	}

	// A key without a list sees everything.
	other := s.register("ben")
	if ids, _ := s.listedModels(other); len(ids) != 3 {
		t.Fatalf("unrestricted models: %v", ids)
	}
}

// TestRateLimitHeadersAreTheKeys: an answer to a key with limits carries
// OpenAI's rate limit headers for the key, not the provider's.
func TestRateLimitHeadersAreTheKeys(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.createUser("ann", map[string]any{"limits": map[string]any{"rpm": 3, "tpm": 100000}})
	for i := 1; i <= 3; i++ {
		code, hdr, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")),
			"Authorization", "Bearer "+key, "Content-Type", "application/json")
		if code != 200 {
			t.Fatalf("request %d: %d %s", i, code, out)
		}
		if hdr.Get("X-Ratelimit-Limit-Requests") != "3" || hdr.Get("X-Ratelimit-Remaining-Requests") != fmt.Sprint(3-i) ||
			hdr.Get("X-Ratelimit-Limit-Tokens") != "100000" || hdr.Get("X-Ratelimit-Reset-Requests") == "" {
			t.Fatalf("request %d: headers %v", i, hdr)
		}
	}
	code, hdr, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	if c, msg := apiError(t, out); code != 429 || c != "rate_limit_exceeded" || !strings.Contains(msg, "RPM") {
		t.Fatalf("4th request: %d %s", code, out)
	}
	if ra := hdr.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}

	// The provider's own headers (the mock's 429 sets some) never reach a
	// key with limits.
	key2 := s.createUser("ben", map[string]any{"budget": map[string]any{"requests": 10}})
	_, hdr, _ = s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody(mockopenai.ModelError429, "hi")),
		"Authorization", "Bearer "+key2, "Content-Type", "application/json")
	if v := hdr.Get("X-Ratelimit-Remaining-Requests"); v != "" {
		t.Fatalf("the provider's x-ratelimit header passed: %q", v)
	}
}

// TestOutputCappedToWhatIsLeft: a request that sets no output cap, or a
// larger one than the budget leaves, gets the cap lowered to what is left;
// the answer cannot pass the budget.
func TestOutputCappedToWhatIsLeft(t *testing.T) {
	s := startSite(t, siteOptions{})
	prompt := strings.Repeat("word ", 40)
	body := chatBody("gpt-4o-mini", prompt)
	budget := len(body) + 12
	key := s.createUser("ann", map[string]any{"budget": map[string]any{"tokens": budget}})
	code, out := s.post(key, "/v1/chat/completions", body)
	if code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	var sent struct {
		MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	}
	if err := json.Unmarshal(s.upstream.LastRequest().Body, &sent); err != nil || sent.MaxCompletionTokens == nil || *sent.MaxCompletionTokens != 12 {
		t.Fatalf("provider got %s", s.upstream.LastRequest().Body)
	}
	var answer struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if json.Unmarshal(out, &answer) != nil || answer.Choices[0].FinishReason != "length" {
		t.Fatalf("answer %s", out)
	}
	// The client's smaller cap stays as it is.
	key2 := s.createUser("ben", map[string]any{"budget": map[string]any{"tokens": 100000}})
	if code, out := s.post(key2, "/v1/chat/completions", chatBody("gpt-4o-mini", "hi", `"max_tokens":5`)); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	if got := string(s.upstream.LastRequest().Body); strings.Contains(got, "max_completion_tokens") || !strings.Contains(got, `"max_tokens":5`) {
		t.Fatalf("provider got %s", got)
	}
}

// TestBudgetRollsOverAndSurvivesRestart: a spent daily budget answers
// insufficient_quota until the next UTC day; what was spent survives a
// restart of the server.
func TestBudgetRollsOverAndSurvivesRestart(t *testing.T) {
	now := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	defer aiproxy.SetSpendClock(func() time.Time { return now })()
	s := startSite(t, siteOptions{})
	key := s.createUser("ann", map[string]any{"budget": map[string]any{"requests": 2, "period": "day"}})
	for range 2 {
		if code, out := s.chat(key); code != 200 {
			t.Fatalf("%d %s", code, out)
		}
	}
	code, hdr, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	if c, msg := apiError(t, out); code != 429 || c != "insufficient_quota" || !strings.Contains(msg, "2026-12-02T00:00:00Z") {
		t.Fatalf("over budget: %d %s", code, out)
	}
	if hdr.Get("Retry-After") != "3600" {
		t.Fatalf("Retry-After %q, want the hour left in the day", hdr.Get("Retry-After"))
	}

	// Stopped and started again: the file is closed, spending written.
	s.stop()
	s.load(siteOptions{})
	if code, out := s.chat(key); code != 429 {
		t.Fatalf("after a restart: %d %s", code, out)
	}
	now = now.Add(time.Hour)
	if code, out := s.chat(key); code != 200 {
		t.Fatalf("the next day: %d %s", code, out)
	}
	_, me := s.me(key)
	left := me["spend"].(map[string]any)["left"].(map[string]any)
	if left["budget_requests"] != 1.0 || left["resets_at"] != "2026-12-03T00:00:00Z" {
		t.Fatalf("/me left: %v", left)
	}
}

// TestMaxParallelCountsOpenStreams: with max_parallel 2, two open streams
// hold both places; a third request is refused until one ends.
func TestMaxParallelCountsOpenStreams(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.createUser("ann", map[string]any{"limits": map[string]any{"max_parallel": 2}})
	var open []*http.Response
	for range 2 {
		req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions",
			strings.NewReader(chatBody(mockopenai.ModelGated, "one two three", `"stream":true`)))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := s.client.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("stream: %v %v", res, err)
		}
		// The first chunk is out: the stream is open upstream.
		if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		open = append(open, res)
	}
	code, out := s.chat(key)
	if c, _ := apiError(t, out); code != 429 || c != "rate_limit_exceeded" {
		t.Fatalf("third request: %d %s", code, out)
	}
	s.upstream.OpenGate()
	for _, res := range open {
		var rest strings.Builder
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			rest.WriteString(sc.Text())
		}
		res.Body.Close()
	}
	if code, out := s.chat(key); code != 200 {
		t.Fatalf("after the streams ended: %d %s", code, out)
	}
}

// me calls GET /me with key.
func (s *site) me(key string) (int, map[string]any) {
	s.t.Helper()
	code, _, raw := s.request("GET", "/me", nil, "Authorization", "Bearer "+key)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		s.t.Fatalf("/me: %d %s", code, raw)
	}
	return code, out
}

// TestLimitsFailClosed: when a key's limits cannot be checked (its
// spending unreadable in the store), its requests are refused with 503
// rather than let through unchecked; a key without limits is not held up.
func TestLimitsFailClosed(t *testing.T) {
	prefix := fmt.Sprintf("test-failclosed-%d:", storeSeq.Add(1))
	s := startSite(t, siteOptions{store: fmt.Sprintf("store redis {\n\t\t\taddress %s\n\t\t\tkey_prefix %s\n\t\t}", redisAddr, prefix)})
	key := s.createUser("ann", map[string]any{"limits": map[string]any{"rpm": 100}})
	free := s.register("ben")
	if code, out := s.chat(key); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	_, u := s.adminJSON("GET", "/admin/users/ann", nil)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	win := prefix + "{u:ann}:win:" + u["id"].(string)
	if err := rdb.HSet(context.Background(), win, "R", "not a count").Err(); err != nil {
		t.Fatal(err)
	}
	before := len(s.upstream.Requests())
	code, out := s.chat(key)
	if c, _ := apiError(t, out); code != 503 || c != "store_unavailable" {
		t.Fatalf("limits unreadable: %d %s", code, out)
	}
	if len(s.upstream.Requests()) != before {
		t.Fatal("a request whose limits could not be checked reached the provider")
	}
	if code, out := s.chat(free); code != 200 {
		t.Fatalf("a key without limits: %d %s", code, out)
	}
}

// TestModelListAppliesWhateverTheRequestSays: an Upgrade header that does
// not switch protocols, a model in the query string, or an Azure-style
// deployment path do not get a request past the key's models list; nor
// does a host whose base URL has a path prefix show it every model.
func TestModelListAppliesWhateverTheRequestSays(t *testing.T) {
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf("host prefixed {\n\t\t\tbase_url %s/openai\n\t\t\tkey %s\n\t\t}", s.upstream.URL, upstreamKey)})
	key := s.createUser("ann", map[string]any{"models": []string{"gpt-4o-mini"}, "limits": map[string]any{"rpm": 100}})
	before := len(s.upstream.Requests())
	code, _, out := s.request("POST", "/v1/chat/completions?model=gpt-4o-mini", strings.NewReader(chatBody("gpt-4o", "hi")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json", "Upgrade", "x")
	if code != http.StatusForbidden {
		t.Fatalf("an Upgrade header took gpt-4o past a gpt-4o-mini key: %d %s", code, out)
	}
	code, _, out = s.request("POST", "/openai/deployments/gpt-4o/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	if code != http.StatusForbidden {
		t.Fatalf("an Azure deployment outside the list: %d %s", code, out)
	}
	if n := len(s.upstream.Requests()); n != before {
		t.Fatalf("refused requests reached the provider: %d", n-before)
	}
	_, _, out = s.request("GET", "/v1/models", nil, "Authorization", "Bearer "+key, "X-Host-Final", "prefixed")
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(out, &list) != nil || len(list.Data) != 1 || list.Data[0].ID != "gpt-4o-mini" {
		t.Fatalf("models through a host with a path prefix: %s", out)
	}
}

// TestClientGoneKeepsTheReservation: a client that leaves a stream before
// its usage arrives is held to the request's reservation, which bounds
// what the provider may bill, not to the few chunks it saw.
func TestClientGoneKeepsTheReservation(t *testing.T) {
	s := startSite(t, siteOptions{})
	const budget = 1000000
	key := s.createUser("ann", map[string]any{"budget": map[string]any{"tokens": budget}})
	body := chatBody(mockopenai.ModelGated, strings.Repeat("word ", 3000), `"stream":true`, `"max_tokens":50`)
	req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := s.client.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v %v", res, err)
	}
	if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	<-s.upstream.Canceled()
	// Stopping waits for the request and settles what is queued.
	s.stop()
	s.load(siteOptions{})
	_, me := s.me(key)
	left := me["spend"].(map[string]any)["left"].(map[string]any)["budget_tokens"].(float64)
	if spent := budget - int64(left); spent != int64(len(body))+50 {
		t.Fatalf("a stream left mid-answer cost %d tokens, want its reservation %d", spent, len(body)+50)
	}
}

// metricValue returns a series' value in Prometheus text, 0 when absent.
func metricValue(text, series string) float64 {
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestRejectionsCounted: every refusal by a key's policy is counted by
// its reason.
func TestRejectionsCounted(t *testing.T) {
	s := startSite(t, siteOptions{})
	series := func(reason string) string { return `aiproxy_rejected_total{reason="` + reason + `"}` }
	before := adminMetrics(t)
	models := s.createUser("ann", map[string]any{"models": []string{"gpt-4o"}})
	rate := s.createUser("ben", map[string]any{"limits": map[string]any{"rpm": 1}})
	budget := s.createUser("cy", map[string]any{"budget": map[string]any{"requests": 1}})
	s.chat(models) // gpt-4o-mini: not on the list
	for _, key := range []string{rate, budget} {
		s.chat(key)
		s.chat(key)
	}
	after := adminMetrics(t)
	for reason, want := range map[string]float64{"model_not_allowed": 1, "rate_limit": 1, "budget": 1, "parallel": 0} {
		if got := metricValue(after, series(reason)) - metricValue(before, series(reason)); got != want {
			t.Errorf("%s: counted %v, want %v", reason, got, want)
		}
	}
}
