package mockopenai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

func TestAuth(t *testing.T) {
	o := New(t, testKey)
	wrong := "sk-cfwWRONGKEY0123456789abcdefWXYZ"
	client := sdkClient(o, wrong)
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    openai.ChatModel("gpt-4o-mini"),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" || apiErr.Type != "invalid_request_error" {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(apiErr.RawJSON(), wrong) || !strings.Contains(apiErr.Message, "WXYZ") {
		t.Errorf("key not masked as OpenAI does: %s", apiErr.Message)
	}
	if rr := o.LastRequest(); rr.Authorized || rr.Header.Get("Authorization") != "Bearer "+wrong || rr.Path != "/v1/chat/completions" {
		t.Errorf("recorded %+v", rr)
	}

	// No key, and a duplicated Authorization header, are refused too.
	for _, vals := range [][]string{nil, {"Bearer " + testKey, "Bearer " + testKey}} {
		req, _ := http.NewRequest(http.MethodGet, o.URL+"/openai/v1/models", nil)
		req.Header["Authorization"] = vals
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 401 || body.Error.Type != "invalid_request_error" || body.Error.Message == "" {
			t.Errorf("%d auth headers: status %d body %+v", len(vals), resp.StatusCode, body)
		}
	}
	if n := len(o.Requests()); n != 3 {
		t.Errorf("recorded %d requests, want 3", n)
	}
}

// TestGate proves a gated stream sends one content chunk per Release,
// and that a client going away is seen as Canceled.
func TestGate(t *testing.T) {
	o := New(t, testKey)
	resp := post(t, context.Background(), o, "/v1/chat/completions",
		`{"model":"gated","stream":true,"messages":[{"role":"user","content":"alpha beta gamma"}]}`)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	content := func() string {
		var ch struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(sseData(t, br)), &ch); err != nil {
			t.Fatal(err)
		}
		return ch.Choices[0].Delta.Content
	}
	if got := content(); got != "" { // the role chunk
		t.Fatalf("role chunk content %q", got)
	}
	for i, want := range []string{"alpha", " beta", " gamma"} {
		if i > 0 {
			// The handler is parked before chunk i: nothing after chunk i-1 was sent.
			waitFor(t, o.GateWaiting(), "the gate")
			if br.Buffered() != 0 {
				t.Fatalf("bytes beyond chunk %d arrived before Release", i-1)
			}
			o.Release()
		}
		if got := content(); got != want {
			t.Fatalf("chunk %d = %q, want %q", i, got, want)
		}
	}
	if rest, _ := io.ReadAll(br); !bytes.HasSuffix(rest, []byte("data: [DONE]\n\n")) {
		t.Errorf("stream tail %q", rest)
	}

	// Cancel: the client leaves while the handler waits at the gate.
	for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/responses"} {
		ctx, cancel := context.WithCancel(context.Background())
		resp = post(t, ctx, o, path, `{"model":"gated","stream":true,"messages":[{"role":"user","content":"a b"}],"prompt":"a b","input":"a b"}`)
		waitFor(t, o.GateWaiting(), path+" at the gate")
		cancel()
		resp.Body.Close()
		waitFor(t, o.Canceled(), path+" cancellation")
	}

	// A gated non-stream request waits for one token.
	o.Release()
	resp = post(t, context.Background(), o, "/v1/chat/completions", `{"model":"gated","messages":[{"role":"user","content":"x"}]}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("gated non-stream: %d", resp.StatusCode)
	}
}

// TestCloseWhileGated checks that Close does not wait for a request
// parked at the gate, so a test can make the upstream vanish mid-stream.
func TestCloseWhileGated(t *testing.T) {
	o := New(t, testKey)
	resp := post(t, context.Background(), o, "/v1/responses", `{"model":"gated","stream":true,"input":"a b c"}`)
	defer resp.Body.Close()
	waitFor(t, o.GateWaiting(), "the gate")
	closed := make(chan struct{})
	go func() { o.Close(); close(closed) }()
	waitFor(t, closed, "Close")
	_, _ = io.ReadAll(resp.Body) // the rest of the stream, or a cut connection
}
