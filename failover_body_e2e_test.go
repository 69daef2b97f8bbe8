package aiproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestKeptBodyFreesInspectMemoryOnceSent: a body kept to be sent again
// (a host with a second key) gives its inspect_memory back once it is
// uploaded, not when its answer starts: a long generation does not keep
// the next request out.
func TestKeptBodyFreesInspectMemoryOnceSent(t *testing.T) {
	uploaded, generated := make(chan struct{}, 8), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		uploaded <- struct{}{}
		<-generated // generating
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"llama-x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer slow.Close()
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf(`inspect_memory 300KiB
		host slow.test {
			base_url %s
			key sk-1 sk-2
			models llama-*
		}`, slow.URL)})
	key := s.register("ann")
	body := chatBody("llama-x", strings.Repeat("a", 200<<10)) // small enough to be kept for a retry
	first := make(chan struct{})
	go func() {
		s.request("POST", "/v1/chat/completions", strings.NewReader(body), "Authorization", "Bearer "+key, "Content-Type", "application/json")
		close(first)
	}()
	<-uploaded // the first body is uploaded whole, its answer not written
	// The provider may have every byte a moment before the gateway's
	// transport reads the body's end, where the room is given back: a
	// refusal in that moment is tried again, while the first answer is
	// still being generated.
	deadline := time.Now().Add(5 * time.Second)
	var second chan int
	for got := false; !got; {
		second = make(chan int, 1)
		go func() {
			code, _, _ := s.request("POST", "/v1/chat/completions", strings.NewReader(body), "Authorization", "Bearer "+key, "Content-Type", "application/json")
			second <- code
		}()
		select {
		case <-uploaded: // the second body reached the provider: it found room
			got = true
		case code := <-second:
			if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
				close(generated)
				t.Fatalf("a sent body still holds inspect_memory while its answer is generated: the next request got %d", code)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	close(generated)
	<-first
	<-second
}
