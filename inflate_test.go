package aiproxy

import (
	"bytes"
	"compress/gzip"
	"runtime"
	"strings"
	"testing"

	"github.com/aiproxy/aiproxy/meter"
)

// gzipped compresses parts one after the other, flushing after each, as a
// provider streaming events does.
func gzipped(parts ...string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, p := range parts {
		_, _ = zw.Write([]byte(p))
		_ = zw.Flush()
	}
	_ = zw.Close()
	return buf.Bytes()
}

// inflateInto feeds body to an inflater of m in chunks of size bytes and
// returns what m learnt.
func inflateInto(m *meter.Meter, limit int, body []byte, size int) meter.Usage {
	in := startInflater(m, limit)
	for len(body) > 0 {
		n := min(size, len(body))
		in.write(body[:n])
		body = body[n:]
	}
	in.close()
	m.Finish()
	return m.Usage()
}

const usageJSON = `"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}`

func TestInflaterMetersGzippedAnswers(t *testing.T) {
	chat := gzipped(`{"id":"c","object":"chat.completion","model":"gz-1","choices":[{"index":0,"message":{"content":"` +
		strings.Repeat("word ", 2000) + `"}}],` + usageJSON + `}`)
	stream := gzipped(
		`data: {"model":"gz-1","choices":[{"index":0,"delta":{"content":"one"}}]}`+"\n\n",
		`data: {"model":"gz-1","choices":[{"index":0,"delta":{"content":" two"}}]}`+"\n\n",
		`data: {"model":"gz-1","choices":[],`+usageJSON+`}`+"\n\n",
		"data: [DONE]\n\n")
	for _, size := range []int{1, 7, 512, 1 << 20} {
		m := meter.New(meter.KindChat, false)
		m.Start(200, "application/json")
		if u := inflateInto(m, maxInflated, chat, size); !u.Found || u.Model != "gz-1" || u.PromptTokens != 7 || u.CompletionTokens != 3 {
			t.Errorf("chat completion in chunks of %d: %+v", size, u)
		}
		m = meter.New(meter.KindChat, false)
		m.Start(200, "text/event-stream")
		if u := inflateInto(m, maxInflated, stream, size); !u.Found || u.PromptTokens != 7 || u.ContentChunks != 2 {
			t.Errorf("stream in chunks of %d: %+v", size, u)
		}
	}
}

// TestInflaterStops: past its limit, or at data that is not gzip, the
// inflater stops; the answer's later bytes are not waited for, and close
// returns.
func TestInflaterStops(t *testing.T) {
	long := gzipped(`{"model":"gz-1","choices":[{"message":{"content":"` + strings.Repeat("x", 1<<20) + `"}}],` + usageJSON + `}`)
	for name, tc := range map[string]struct {
		body  []byte
		limit int
	}{
		"limit":    {long, 64 << 10}, // the usage lies past it
		"not gzip": {[]byte(`{"model":"gz-1",` + usageJSON + `}`), maxInflated},
		"cut":      {long[:len(long)/2], maxInflated},
		"empty":    {nil, maxInflated},
	} {
		m := meter.New(meter.KindChat, false)
		m.Start(200, "application/json")
		if u := inflateInto(m, tc.limit, tc.body, 100); u.Found {
			t.Errorf("%s: usage found: %+v", name, u)
		}
	}
}

// TestInflaterMemory: the memory inflating takes does not grow with the
// answer: an answer inflating to 64 MiB takes far less than 1 MiB.
func TestInflaterMemory(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"model":"gz-1","choices":[{"message":{"content":"`))
	line := []byte(strings.Repeat("all work and no play ", 50))
	for range (64 << 20) / len(line) {
		zw.Write(line)
	}
	zw.Write([]byte(`"}}],` + usageJSON + `}`))
	zw.Close()
	body := buf.Bytes()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := meter.New(meter.KindChat, false)
	m.Start(200, "application/json")
	u := inflateInto(m, maxInflated, body, 32<<10)
	runtime.ReadMemStats(&after)
	if !u.Found || u.PromptTokens != 7 {
		t.Fatalf("usage %+v", u)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 1<<20 {
		t.Fatalf("inflating %d bytes into 64 MiB allocated %d bytes", len(body), grown)
	}
}
