package aiproxy_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// paddedChat returns a streaming chat request for model of exactly n bytes
// that does not ask for usage.
func paddedChat(t *testing.T, model string, n int) string {
	t.Helper()
	head := `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"a b `
	tail := `"}]}`
	if n < len(head)+len(tail) {
		t.Fatalf("%d bytes is too short", n)
	}
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// TestBodiesBeyondInspectMemoryPassUninspected: with inspect_memory 2KiB, a
// smaller body is inspected (the gateway asks for usage) while a larger one
// goes to the provider byte for byte, and is still counted, under the model
// the answer names, as estimated.
func TestBodiesBeyondInspectMemoryPassUninspected(t *testing.T) {
	s := startSite(t, siteOptions{extra: "inspect_memory 2KiB"})
	key := s.register("frugal")

	small := paddedChat(t, "gpt-4o-mini", 1000)
	if code, out := s.post(key, "/v1/chat/completions", small); code != 200 || bytes.Contains(out, []byte(`"usage":{`)) {
		t.Fatalf("small: %d %s", code, out)
	}
	if got := s.upstream.LastRequest().Body; !bytes.Contains(got, []byte(`"include_usage":true`)) {
		t.Fatalf("a body within the budget was not inspected: %.100s", got)
	}

	big := paddedChat(t, "gpt-4o", 4000)
	if code, out := s.post(key, "/v1/chat/completions", big); code != 200 || !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
		t.Fatalf("big: %d %s", code, out)
	}
	if got := s.upstream.LastRequest().Body; string(got) != big {
		t.Fatalf("a body over the budget was changed: %.100s", got)
	}

	// Three words, as the mock counts them.
	wantUsage(t, s.usageFor("frugal", "gpt-4o-mini"), 1, mockopenai.ExpectedUsage("a b x"), 0)
	if got := s.usageFor("frugal", "gpt-4o"); got.Requests != 1 || got.EstimatedRequests != 1 {
		t.Fatalf("the uninspected request counted as %+v", got)
	}
}

// TestInspectMemoryGivenBackOnceTheBodyIsSent: a body's share of
// inspect_memory is given back when the provider has read it, not when the
// answer ends: with room for exactly one body, a second request is
// inspected while the first one's answer still streams.
func TestInspectMemoryGivenBackOnceTheBodyIsSent(t *testing.T) {
	const size = 3000
	s := startSite(t, siteOptions{extra: "inspect_memory 3000"})
	key := s.register("sequential")

	req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(paddedChat(t, mockopenai.ModelGated, size)))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	<-s.upstream.GateWaiting() // the first answer is streaming, its body read

	if code, out := s.post(key, "/v1/chat/completions", paddedChat(t, "gpt-4o-mini", size)); code != 200 {
		t.Fatalf("second request: %d %s", code, out)
	}
	if got := s.upstream.LastRequest().Body; !bytes.Contains(got, []byte(`"include_usage":true`)) {
		t.Fatalf("the second body was not inspected while the first answer streamed: %.100s", got)
	}

	s.upstream.OpenGate()
	out, err := io.ReadAll(res.Body)
	if err != nil || !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
		t.Fatalf("first answer: %v %s", err, out)
	}
	if gated := s.upstream.Requests()[0].Body; !bytes.Contains(gated, []byte(`"include_usage":true`)) {
		t.Fatalf("the first body was not inspected: %.100s", gated)
	}
}
