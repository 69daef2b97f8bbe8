package aiproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDeliveredRequestNotSentAgain: a request the provider received whole,
// whose connection then dropped before the answer, is not sent again (the
// provider may have run and billed it): only one that never left is.
func TestDeliveredRequestNotSentAgain(t *testing.T) {
	var delivered atomic.Int64
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if delivered.Add(1) == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // ran it, then the connection dropped
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer prov.Close()
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf("host keys.test {\n\t\t\tbase_url %s\n\t\t\tkey sk-one sk-two\n\t\t}", prov.URL)})
	key := s.register("ann")
	code, _, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json", "X-Host-Final", "keys.test")
	if n := delivered.Load(); n > 1 {
		t.Fatalf("a request the provider received whole was sent again: provider ran it %d times (client got %d %s)", n, code, out)
	}
}
