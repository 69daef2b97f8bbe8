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

// TestClientCannotSetKeysAside: a 403 a provider answers for a request's
// content (OpenRouter's moderation) does not set its key aside: any user
// could send such a prompt.
func TestClientCannotSetKeysAside(t *testing.T) {
	var mu sync.Mutex
	byKey := map[string]int{}
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(string(body), "flagged-content") {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":{"code":403,"message":"Your chosen model requires moderation and your input was flagged"}}`)
			return
		}
		mu.Lock()
		byKey[r.Header.Get("Authorization")]++
		mu.Unlock()
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"meta-llama/x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer prov.Close()
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf(`host openrouter.test {
			base_url %s
			key sk-or-1 sk-or-2
			models meta-llama/*
		}`, prov.URL)})
	key := s.register("mallory")
	s.post(key, "/v1/chat/completions", chatBody("meta-llama/x", "flagged-content"))
	for range 10 {
		if code, out := s.post(key, "/v1/chat/completions", chatBody("meta-llama/x", "hello")); code != 200 {
			t.Fatalf("%d %s", code, out)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if byKey["Bearer sk-or-1"] == 0 || byKey["Bearer sk-or-2"] == 0 {
		t.Fatalf("one user's flagged prompt took a good provider key out of use: requests per key %v", byKey)
	}
}
