package meter

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// chunkings returns ways to cut body into chunks: whole, byte by byte, at
// every single split point, and a few random cuttings.
func chunkings(body []byte, seed uint64) map[string][][]byte {
	out := map[string][][]byte{"whole": {body}}
	bytewise := make([][]byte, len(body))
	for i := range body {
		bytewise[i] = body[i : i+1]
	}
	out["bytes"] = bytewise
	for i := 1; i < len(body); i++ {
		out[fmt.Sprintf("split@%d", i)] = [][]byte{body[:i], body[i:]}
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for n := 0; n < 20; n++ {
		var cs [][]byte
		for rest := body; len(rest) > 0; {
			k := min(len(rest), 1+r.IntN(1+r.IntN(64)))
			cs, rest = append(cs, rest[:k]), rest[k:]
		}
		out[fmt.Sprintf("random%d", n)] = cs
	}
	return out
}

// feed runs chunks through a new started meter, each chunk copied into a
// buffer that is clobbered after Write (the meter must not keep p), and
// returns what the client got and the usage. Without strip it checks that
// Write returns p itself.
func feed(t testing.TB, kind Kind, strip bool, contentType string, chunks [][]byte) ([]byte, Usage) {
	t.Helper()
	m := New(kind, strip)
	m.Start(200, contentType)
	var out []byte
	var buf []byte
	for _, c := range chunks {
		buf = append(buf[:0], c...)
		got := m.Write(buf)
		if !m.stripping && (len(got) != len(buf) || len(buf) > 0 && &got[0] != &buf[0]) {
			t.Fatalf("Write returned a different slice without stripping")
		}
		out = append(out, got...)
		for i := range buf {
			buf[i] = '#'
		}
	}
	out = append(out, m.Finish()...)
	if extra := m.Finish(); extra != nil {
		t.Fatalf("second Finish returned %q", extra)
	}
	return out, m.Usage()
}

// checkAllChunkings feeds body in every chunking and checks the usage and
// that the client got want (body itself when want is nil).
func checkAllChunkings(t *testing.T, kind Kind, strip bool, contentType string, body, want []byte, wantUsage Usage) {
	t.Helper()
	if want == nil {
		want = body
	}
	for name, chunks := range chunkings(body, uint64(len(body))) {
		out, u := feed(t, kind, strip, contentType, chunks)
		if !bytes.Equal(out, want) {
			t.Fatalf("%s: the client got\n%q\nwant\n%q", name, out, want)
		}
		if u != wantUsage {
			t.Fatalf("%s: usage\n %+v\nwant\n %+v", name, u, wantUsage)
		}
	}
}

const (
	chatJSON = `{
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! \"usage\": {\"prompt_tokens\": 999} \\ \u00e9 { [ ",
        "refusal": null,
        "annotations": [],
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"model\":\"x\",\"usage\":1}"}}]
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "metadata": {"usage": {"prompt_tokens": 1, "completion_tokens": 1}, "model": "nested"},
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {
      "cached_tokens": 3,
      "audio_tokens": 0
    },
    "completion_tokens_details": {
      "reasoning_tokens": 4,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default"
}
`
	completionJSON = `{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"\n\nThis is a test.","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`
	embeddingJSON  = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-1e-5,3E+2]},{"object":"embedding","index":1,"embedding":"AAAAAAAAgD8="}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}`
	responseJSON   = `{"id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","object":"response","created_at":1741476542,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-4.1-2025-04-14","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"In a peaceful grove...","annotations":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":5},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":7},"total_tokens":123},"user":null,"metadata":{}}`
	errorJSON      = `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
)

func TestMeterJSON(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		body string
		want Usage
	}{
		{"chat", KindChat, chatJSON, Usage{Found: true, Model: "gpt-4.1-2025-04-14",
			PromptTokens: 19, CompletionTokens: 10, TotalTokens: 29, CachedTokens: 3, ReasoningTokens: 4}},
		{"completion", KindCompletion, completionJSON, Usage{Found: true, Model: "gpt-3.5-turbo-instruct",
			PromptTokens: 5, CompletionTokens: 7, TotalTokens: 12}},
		{"embedding", KindEmbedding, embeddingJSON, Usage{Found: true, Model: "text-embedding-3-small",
			PromptTokens: 8, TotalTokens: 8}},
		{"response", KindResponse, responseJSON, Usage{Found: true, Model: "gpt-4.1-2025-04-14",
			PromptTokens: 36, CompletionTokens: 87, TotalTokens: 123, CachedTokens: 5, ReasoningTokens: 7}},
		{"error", KindChat, errorJSON, Usage{}},
		{"usage null", KindChat, `{"model":"m","usage":null}`, Usage{Model: "m"}},
		{"usage empty", KindChat, `{"model":"m","usage":{}}`, Usage{Model: "m"}},
		{"total omitted", KindChat, `{"usage":{"prompt_tokens":2,"completion_tokens":3}}`,
			Usage{Found: true, PromptTokens: 2, CompletionTokens: 3, TotalTokens: 5}},
		{"lax numbers", KindChat, `{"usage":{"prompt_tokens":2.0,"completion_tokens":"3","total_tokens":-1,"prompt_tokens_details":null}}`,
			Usage{Found: true, PromptTokens: 2}},
		{"last usage wins", KindChat, `{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}`,
			Usage{Found: true, PromptTokens: 2, TotalTokens: 2}},
		{"usage before choices", KindChat, `{"usage":{"total_tokens":9},"choices":[{"x":"}]"}],"model":"late"}`,
			Usage{Found: true, Model: "late", TotalTokens: 9}},
		{"scalars around", KindChat, `{"a":1,"b":true,"c":null,"model":"m","d":-2.5e3,"usage":{"total_tokens":1}}`,
			Usage{Found: true, Model: "m", TotalTokens: 1}},
		{"not an object", KindChat, `[{"usage":{"total_tokens":1},"model":"m"}]`, Usage{}},
		{"truncated usage", KindChat, `{"model":"m","usage":{"prompt_tokens":1`, Usage{Model: "m"}},
		{"model not a string", KindChat, `{"model":["m"],"usage":{"total_tokens":1}}`, Usage{Found: true, TotalTokens: 1}},
		{"escaped keys", KindChat, `{"mod\u0065l":"m","\u0075sage":{"total_tokens":1}}`, Usage{Found: true, Model: "m", TotalTokens: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAllChunkings(t, tt.kind, false, "application/json", []byte(tt.body), nil, tt.want)
			// strip has no effect on JSON.
			out, u := feed(t, tt.kind, true, "application/json; charset=utf-8", [][]byte{[]byte(tt.body)})
			if string(out) != tt.body || u != tt.want {
				t.Errorf("with strip: %q, %+v", out, u)
			}
		})
	}
}

func TestMeterStart(t *testing.T) {
	body := []byte(completionJSON)
	for _, tt := range []struct {
		kind        Kind
		status      int
		contentType string
		want        Mode
	}{
		{KindChat, 200, "application/json", ModeJSON},
		{KindChat, 201, "Application/JSON ; charset=utf-8", ModeJSON},
		{KindChat, 200, "text/event-stream; charset=utf-8", ModeSSE},
		{KindChat, 200, "TEXT/EVENT-STREAM", ModeSSE},
		{KindChat, 200, "", ModePass},
		{KindChat, 200, "text/plain", ModePass},
		{KindChat, 200, "application/jsonl", ModePass},
		{KindChat, 400, "application/json", ModePass},
		{KindChat, 500, "text/event-stream", ModePass},
		{KindChat, 101, "application/json", ModePass},
		{KindOther, 200, "application/json", ModePass},
		{KindOther, 200, "text/event-stream", ModePass},
	} {
		m := New(tt.kind, true)
		if m.Mode() != ModePass {
			t.Fatalf("mode before Start: %v", m.Mode())
		}
		m.Start(tt.status, tt.contentType)
		m.Start(200, "application/json") // ignored: once only
		if m.Mode() != tt.want {
			t.Errorf("Start(%d, %q) for %v: mode %v, want %v", tt.status, tt.contentType, tt.kind, m.Mode(), tt.want)
		}
		out := m.Write(body)
		out = append(out, m.Finish()...)
		u := m.Usage()
		if !bytes.Equal(out, body) {
			t.Errorf("Start(%d, %q): output changed", tt.status, tt.contentType)
		}
		if u.Found != (tt.want == ModeJSON) {
			t.Errorf("Start(%d, %q): usage %+v", tt.status, tt.contentType, u)
		}
	}
	// Write before Start passes through unmetered; so does Write after Finish.
	m := New(KindChat, false)
	if out := m.Write(body); &out[0] != &body[0] {
		t.Error("Write before Start changed p")
	}
	m.Start(200, "application/json")
	m.Finish()
	if out := m.Write(body); &out[0] != &body[0] || m.Usage().Found {
		t.Error("Write after Finish was metered")
	}
}

// sse joins events into a stream, each followed by a blank line.
func sse(events ...string) string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString(e)
		b.WriteString("\n\n")
	}
	return b.String()
}

const (
	chatChunkRole  = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`
	chatChunkHello = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}`
	chatChunkWorld = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" \"world\"\n"},"logprobs":null,"finish_reason":null}],"usage":null}`
	chatChunkStop  = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`
	chatChunkUsage = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":1,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`
	sseDone        = `data: [DONE]`
)

var chatUsage = Usage{Found: true, Model: "gpt-4o-mini-2024-07-18", PromptTokens: 9, CompletionTokens: 2,
	TotalTokens: 11, CachedTokens: 1, ContentChunks: 2}

// withoutUsageNull removes `,"usage":null` the way a stream without
// include_usage would look.
func withoutUsageNull(s string) string { return strings.ReplaceAll(s, `,"usage":null`, "") }

const responseStream = `event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","model":"gpt-4.1-2025-04-14","output":[],"usage":null}}

event: response.in_progress
data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-4.1-2025-04-14","usage":null}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_1","status":"in_progress","type":"message","role":"assistant","content":[]}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" there \"usage\":{}"}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Hi there"}

event: response.completed
data: {"type":"response.completed","sequence_number":6,"response":{"id":"resp_1","object":"response","created_at":1,"status":"completed","instructions":"Be \"brief\".","model":"gpt-4.1-2025-04-14","output":[{"id":"msg_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"text":"Hi there"}],"role":"assistant"}],"usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":4},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":48},"user":null,"metadata":{}}}

`

var responseUsage = Usage{Found: true, Model: "gpt-4.1-2025-04-14", PromptTokens: 37, CompletionTokens: 11,
	TotalTokens: 48, CachedTokens: 4, ReasoningTokens: 2, ContentChunks: 2}

func TestMeterSSE(t *testing.T) {
	chat := sse(chatChunkRole, chatChunkHello, chatChunkWorld, chatChunkStop, chatChunkUsage, sseDone)
	incomplete := strings.NewReplacer("response.completed", "response.incomplete", `"completed"`, `"incomplete"`).Replace(responseStream)
	tests := []struct {
		name string
		kind Kind
		body string
		want Usage
	}{
		{"chat with usage", KindChat, chat, chatUsage},
		{"chat CRLF", KindChat, strings.ReplaceAll(chat, "\n", "\r\n"), chatUsage},
		{"chat CR", KindChat, strings.ReplaceAll(chat, "\n", "\r"), chatUsage},
		{"chat data: without space", KindChat, strings.ReplaceAll(chat, "data: ", "data:"), chatUsage},
		{"chat without usage", KindChat, withoutUsageNull(sse(chatChunkRole, chatChunkHello, chatChunkWorld, chatChunkStop, sseDone)),
			Usage{Model: chatUsage.Model, ContentChunks: 2}},
		{"chat cut before usage", KindChat, sse(chatChunkRole, chatChunkHello) + chatChunkWorld[:40],
			Usage{Model: chatUsage.Model, ContentChunks: 1}},
		{"chat last event without blank line", KindChat, sse(chatChunkHello) + chatChunkUsage + "\n",
			Usage{Found: true, Model: chatUsage.Model, PromptTokens: 9, CompletionTokens: 2, TotalTokens: 11, CachedTokens: 1, ContentChunks: 1}},
		{"comments ids and retries", KindChat, sse(": OPENROUTER PROCESSING", "id: 1\nretry: 3000\n"+chatChunkHello, ":", chatChunkUsage, sseDone),
			Usage{Found: true, Model: chatUsage.Model, PromptTokens: 9, CompletionTokens: 2, TotalTokens: 11, CachedTokens: 1, ContentChunks: 1}},
		{"multi-line data", KindChat, sse("data: {\"model\":\"m\",\ndata: \"choices\":[],\ndata:\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}"),
			Usage{Found: true, Model: "m", PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}},
		{"content kinds", KindChat, sse(
			`data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}`,
			`data: {"choices":[{"delta":{"tool_calls":[]}}]}`,
			`data: {"choices":[{"delta":{"refusal":"no"}}]}`,
			`data: {"choices":[{"delta":{"reasoning_content":"hmm"}}]}`,
			`data: {"choices":[{"delta":{"function_call":{"name":"f"}}}]}`,
			`data: {"choices":[{"delta":{"content":null}},{"delta":{"content":"x"}}]}`,
			`data: {"choices":[{"delta":{"content":""}}]}`,
			`data: {"choices":[{"text":"x","index":0}]}`,
			`data: {"choices":[{"text":"","index":0}]}`,
		), Usage{ContentChunks: 6}},
		{"completion", KindCompletion, sse(
			`data: {"id":"cmpl-1","object":"text_completion","created":1,"choices":[{"text":"Hi","index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct","usage":null}`,
			`data: {"id":"cmpl-1","object":"text_completion","created":1,"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"model":"gpt-3.5-turbo-instruct","usage":null}`,
			`data: {"id":"cmpl-1","object":"text_completion","created":1,"choices":[],"model":"gpt-3.5-turbo-instruct","usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`,
			sseDone),
			Usage{Found: true, Model: "gpt-3.5-turbo-instruct", PromptTokens: 3, CompletionTokens: 1, TotalTokens: 4, ContentChunks: 1}},
		{"response", KindResponse, responseStream, responseUsage},
		{"response CRLF", KindResponse, strings.ReplaceAll(responseStream, "\n", "\r\n"), responseUsage},
		{"response incomplete", KindResponse, incomplete, responseUsage},
		{"response without event lines", KindResponse, strings.ReplaceAll(
			strings.ReplaceAll(responseStream, "event: response.output_text.delta\n", ""), "event: response.completed\n", ""), responseUsage},
		{"event name only", KindResponse, sse("event: response.output_text.delta\ndata: {\"delta\":\"x\"}", "event: x.delta\n"), Usage{ContentChunks: 1}},
		{"response failed", KindResponse, sse(`event: response.failed
data: {"type":"response.failed","response":{"status":"failed","model":"o3","error":{"code":"server_error"},"usage":{"input_tokens":5,"output_tokens":0,"total_tokens":5}}}`),
			Usage{Found: true, Model: "o3", PromptTokens: 5, TotalTokens: 5}},
		{"error event", KindResponse, sse(`event: error
data: {"type":"error","code":"ERR","message":"boom","param":null}`), Usage{}},
		{"not JSON", KindChat, "data: hello\n\ndata: {broken\n\n: x\n\nfoo\nbar: baz\n\n\n\n", Usage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAllChunkings(t, tt.kind, false, "text/event-stream", []byte(tt.body), nil, tt.want)
		})
	}
}

// TestMeterBigEvent meters an event far larger than any buffer, as a
// Responses API response.completed with a long output is.
func TestMeterBigEvent(t *testing.T) {
	text := strings.Repeat(`lorem \"ipsum\" \\ \u00e9 `, 200_000) // ~5 MB of escaped text
	body := sse(`event: response.completed
data: {"type":"response.completed","response":{"model":"gpt-5","output":[{"content":[{"text":"`+text+`"}]}],"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}}`, sseDone)
	want := Usage{Found: true, Model: "gpt-5", PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}
	for _, size := range []int{1 << 10, 32 << 10, 1<<20 + 7} {
		var chunks [][]byte
		for b := []byte(body); len(b) > 0; {
			k := min(size, len(b))
			chunks, b = append(chunks, b[:k]), b[k:]
		}
		for _, strip := range []bool{false, true} {
			out, u := feed(t, KindResponse, strip, "text/event-stream", chunks)
			if string(out) != body || u != want {
				t.Errorf("chunks of %d, strip %v: usage %+v, output same: %v", size, strip, u, string(out) == body)
			}
		}
	}
}
