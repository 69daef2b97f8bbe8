package testutil

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

const oaiTestKey = "sk-provider-test-key-0123456789"

// oaiDeadline bounds every wait on a channel; it is a failure deadline, not
// a synchronisation sleep.
const oaiDeadline = 10 * time.Second

func oaiClient(o *OpenAI, key string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(o.URL+"/v1/"),
		option.WithAPIKey(key),
		option.WithHTTPClient(o.Client()),
		option.WithMaxRetries(0),
	)
}

func oaiWait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(oaiDeadline):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// oaiPost sends a JSON body with the mock's key.
func oaiPost(t *testing.T, ctx context.Context, o *OpenAI, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+oaiTestKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// oaiSSEData reads the next event of an SSE stream, through its blank line,
// and returns its "data:" payload.
func oaiSSEData(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		if data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: "); ok {
			if end, err := br.ReadString('\n'); err != nil || end != "\n" { // the event's blank line
				t.Fatalf("event not ended by a blank line: %q %v", end, err)
			}
			return data
		}
	}
}

func TestOpenAIChatSDK(t *testing.T) {
	o := NewOpenAI(t, oaiTestKey)
	client := oaiClient(o, oaiTestKey)
	msgs := []string{"You are terse.", "say hi to  everyone"}
	resp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    openai.ChatModel("gpt-4o-mini"),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(msgs[0]), openai.UserMessage(msgs[1])},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "say hi to everyone" || got != OpenAIReply(msgs...) {
		t.Errorf("content = %q", got)
	}
	want := OpenAIExpectedUsage(msgs...)
	if resp.Usage.PromptTokens != 7 || resp.Usage.CompletionTokens != 4 || resp.Usage.TotalTokens != 11 ||
		want != (OpenAIUsage{7, 4, 11}) {
		t.Errorf("usage = %+v, want %+v", resp.Usage, want)
	}
	if !resp.Usage.PromptTokensDetails.JSON.CachedTokens.Valid() || !resp.Usage.CompletionTokensDetails.JSON.ReasoningTokens.Valid() {
		t.Error("usage details missing")
	}
	if resp.ID != "chatcmpl-mock000001" || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("id = %q, finish = %q", resp.ID, resp.Choices[0].FinishReason)
	}
	rr := o.LastRequest()
	if rr.Method != "POST" || rr.Path != "/v1/chat/completions" || !rr.Authorized ||
		rr.Header.Get("Authorization") != "Bearer "+oaiTestKey || rr.ContentType != "application/json" {
		t.Errorf("recorded %+v", rr)
	}
	sum := sha256.Sum256(rr.Body)
	if int64(len(rr.Body)) != rr.BodyLen || hex.EncodeToString(sum[:]) != rr.BodySHA256 {
		t.Error("recorded body does not match its length and hash")
	}
}

func TestOpenAIChatStreamSDK(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "include_usage"}[includeUsage], func(t *testing.T) {
			o := NewOpenAI(t, oaiTestKey)
			params := openai.ChatCompletionNewParams{
				Model:    openai.ChatModel("gpt-4o-mini"),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("one two three four")},
			}
			if includeUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			client := oaiClient(o, oaiTestKey)
			stream := client.Chat.Completions.NewStreaming(context.Background(), params)
			var acc openai.ChatCompletionAccumulator
			var chunks []openai.ChatCompletionChunk
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks = append(chunks, stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if got := acc.Choices[0].Message.Content; got != "one two three four" {
				t.Errorf("content = %q", got)
			}
			// role, 4 words, finish, and the usage chunk only when asked for.
			wantChunks := 6
			if includeUsage {
				wantChunks = 7
			}
			if len(chunks) != wantChunks {
				t.Fatalf("got %d chunks, want %d", len(chunks), wantChunks)
			}
			for i, ch := range chunks {
				raw := ch.RawJSON()
				last := i == len(chunks)-1
				switch {
				case !includeUsage && strings.Contains(raw, `"usage"`):
					t.Errorf("chunk %d has usage without include_usage: %s", i, raw)
				case includeUsage && !last && !strings.Contains(raw, `"usage":null`):
					t.Errorf("chunk %d lacks usage:null: %s", i, raw)
				case includeUsage && last && (len(ch.Choices) != 0 || !strings.Contains(raw, `"choices":[]`)):
					t.Errorf("usage chunk has choices: %s", raw)
				}
			}
			if includeUsage {
				u := chunks[len(chunks)-1].Usage
				if want := OpenAIExpectedUsage("one two three four"); u.PromptTokens != want.PromptTokens ||
					u.CompletionTokens != want.CompletionTokens || u.TotalTokens != want.TotalTokens {
					t.Errorf("usage = %+v, want %+v", u, want)
				}
			}
		})
	}
}

func TestOpenAIResponsesSDK(t *testing.T) {
	o := NewOpenAI(t, oaiTestKey)
	client := oaiClient(o, oaiTestKey)
	params := responses.ResponseNewParams{
		Model:        openai.ChatModel("gpt-4o-mini"),
		Instructions: openai.String("be brief"),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("write a haiku")},
	}
	want := OpenAIExpectedUsage("be brief", "write a haiku")

	resp, err := client.Responses.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != "write a haiku" || resp.Usage.InputTokens != want.PromptTokens ||
		resp.Usage.OutputTokens != want.CompletionTokens || resp.Usage.TotalTokens != want.TotalTokens {
		t.Errorf("non-stream: text %q usage %+v, want %+v", resp.OutputText(), resp.Usage, want)
	}

	stream := client.Responses.NewStreaming(context.Background(), params)
	var types []string
	var text string
	var completed responses.Response
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if ev.SequenceNumber != int64(len(types)-1) {
			t.Errorf("event %s has sequence_number %d", ev.Type, ev.SequenceNumber)
		}
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.completed":
			completed = ev.AsResponseCompleted().Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	wantTypes := "response.created response.in_progress response.output_item.added response.content_part.added " +
		"response.output_text.delta response.output_text.delta response.output_text.delta " +
		"response.output_text.done response.content_part.done response.output_item.done response.completed"
	if got := strings.Join(types, " "); got != wantTypes {
		t.Errorf("events:\n got %s\nwant %s", got, wantTypes)
	}
	if text != "write a haiku" || completed.OutputText() != text || completed.Status != "completed" {
		t.Errorf("streamed %q, completed %q (%s)", text, completed.OutputText(), completed.Status)
	}
	if u := completed.Usage; u.InputTokens != want.PromptTokens || u.OutputTokens != want.CompletionTokens ||
		u.TotalTokens != want.TotalTokens || !u.InputTokensDetails.JSON.CachedTokens.Valid() ||
		!u.OutputTokensDetails.JSON.ReasoningTokens.Valid() {
		t.Errorf("completed usage = %+v, want %+v", u, want)
	}
}

func TestOpenAIOtherEndpointsSDK(t *testing.T) {
	o := NewOpenAITLS(t, oaiTestKey)
	client := oaiClient(o, oaiTestKey)
	ctx := context.Background()

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:  openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct"),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("once upon a time")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Choices[0].Text != "once upon a time" || comp.Object != "text_completion" || comp.Usage.TotalTokens != 8 {
		t.Errorf("completion = %s", comp.RawJSON())
	}

	stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model:         openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct"),
		Prompt:        openai.CompletionNewParamsPromptUnion{OfString: openai.String("a b c")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var text string
	var total int64
	for stream.Next() {
		c := stream.Current()
		if len(c.Choices) > 0 {
			text += c.Choices[0].Text
		}
		total = c.Usage.TotalTokens
	}
	if err := stream.Err(); err != nil || text != "a b c" || total != 6 {
		t.Errorf("completion stream: %q total %d err %v", text, total, err)
	}

	for _, format := range []openai.EmbeddingNewParamsEncodingFormat{"", openai.EmbeddingNewParamsEncodingFormatBase64} {
		emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model:          openai.EmbeddingModelTextEmbedding3Small,
			Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a b", "c"}},
			EncodingFormat: format,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(emb.Data) != 2 || len(emb.Data[1].Embedding) != 8 || emb.Usage.PromptTokens != 3 || emb.Usage.TotalTokens != 3 {
			t.Errorf("embeddings (%q) = %s", format, emb.RawJSON())
		}
		if sum := sha256.Sum256([]byte("c")); emb.Data[1].Embedding[0] != float64(int(sum[0])-128)/128 {
			t.Errorf("embedding (%q) value %v", format, emb.Data[1].Embedding[0])
		}
	}

	page, err := client.Models.List(ctx)
	if err != nil || len(page.Data) != len(oaiModels) {
		t.Fatalf("models: %v %v", page, err)
	}
	if m, err := client.Models.Get(ctx, "gpt-4o"); err != nil || m.ID != "gpt-4o" {
		t.Errorf("model: %v %v", m, err)
	}
	var apiErr *openai.Error
	if _, err := client.Models.Get(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}

	content := bytes.Repeat([]byte("line of jsonl\n"), 1000)
	f, err := client.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(content), "data.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatal(err)
	}
	rr := o.LastRequest()
	sum := sha256.Sum256(content)
	if f.Bytes != int64(len(content)) || f.Filename != "data.jsonl" || rr.UploadSHA256 != hex.EncodeToString(sum[:]) ||
		rr.UploadBytes != int64(len(content)) || rr.UploadPurpose != "batch" || !strings.HasPrefix(rr.ContentType, "multipart/form-data") {
		t.Errorf("upload: file %+v, recorded %+v", f, rr)
	}
	del, err := client.Files.Delete(ctx, f.ID)
	if err != nil || !del.Deleted || del.ID != f.ID {
		t.Errorf("delete: %v %v", del, err)
	}
	if rr := o.LastRequest(); rr.Method != "DELETE" || rr.Path != "/v1/files/"+f.ID || rr.BodyLen != 0 {
		t.Errorf("delete recorded %+v", rr)
	}
}

func TestOpenAIAuth(t *testing.T) {
	o := NewOpenAI(t, oaiTestKey)
	wrong := "sk-cfwWRONGKEY0123456789abcdefWXYZ"
	client := oaiClient(o, wrong)
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
	for _, vals := range [][]string{nil, {"Bearer " + oaiTestKey, "Bearer " + oaiTestKey}} {
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

func TestOpenAIErrorModels(t *testing.T) {
	o := NewOpenAI(t, oaiTestKey)
	for _, tc := range []struct {
		model  string
		status int
		typ    string
	}{{OpenAIModelError429, 429, "requests"}, {OpenAIModelError500, 500, "server_error"}} {
		for _, path := range []string{"/v1/chat/completions", "/openai/v1/responses", "/v1/embeddings"} {
			resp := oaiPost(t, context.Background(), o, path, `{"model":"`+tc.model+`","messages":[{"role":"user","content":"x"}],"input":"x"}`)
			var body map[string]map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || body["error"]["type"] != tc.typ {
				t.Errorf("%s %s: %d %v", tc.model, path, resp.StatusCode, body)
			}
			if tc.status == 429 && (resp.Header.Get("Retry-After") != "1" || resp.Header.Get("x-ratelimit-remaining-requests") != "0") {
				t.Errorf("429 headers: %v", resp.Header)
			}
		}
	}
	resp := oaiPost(t, context.Background(), o, "/v1/whatever", `{}`)
	var body map[string]map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 404 || body["error"]["message"] != "Invalid URL (POST /v1/whatever)" || body["error"]["code"] != nil {
		t.Errorf("unknown path: %d %v", resp.StatusCode, body)
	}
}

// TestOpenAIGate proves a gated stream sends one content chunk per Release,
// and that a client going away is seen as Canceled.
func TestOpenAIGate(t *testing.T) {
	o := NewOpenAI(t, oaiTestKey)
	resp := oaiPost(t, context.Background(), o, "/v1/chat/completions",
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
		if err := json.Unmarshal([]byte(oaiSSEData(t, br)), &ch); err != nil {
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
			oaiWait(t, o.GateWaiting(), "the gate")
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
		resp = oaiPost(t, ctx, o, path, `{"model":"gated","stream":true,"messages":[{"role":"user","content":"a b"}],"prompt":"a b","input":"a b"}`)
		oaiWait(t, o.GateWaiting(), path+" at the gate")
		cancel()
		resp.Body.Close()
		oaiWait(t, o.Canceled(), path+" cancellation")
	}

	// A gated non-stream request waits for one token.
	o.Release()
	resp = oaiPost(t, context.Background(), o, "/v1/chat/completions", `{"model":"gated","messages":[{"role":"user","content":"x"}]}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("gated non-stream: %d", resp.StatusCode)
	}
}

func TestOpenAIEcho(t *testing.T) {
	o := NewOpenAI(t, oaiTestKey)
	payload := bytes.Repeat([]byte{0, 1, 2, 0xff}, 300_000)
	sum := sha256.Sum256(payload)

	// Chunked upload (unknown length), odd path encoding, a query.
	req, _ := http.NewRequest(http.MethodPut, o.URL+"/openai/v1/echo/a%2Fb/c?x=1&y=%20", io.NopCloser(bytes.NewReader(payload)))
	req.Header.Set("Authorization", "Bearer "+oaiTestKey)
	req.Header.Set("X-Custom", "kept")
	resp, err := o.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var echo OpenAIEcho
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if echo.Method != "PUT" || echo.Path != "/openai/v1/echo/a/b/c" || echo.RawPath != "/openai/v1/echo/a%2Fb/c" ||
		echo.RawQuery != "x=1&y=%20" || echo.RequestURI != "/openai/v1/echo/a%2Fb/c?x=1&y=%20" ||
		echo.ContentLength != -1 || echo.BodyLen != int64(len(payload)) || echo.BodySHA256 != hex.EncodeToString(sum[:]) ||
		echo.Headers.Get("X-Custom") != "kept" || echo.Host != strings.TrimPrefix(o.URL, "http://") {
		t.Errorf("echo = %+v", echo)
	}

	req, _ = http.NewRequest(http.MethodPost, o.URL+"/v1/echo/bytes?echo=body", bytes.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+oaiTestKey)
	resp, err = o.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, payload) || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		resp.Header.Get("X-Echo-Body-Sha256") != hex.EncodeToString(sum[:]) {
		t.Errorf("echo=body: %d bytes, err %v, headers %v", len(got), err, resp.Header)
	}
	if rr := o.LastRequest(); rr.Body != nil || rr.ContentLength != int64(len(payload)) || rr.BodyLen != int64(len(payload)) {
		t.Errorf("recorded large body: Body %d bytes, ContentLength %d", len(rr.Body), rr.ContentLength)
	}
}

// TestOpenAIRealtimeWebSocket does the handshake over raw TCP and checks that
// bytes round-trip.
func TestOpenAIRealtimeWebSocket(t *testing.T) {
	o := NewOpenAI(t, oaiTestKey)
	conn, err := net.Dial("tcp", o.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(oaiDeadline))
	_, err = io.WriteString(conn, "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: api.openai.com\r\n"+
		"Authorization: Bearer "+oaiTestKey+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: realtime, openai-beta.realtime-v1\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The accept value is RFC 6455's worked example for this key.
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		resp.Header.Get("Sec-WebSocket-Protocol") != "realtime" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	msg := []byte("\x81\x05hello, raw bytes \x00\xff")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo %q, err %v", got, err)
	}
	if rr := o.LastRequest(); rr.Path != "/v1/realtime" || rr.Host != "api.openai.com" || rr.Header.Get("Upgrade") != "websocket" {
		t.Errorf("recorded %+v", rr)
	}

	// Without the upgrade headers it is an OpenAI error, not a hijack.
	req, _ := http.NewRequest(http.MethodGet, o.URL+"/v1/realtime", nil)
	req.Header.Set("Authorization", "Bearer "+oaiTestKey)
	plain, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != 400 {
		t.Errorf("plain GET /v1/realtime: %d", plain.StatusCode)
	}
}

// TestOpenAICloseWhileGated checks that Close does not wait for a request
// parked at the gate, so a test can make the upstream vanish mid-stream.
func TestOpenAICloseWhileGated(t *testing.T) {
	o := NewOpenAI(t, oaiTestKey)
	resp := oaiPost(t, context.Background(), o, "/v1/responses", `{"model":"gated","stream":true,"input":"a b c"}`)
	defer resp.Body.Close()
	oaiWait(t, o.GateWaiting(), "the gate")
	closed := make(chan struct{})
	go func() { o.Close(); close(closed) }()
	oaiWait(t, closed, "Close")
	_, _ = io.ReadAll(resp.Body) // the rest of the stream, or a cut connection
}
