package aiproxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// TestRoutingByModel: without X-Host-Final, a request goes to the host
// whose models match its model, the most specific pattern winning (an
// exact name over a glob, a longer glob over a shorter one, the first host
// on a tie), else to the default upstream; JSON and streams alike.
// X-Host-Final still decides when given, and requests that name no model
// go to the default upstream.
func TestRoutingByModel(t *testing.T) {
	groq := mockopenai.New(t, "sk-groq")
	exact := mockopenai.New(t, "sk-exact")
	tie := mockopenai.New(t, "sk-tie")
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf(`host groq.test {
			base_url %s
			key sk-groq
			models llama-* qwen-* mistral-*
		}
		host exact.test {
			base_url %s
			key sk-exact
			models llama-3.3-70b llama-3.1-*
		}
		host tie.test {
			base_url %s
			key sk-tie
			models mistral-*
		}`, groq.URL, exact.URL, tie.URL)})
	key := s.register("ann")

	for _, tc := range []struct {
		model string
		want  *mockopenai.Server
	}{
		{"llama-3.2-1b", groq},          // glob
		{"qwen-2.5-72b", groq},          // another glob of the same host
		{"llama-3.3-70b", exact},        // an exact name beats a glob
		{"llama-3.1-8b-instant", exact}, // a longer glob beats a shorter one
		{"mistral-large", groq},         // equal globs: the first host in the config
		{"gpt-4o-mini", s.upstream},     // no match: the default upstream
	} {
		for _, stream := range []bool{false, true} {
			extra := []string{}
			if stream {
				extra = append(extra, `"stream":true`)
			}
			before := len(tc.want.Requests())
			code, out := s.post(key, "/v1/chat/completions", chatBody(tc.model, "route me", extra...))
			if code != 200 {
				t.Fatalf("%s (stream %v): %d %s", tc.model, stream, code, out)
			}
			if len(tc.want.Requests()) != before+1 {
				t.Fatalf("%s (stream %v) did not reach its host", tc.model, stream)
			}
			if stream && !strings.Contains(string(out), "data: [DONE]") {
				t.Fatalf("%s: stream %s", tc.model, out)
			}
		}
	}

	// X-Host-Final decides over the model.
	before := len(tie.Requests())
	code, _, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("llama-3.2-1b", "hi")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json", "X-Host-Final", "tie.test")
	if code != 200 || len(tie.Requests()) != before+1 {
		t.Fatalf("X-Host-Final: %d %s", code, out)
	}
	// No model in the request: the default upstream.
	before = len(s.upstream.Requests())
	if code, _, out := s.request("GET", "/v1/models", nil, "Authorization", "Bearer "+key); code != 200 || len(s.upstream.Requests()) != before+1 {
		t.Fatalf("GET /v1/models: %d %s", code, out)
	}
	// Usage counts each request once, under its model, whatever its host.
	if u := s.usageFor("ann", "llama-3.2-1b"); u.Requests != 3 { // JSON, stream, X-Host-Final
		t.Fatalf("usage of a routed model: %+v", u)
	}
}
