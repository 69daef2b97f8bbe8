package meter

import (
	"strings"
	"testing"
)

// BenchmarkMeterSSEChat meters a chat stream with include_usage, one chunk
// per Write as OpenAI flushes them: the cost per chunk.
func BenchmarkMeterSSEChat(b *testing.B) {
	benchSSE(b, false)
}

// BenchmarkMeterSSEChatStrip is BenchmarkMeterSSEChat while stripping the
// usage for a client that did not ask for it.
func BenchmarkMeterSSEChatStrip(b *testing.B) {
	benchSSE(b, true)
}

func benchSSE(b *testing.B, strip bool) {
	chunk := []byte(chatChunkHello + "\n\n")
	m := New(KindChat, strip)
	m.Start(200, "text/event-stream")
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if out := m.Write(chunk); len(out) == 0 {
			b.Fatal("nothing out")
		}
	}
	if u := m.Usage(); u.ContentChunks == 0 || u.Model == "" {
		b.Fatalf("usage %+v", u)
	}
}

// BenchmarkMeterResponseEvents meters Responses API delta events.
func BenchmarkMeterResponseEvents(b *testing.B) {
	ev := []byte("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\" world\",\"logprobs\":[]}\n\n")
	m := New(KindResponse, false)
	m.Start(200, "text/event-stream")
	b.SetBytes(int64(len(ev)))
	b.ReportAllocs()
	for b.Loop() {
		m.Write(ev)
	}
	if m.Usage().ContentChunks == 0 {
		b.Fatal("no content counted")
	}
}

// BenchmarkMeterJSON meters a large JSON answer in 32 KiB chunks: the
// throughput of the streaming scanner.
func BenchmarkMeterJSON(b *testing.B) {
	body := []byte(`{"object":"list","data":[` + strings.Repeat(`{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,0.015797347,-0.0077780345]},`, 10000) +
		`{}],"choices":[{"message":{"content":"` + strings.Repeat(`text with \"escapes\" and \\ and \u00e9. `, 10000) +
		`"}}],"model":"m","usage":{"prompt_tokens":8,"total_tokens":8}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		m := New(KindEmbedding, false)
		m.Start(200, "application/json")
		for p := body; len(p) > 0; {
			k := min(32<<10, len(p))
			m.Write(p[:k])
			p = p[k:]
		}
		m.Finish()
		if !m.Usage().Found {
			b.Fatal("no usage")
		}
	}
}
