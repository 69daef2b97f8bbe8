package aiproxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
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
	// No model in the body: the default upstream.
	before = len(s.upstream.Requests())
	if code, _, out := s.request("GET", "/v1/models/gpt-4o-mini", nil, "Authorization", "Bearer "+key); code != 200 || len(s.upstream.Requests()) != before+1 {
		t.Fatalf("GET /v1/models/gpt-4o-mini: %d %s", code, out)
	}
	// Usage counts each request once, under its model, whatever its host.
	if u := s.usageFor("ann", "llama-3.2-1b"); u.Requests != 3 { // JSON, stream, X-Host-Final
		t.Fatalf("usage of a routed model: %+v", u)
	}
}

// TestAlias: a client asks for a public name; the alias's host gets its
// own model name in a body otherwise byte for byte the client's, answers
// come back as the provider sent them, and usage counts the public name.
func TestAlias(t *testing.T) {
	groq := mockopenai.New(t, "sk-groq")
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf(`host groq.test {
			base_url %s
			key sk-groq
		}
		alias fast groq.test llama-3.3-70b-versatile`, groq.URL)})
	key := s.register("ann")
	for _, extra := range [][]string{nil, {`"stream":true`, `"stream_options":{"include_usage":true}`}} {
		body := chatBody("fast", "alias me", extra...)
		code, out := s.post(key, "/v1/chat/completions", body)
		if code != 200 {
			t.Fatalf("%s: %d %s", body, code, out)
		}
		sent := string(groq.LastRequest().Body)
		if want := strings.Replace(body, `"model":"fast"`, `"model":"llama-3.3-70b-versatile"`, 1); sent != want {
			t.Fatalf("provider got\n%s\nwant\n%s", sent, want)
		}
		if !strings.Contains(string(out), `"model":"llama-3.3-70b-versatile"`) {
			t.Fatalf("the answer is not the provider's: %s", out)
		}
	}
	if u := s.usageFor("ann", "fast"); u.Requests != 2 {
		t.Fatalf("usage under the alias: %+v (rows %+v)", u, s.usage("user=ann"))
	}
}

// TestRoutingByModelRunTimeHosts: a host added through the admin API gets
// models with PATCH, and requests for them go there at once; null clears
// them; a configured host's models are the config's.
func TestRoutingByModelRunTimeHosts(t *testing.T) {
	rt := mockopenai.New(t, "sk-runtime-0001")
	s := startSite(t, siteOptions{})
	key := s.register("ann")
	if code, out := s.adminJSON("POST", "/admin/hosts/rt.test/keys", map[string]any{"key": "sk-runtime-0001", "base_url": rt.URL}); code != 201 {
		t.Fatalf("add key: %d %v", code, out)
	}
	code, out := s.adminJSON("PATCH", "/admin/hosts/rt.test", map[string]any{"models": []string{"mixtral-*"}})
	if code != 200 || fmt.Sprint(out["models"]) != "[mixtral-*]" {
		t.Fatalf("patch: %d %v", code, out)
	}
	if code, out := s.post(key, "/v1/chat/completions", chatBody("mixtral-8x7b", "hi")); code != 200 || len(rt.Requests()) != 1 {
		t.Fatalf("routed to a run-time host: %d %s (host got %d)", code, out, len(rt.Requests()))
	}
	if code, _ := s.adminJSON("PATCH", "/admin/hosts/rt.test", map[string]any{"models": nil}); code != 200 {
		t.Fatalf("clear: %d", code)
	}
	before := len(s.upstream.Requests())
	if code, out := s.post(key, "/v1/chat/completions", chatBody("mixtral-8x7b", "hi")); code != 200 || len(s.upstream.Requests()) != before+1 {
		t.Fatalf("after clearing, to the default: %d %s", code, out)
	}
	def := strings.TrimPrefix(strings.TrimPrefix(s.upstream.URL, "http://"), "https://")
	if code, out := s.adminJSON("PATCH", "/admin/hosts/"+def, map[string]any{"models": []string{"x"}}); code != 409 {
		t.Fatalf("a configured host's models: %d %v", code, out)
	}
	if code, _ := s.adminJSON("PATCH", "/admin/hosts/nowhere.test", map[string]any{"models": []string{"x"}}); code != 404 {
		t.Fatalf("an unknown host: %d", code)
	}
}

// listProvider answers GET /v1/models with ids (404 with none) at once.
func listProvider(t *testing.T, ids ...string) *httptest.Server {
	srv, _, _, release := gatedListProvider(t, ids...)
	close(release)
	return srv
}

// TestModelListUnion: with models routed to several hosts, GET /v1/models
// lists every model a request may be routed to: each host's own listed
// models that route to it, a host's exact names when it has no list, and
// the aliases; a key with a models list sees only its own.
func TestModelListUnion(t *testing.T) {
	groq := listProvider(t, "llama-3.1-8b", "whisper-large-v3", "gpt-4o-mini")
	nolist := listProvider(t)
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf(`host groq.test {
			base_url %s
			key sk-groq
			models llama-*
		}
		host nolist.test {
			base_url %s
			key sk-nolist
			models local-model-a local-*
		}
		alias fast groq.test llama-3.1-8b`, groq.URL, nolist.URL)})
	ids := func(key string) []string {
		got, _ := s.listedModels(key)
		slices.Sort(got)
		return got
	}
	all := ids(s.register("ann"))
	if want := []string{"fast", "gpt-4o", "gpt-4o-mini", "llama-3.1-8b", "local-model-a", "text-embedding-3-small"}; !slices.Equal(all, want) {
		t.Fatalf("models %v, want %v", all, want)
	}
	limited := s.createUser("ben", map[string]any{"models": []string{"llama-*", "fast", "gpt-4o"}})
	if got, want := ids(limited), []string{"fast", "gpt-4o", "llama-3.1-8b"}; !slices.Equal(got, want) {
		t.Fatalf("a key's models %v, want %v", got, want)
	}
}

// listedModels returns the ids GET /v1/models lists for key, in its order,
// and the answer's headers.
func (s *site) listedModels(key string) ([]string, http.Header) {
	s.t.Helper()
	code, hdr, out := s.request("GET", "/v1/models", nil, "Authorization", "Bearer "+key)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(out, &list) != nil || list.Object != "list" {
		s.t.Fatalf("models: %d %s", code, out)
	}
	ids := []string{}
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	if cl := hdr.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(out)) {
		s.t.Fatalf("models: Content-Length %s for %d bytes", cl, len(out))
	}
	return ids, hdr
}
