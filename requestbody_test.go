package aiproxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

func TestInspectBudget(t *testing.T) {
	b := &inspectBudget{limit: 100}
	if !b.reserve(60) || !b.reserve(40) {
		t.Fatal("the budget refused what it has room for")
	}
	if b.reserve(1) {
		t.Fatal("the budget took a byte past its limit")
	}
	b.release(40)
	if b.reserve(41) {
		t.Fatal("the budget took more than was given back")
	}
	if !b.reserve(40) {
		t.Fatal("the budget refused what was given back")
	}
	b.release(100)
	if got := b.held.Load(); got != 0 {
		t.Fatalf("%d bytes held after everything was given back", got)
	}
}

// TestHeldBodyLetsGoOnceSent: the body is given back to the budget, and
// its memory dropped, when its last byte is read or when it is closed,
// once only.
func TestHeldBodyLetsGoOnceSent(t *testing.T) {
	budget := &inspectBudget{limit: 1 << 20}
	body := []byte(`{"stream":true}`)
	budget.reserve(int64(len(body)))
	held := newHeldBody([][]byte{body[:1], []byte("inserted,"), body[1:]}, nil, budget, int64(len(body)))
	if held.size() != int64(len(body))+9 {
		t.Fatalf("size %d", held.size())
	}
	got, err := io.ReadAll(held)
	if err != nil || string(got) != `{inserted,"stream":true}` {
		t.Fatalf("read %q, %v", got, err)
	}
	if held.pieces != nil || budget.held.Load() != 0 {
		t.Fatalf("after the last byte: pieces %q, %d bytes of budget held", held.pieces, budget.held.Load())
	}
	held.release()
	_ = held.Close()
	if budget.held.Load() != 0 {
		t.Fatalf("released twice: %d", budget.held.Load())
	}

	budget.reserve(5)
	closed := newHeldBody([][]byte{[]byte("abcde")}, strings.NewReader("rest"), budget, 5)
	if _, err := closed.Read(make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	_ = closed.Close()
	if closed.pieces != nil || budget.held.Load() != 0 {
		t.Fatalf("after Close: pieces %q, %d bytes of budget held", closed.pieces, budget.held.Load())
	}
}

// streamRequest returns a streaming chat request of about n bytes that does
// not ask for usage; length -1 hides its length, as a chunked upload does.
func streamRequest(n int, length int64) *http.Request {
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"` +
		strings.Repeat("x", max(n-80, 0)) + `"}]}`
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", io.NopCloser(strings.NewReader(body)))
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = int64(len(body))
	if length < 0 {
		r.ContentLength = -1
	}
	return r
}

// TestInspectRequestWithinBudget: a body is read and spliced when the
// budget has room; a body of known length that does not fit is proxied
// untouched, unread; one of unknown length that outgrows the budget is
// sent whole, read part and rest, uninspected. The budget is given back
// once the body is sent.
func TestInspectRequestWithinBudget(t *testing.T) {
	budget := &inspectBudget{limit: 256 << 10}
	send := func(r *http.Request) string {
		t.Helper()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		if r.ContentLength >= 0 && int64(len(b)) != r.ContentLength {
			t.Fatalf("sent %d bytes with Content-Length %d", len(b), r.ContentLength)
		}
		if n := budget.held.Load(); n != 0 {
			t.Fatalf("%d bytes of budget still held after the body was sent", n)
		}
		return string(b)
	}

	for _, length := range []int64{0, -1} {
		r, mr, held := inspectRequest(streamRequest(100<<10, length), budget, false)
		if held == nil || mr.model != "gpt-4o-mini" || !mr.strip || r.ContentLength < 0 {
			t.Fatalf("length %d: a body within budget: %+v, held %v, Content-Length %d", length, mr, held != nil, r.ContentLength)
		}
		if got := send(r); !strings.HasPrefix(got, `{"stream_options":{"include_usage":true},"model"`) {
			t.Fatalf("not spliced: %.80s", got)
		}
	}

	orig := streamRequest(300<<10, 0)
	r, mr, held := inspectRequest(orig, budget, false)
	if r != orig || held != nil || mr.model != "" || mr.strip {
		t.Fatalf("a body over budget was inspected: %+v", mr)
	}

	want := send(streamRequest(300<<10, 0))
	r, mr, held = inspectRequest(streamRequest(300<<10, -1), budget, false)
	if held == nil || mr.model != "" || mr.strip || r.ContentLength != -1 {
		t.Fatalf("unknown length over budget: %+v, Content-Length %d", mr, r.ContentLength)
	}
	if got := send(r); got != want {
		t.Fatalf("sent %d bytes, want the %d of the body untouched", len(got), len(want))
	}
}

// TestInspectRequestHoldsTheBodyOnce: inspecting, splicing and sending a
// large streaming request allocates about the body once, not twice.
func TestInspectRequestHoldsTheBodyOnce(t *testing.T) {
	const size = 4 << 20
	budget := &inspectBudget{limit: defaultInspectMemory}
	var sent bytes.Buffer
	sent.Grow(size + 1024)
	reqs := make([]*http.Request, 5)
	for i := range reqs {
		reqs[i] = streamRequest(size, 0)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, req := range reqs {
		r, mr, held := inspectRequest(req, budget, false)
		if !mr.strip {
			t.Fatal("not spliced")
		}
		sent.Reset()
		if _, err := sent.ReadFrom(r.Body); err != nil {
			t.Fatal(err)
		}
		held.release()
	}
	runtime.ReadMemStats(&after)
	perRequest := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(reqs))
	if ratio := perRequest / size; ratio > 1.1 {
		t.Fatalf("%.0f bytes allocated per request of %d: %.2f times the body", perRequest, size, ratio)
	}
}

// BenchmarkInspectRequest4MiB reports the bytes allocated per streaming
// request of 4 MiB: about the body once.
func BenchmarkInspectRequest4MiB(b *testing.B) {
	budget := &inspectBudget{limit: defaultInspectMemory}
	b.ReportAllocs()
	b.SetBytes(4 << 20)
	for b.Loop() {
		b.StopTimer()
		req := streamRequest(4<<20, 0)
		b.StartTimer()
		r, _, held := inspectRequest(req, budget, false)
		_, _ = io.Copy(io.Discard, r.Body)
		held.release()
	}
}
