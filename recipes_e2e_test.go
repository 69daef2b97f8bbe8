package aiproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recordingProvider answers every request with a small chat completion and
// keeps the last request it got.
type recordingProvider struct {
	*httptest.Server
	mu   sync.Mutex
	last *http.Request
}

func newRecordingProvider(t *testing.T) *recordingProvider {
	p := &recordingProvider{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		p.mu.Lock()
		p.last = r
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *recordingProvider) request() *http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// TestProviderRecipes: each provider's recipe in README sends what that
// provider documents: the path, the query, and the key in its header.
func TestProviderRecipes(t *testing.T) {
	p := newRecordingProvider(t)
	for _, tc := range []struct {
		provider, block, model string
		client, path, query    string
		header, value          string
		more                   map[string]string
	}{
		{provider: "OpenAI", block: "base_url %s\n\t\t\tkey sk-openai", model: "gpt-4.1",
			client: "/v1/chat/completions", path: "/v1/chat/completions", header: "Authorization", value: "Bearer sk-openai"},
		{provider: "Azure OpenAI", block: "base_url %s/openai\n\t\t\tkey azure-key-1\n\t\t\tauth api-key", model: "my-gpt-4o-deployment",
			client: "/v1/chat/completions?api-version=preview", path: "/openai/v1/chat/completions", query: "api-version=preview",
			header: "Api-Key", value: "azure-key-1"},
		{provider: "Anthropic", block: "base_url %s\n\t\t\tkey sk-ant-1", model: "claude-sonnet-4-5",
			client: "/v1/chat/completions", path: "/v1/chat/completions", header: "Authorization", value: "Bearer sk-ant-1"},
		{provider: "Google Gemini", block: "base_url %s\n\t\t\tkey gemini-key-1\n\t\t\tapi_path /v1beta/openai", model: "gemini-2.5-flash",
			client: "/v1/chat/completions", path: "/v1beta/openai/chat/completions", header: "Authorization", value: "Bearer gemini-key-1"},
		{provider: "Groq", block: "base_url %s/openai\n\t\t\tkey gsk_1", model: "llama-3.3-70b-versatile",
			client: "/v1/chat/completions", path: "/openai/v1/chat/completions", header: "Authorization", value: "Bearer gsk_1"},
		{provider: "Mistral", block: "base_url %s\n\t\t\tkey mistral-1", model: "mistral-large-latest",
			client: "/v1/chat/completions", path: "/v1/chat/completions", header: "Authorization", value: "Bearer mistral-1"},
		{provider: "DeepSeek", block: "base_url %s\n\t\t\tkey sk-deepseek", model: "deepseek-chat",
			client: "/v1/chat/completions", path: "/v1/chat/completions", header: "Authorization", value: "Bearer sk-deepseek"},
		{provider: "OpenRouter", block: "base_url %s/api\n\t\t\tkey sk-or-1\n\t\t\theader HTTP-Referer https://chat.example.com\n\t\t\theader X-Title \"Example Chat\"",
			model: "openai/gpt-4o", client: "/v1/chat/completions", path: "/api/v1/chat/completions", header: "Authorization", value: "Bearer sk-or-1",
			more: map[string]string{"Http-Referer": "https://chat.example.com", "X-Title": "Example Chat"}},
		{provider: "Ollama", block: "base_url %s\n\t\t\tkey ollama", model: "qwen2.5:7b",
			client: "/v1/chat/completions", path: "/v1/chat/completions", header: "Authorization", value: "Bearer ollama"},
		{provider: "vLLM", block: "base_url %s\n\t\t\tkey vllm-token", model: "meta-llama/Llama-3.1-8B-Instruct",
			client: "/v1/chat/completions", path: "/v1/chat/completions", header: "Authorization", value: "Bearer vllm-token"},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			s := startSite(t, siteOptions{extra: "host provider.test {\n\t\t\t" + fmt.Sprintf(tc.block, p.URL) +
				"\n\t\t\tmodels " + tc.model + "\n\t\t}"})
			key := s.register("ann")
			code, _, out := s.request("POST", tc.client, strings.NewReader(chatBody(tc.model, "hi")),
				"Authorization", "Bearer "+key, "Content-Type", "application/json")
			if code != 200 {
				t.Fatalf("%d %s", code, out)
			}
			got := p.request()
			if got.URL.Path != tc.path || got.URL.RawQuery != tc.query {
				t.Errorf("path %q query %q, want %q %q", got.URL.Path, got.URL.RawQuery, tc.path, tc.query)
			}
			if v := got.Header.Get(tc.header); v != tc.value {
				t.Errorf("%s: %q, want %q", tc.header, v, tc.value)
			}
			for _, h := range []string{"Authorization", "Api-Key", "X-Api-Key"} {
				if h != tc.header && got.Header.Get(h) != "" {
					t.Errorf("%s sent too: %q", h, got.Header.Get(h))
				}
			}
			for h, v := range tc.more {
				if got.Header.Get(h) != v {
					t.Errorf("%s: %q, want %q", h, got.Header.Get(h), v)
				}
			}
		})
	}
}

// TestClientKeyNeverReachesProvider: whichever header the client sends its
// key in, and whichever the provider takes, the provider gets only its own.
func TestClientKeyNeverReachesProvider(t *testing.T) {
	p := newRecordingProvider(t)
	s := startSite(t, siteOptions{extra: fmt.Sprintf("host azure.test {\n\t\t\tbase_url %s/openai\n\t\t\tkey azure-key-1\n\t\t\tauth api-key\n\t\t}", p.URL)})
	key := s.register("ann")
	for _, h := range []string{"Api-Key", "X-Api-Key"} {
		code, _, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o", "hi")),
			h, key, "Content-Type", "application/json", "X-Host-Final", "azure.test")
		if code != 200 {
			t.Fatalf("%s: %d %s", h, code, out)
		}
		got := p.request().Header
		for name, vals := range got {
			for _, v := range vals {
				if strings.Contains(v, key) {
					t.Fatalf("the client's key reached the provider in %s", name)
				}
			}
		}
		if got.Get("Api-Key") != "azure-key-1" || got.Get("Authorization") != "" {
			t.Fatalf("provider headers %v", got)
		}
	}
}
