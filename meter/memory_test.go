package meter

import (
	"runtime"
	"strings"
	"testing"
)

// segment is a piece of a generated body, repeated n times.
type segment struct {
	b []byte
	n int
}

// generate calls fn with consecutive chunks of size bytes (the last one
// shorter) of the concatenated segments, reusing one buffer: a body of any
// size costs no memory.
func generate(size int, segs []segment, fn func([]byte)) (total int64) {
	buf := make([]byte, 0, size)
	for _, s := range segs {
		for range s.n {
			for b := s.b; len(b) > 0; {
				k := copy(buf[len(buf):cap(buf)], b)
				buf, b = buf[:len(buf)+k], b[k:]
				if len(buf) == cap(buf) {
					fn(buf)
					total += int64(len(buf))
					buf = buf[:0]
				}
			}
		}
	}
	if len(buf) > 0 {
		fn(buf)
		total += int64(len(buf))
	}
	return total
}

// hugeBody is a JSON object of more than 100 MiB: a long array of
// embeddings, then a 51 MiB string full of escapes and brackets, then the
// usage and the model.
func hugeBody(prefix, suffix string) []segment {
	var emb strings.Builder
	emb.WriteString(`{"object":"embedding","index":12345,"embedding":[`)
	for i := range 300 {
		if i > 0 {
			emb.WriteByte(',')
		}
		emb.WriteString("-0.012345678")
	}
	emb.WriteString(`],"usage":{"prompt_tokens":999}},`) // a nested usage: not the one
	text := strings.Repeat(`The \"model\": {\"usage\": [1,2]} \\ \u00e9\n `, 64)
	return []segment{
		{[]byte(prefix + `{"id":"x","object":"list","model":"early","data":[`), 1},
		{[]byte(emb.String()), 51 << 20 / emb.Len()},
		{[]byte(`{"last":true}],"choices":[{"message":{"content":"`), 1},
		{[]byte(text), 51 << 20 / len(text)},
		{[]byte(`"}}],"usage":{"prompt_tokens":123,"total_tokens":123,"prompt_tokens_details":{"cached_tokens":100}},"model":"text-embedding-3-large"}` + suffix), 1},
	}
}

// TestMeterBoundedMemory feeds bodies of more than 100 MiB in 32 KiB chunks
// and checks that the meter allocates next to nothing meanwhile.
func TestMeterBoundedMemory(t *testing.T) {
	want := Usage{Found: true, Model: "text-embedding-3-large", PromptTokens: 123, TotalTokens: 123, CachedTokens: 100}
	event := want
	event.ContentChunks = 1 // choices too large to capture count as content
	tests := []struct {
		name        string
		kind        Kind
		strip       bool
		contentType string
		segs        []segment
		want        Usage
		maxAlloc    uint64 // the capture buffers; when stripping, the 1 MiB held
	}{
		{"json", KindEmbedding, false, "application/json", hugeBody("", "\n"), want, 64 << 10},
		{"one huge event", KindResponse, false, "text/event-stream", hugeBody("data: ", "\n\ndata: [DONE]\n\n"), event, 256 << 10},
		{"one huge event, stripping", KindChat, true, "text/event-stream", hugeBody("data: ", "\n\ndata: [DONE]\n\n"), event, 4 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.name != "json" {
				t.Skip("short")
			}
			m := New(tt.kind, tt.strip)
			m.Start(200, tt.contentType)
			var sent int64
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			total := generate(32<<10, tt.segs, func(p []byte) {
				sent += int64(len(m.Write(p)))
			})
			sent += int64(len(m.Finish()))
			u := m.Usage()
			runtime.ReadMemStats(&after)
			if total < 100<<20 {
				t.Fatalf("the body is only %d bytes", total)
			}
			if sent != total {
				t.Errorf("sent %d bytes of %d", sent, total)
			}
			if u != tt.want {
				t.Errorf("usage %+v, want %+v", u, tt.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > tt.maxAlloc {
				t.Errorf("metering %d MiB allocated %d bytes, want at most %d", total>>20, alloc, tt.maxAlloc)
			}
		})
	}
}

// TestStrippingMetersLendTheirOutput: a thousand stripping meters that each
// read a batch of events at once, and sent it on, hold next to nothing
// while they wait for their next chunk, and strip it as before.
func TestStrippingMetersLendTheirOutput(t *testing.T) {
	const event = `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}` + "\n\n"
	const stripped = `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}` + "\n\n"
	batch := []byte(strings.Repeat(event, 100)) // 11 KB
	meters := make([]*Meter, 1000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range meters {
		m := New(KindChat, true)
		m.Start(200, "text/event-stream")
		if out := m.Write(batch); string(out) != strings.Repeat(stripped, 100) {
			t.Fatalf("the batch came out as %.200q...", out)
		}
		m.Sent()
		meters[i] = m
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if held := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(len(meters)); held > 2048 {
		t.Errorf("a meter between chunks holds %d bytes, want at most 2048", held)
	}
	for _, m := range meters {
		if out := m.Write([]byte(event)); string(out) != stripped {
			t.Fatalf("the next event came out as %q", out)
		}
		m.Sent()
	}
}
