package aiproxy_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gzipChat is a chat completion of a realistic size (about 3 KB).
var gzipChat = `{"id":"chatcmpl-gz","object":"chat.completion","created":1,"model":"gz-1",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"` +
	strings.Repeat("The quick brown fox jumps over the lazy dog, then naps. ", 50) +
	`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`

// gzipHost is an OpenAI-compatible host that gzips its answers to requests
// that accept gzip, as OpenAI does: a chat completion whole, with its
// Content-Length (the same compressed bytes every time), a stream event by
// event, each flushed as it is written. A request for the model "plain"
// gets no compression. A stream's second and third events wait until the
// test has read the one before (next), which proves that nothing holds
// events back.
type gzipHost struct {
	*httptest.Server
	zipped []byte
	next   chan struct{}

	mu       sync.Mutex
	encoding []string // the Accept-Encoding of each request
}

func newGzipHost(t *testing.T) *gzipHost {
	h := &gzipHost{next: make(chan struct{}, 1)}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = io.WriteString(zw, gzipChat)
	_ = zw.Close()
	h.zipped = buf.Bytes()
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *gzipHost) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.encoding = append(h.encoding, r.Header.Get("Accept-Encoding"))
	h.mu.Unlock()
	compress := strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") &&
		!bytes.Contains(body, []byte(`"model":"plain"`))
	if bytes.Contains(body, []byte(`"stream":true`)) {
		h.stream(w, r, compress, bytes.Contains(body, []byte(`"include_usage":true`)))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !compress {
		_, _ = io.WriteString(w, gzipChat)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Set("Content-Length", strconv.Itoa(len(h.zipped)))
	_, _ = w.Write(h.zipped)
}

// streamEvents are the events of a chat stream that asked for its usage.
var streamEvents = []string{
	`data: {"id":"c","object":"chat.completion.chunk","model":"gz-1","choices":[{"index":0,"delta":{"content":"one"}}],"usage":null}`,
	`data: {"id":"c","object":"chat.completion.chunk","model":"gz-1","choices":[{"index":0,"delta":{"content":" two"}}],"usage":null}`,
	`data: {"id":"c","object":"chat.completion.chunk","model":"gz-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}`,
	`data: {"id":"c","object":"chat.completion.chunk","model":"gz-1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`,
	`data: [DONE]`,
}

func (h *gzipHost) stream(w http.ResponseWriter, r *http.Request, compress, withUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	var out io.Writer = w
	var zw *gzip.Writer
	if compress {
		w.Header().Set("Content-Encoding", "gzip")
		zw = gzip.NewWriter(w)
		out = zw
	}
	rc := http.NewResponseController(w)
	for i, ev := range streamEvents {
		if !withUsage && i == 3 {
			continue
		}
		_, _ = io.WriteString(out, ev+"\n\n")
		if zw != nil {
			_ = zw.Flush()
		}
		_ = rc.Flush()
		if i >= 2 {
			continue // past the content, whose events prove the point
		}
		select {
		case <-h.next:
		case <-r.Context().Done():
			return
		}
	}
	if zw != nil {
		_ = zw.Close()
	}
}

// encodings returns the Accept-Encoding of each request so far, and
// forgets them.
func (h *gzipHost) encodings() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.encoding
	h.encoding = nil
	return e
}

// rawClient neither asks for gzip nor decompresses: a test sets
// Accept-Encoding itself and sees the bytes as they came.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}

func gzipSite(t *testing.T) (*site, *gzipHost) {
	h := newGzipHost(t)
	s := startSite(t, siteOptions{extra: "host gz.test {\n\t\t\tbase_url " + h.URL + "\n\t\t\tkey k\n\t\t}"})
	return s, h
}

// postRaw sends a chat request to the gzip host with the given
// Accept-Encoding ("" for none) through rawClient.
func postRaw(t *testing.T, key, accept, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Host-Final", "gz.test")
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept-Encoding", accept)
	}
	res, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestCompressedAnswerPassesThrough: a client that accepts gzip gets the
// provider's gzipped answer as the provider sent it, byte for byte, with its
// Content-Encoding and Content-Length; one that does not gets plain JSON.
// Usage is counted exactly either way, and the provider is only ever asked
// for gzip.
func TestCompressedAnswerPassesThrough(t *testing.T) {
	s, h := gzipSite(t)
	for i, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"gzip", true},
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"*", true},
		{"", false},
		{"identity", false},
		{"gzip;q=0", false},
		{"gzip;q=0, *", false},
		{"br, zstd", false},
	} {
		user := fmt.Sprintf("zip%d", i)
		key := s.register(user)
		res := postRaw(t, key, tc.accept, `{"model":"gz-1","messages":[]}`)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		enc := res.Header.Get("Content-Encoding")
		if res.StatusCode != 200 {
			t.Fatalf("Accept-Encoding %q: %d %q", tc.accept, res.StatusCode, body)
		}
		if tc.gzip {
			if enc != "gzip" || !bytes.Equal(body, h.zipped) || res.ContentLength != int64(len(h.zipped)) {
				t.Fatalf("Accept-Encoding %q: Content-Encoding %q, Content-Length %d, %d bytes; want the provider's %d gzipped bytes",
					tc.accept, enc, res.ContentLength, len(body), len(h.zipped))
			}
		} else if enc != "" || string(body) != gzipChat {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q, body %.80q; want plain JSON", tc.accept, enc, body)
		}
		if got := h.encodings(); len(got) != 1 || got[0] != "gzip" {
			t.Fatalf("Accept-Encoding %q: the provider was asked for %q", tc.accept, got)
		}
		if got := s.usageFor(user, "gz-1"); got.Requests != 1 || got.PromptTokens != 7 || got.CompletionTokens != 3 || got.EstimatedRequests != 0 {
			t.Fatalf("Accept-Encoding %q: usage %+v", tc.accept, got)
		}
	}
}

// TestCompressedStreamsChunkByChunk: an event stream reaches the client
// event by event, and is metered exactly, whether the provider gzips it or
// not and whether the client accepts gzip or not. A stream whose usage
// the gateway asked for on the client's behalf reaches it without that
// usage, also when the provider gzipped it.
func TestCompressedStreamsChunkByChunk(t *testing.T) {
	s, h := gzipSite(t)
	const asked = `,"stream_options":{"include_usage":true}`
	for i, tc := range []struct {
		accept, model, options string
		gzip                   bool // the client gets the stream gzipped
	}{
		{"gzip", "gz-1", asked, true},
		{"identity", "gz-1", asked, false},
		{"gzip", "plain", asked, false},
		{"gzip", "gz-1", "", false}, // usage injected: decompressed to be stripped
	} {
		user := fmt.Sprintf("stream%d", i)
		key := s.register(user)
		res := postRaw(t, key, tc.accept, `{"model":"`+tc.model+`","stream":true`+tc.options+`,"messages":[]}`)
		name := fmt.Sprintf("%s, %s, %q", tc.accept, tc.model, tc.options)
		if enc := res.Header.Get("Content-Encoding"); res.StatusCode != 200 || (enc == "gzip") != tc.gzip {
			res.Body.Close()
			t.Fatalf("%s: %d, Content-Encoding %q", name, res.StatusCode, enc)
		}
		var body io.Reader = res.Body
		if tc.gzip {
			zr, err := gzip.NewReader(res.Body)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			body = zr
		}
		rd := bufio.NewReader(body)
		var got []string
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: reading the stream: %v (events so far %q)", name, err, got)
			}
			if line == "\n" {
				continue
			}
			got = append(got, strings.TrimSuffix(line, "\n"))
			if strings.Contains(line, "[DONE]") {
				break
			}
			if len(got) <= 2 {
				h.next <- struct{}{} // the provider sends the next event only now
			}
		}
		if rest, err := io.ReadAll(rd); err != nil || string(rest) != "\n" { // the gzip trailer checked
			t.Fatalf("%s: after [DONE]: %q, %v", name, rest, err)
		}
		res.Body.Close()
		want := streamEvents
		if tc.options == "" {
			want = []string{
				`data: {"id":"c","object":"chat.completion.chunk","model":"gz-1","choices":[{"index":0,"delta":{"content":"one"}}]}`,
				`data: {"id":"c","object":"chat.completion.chunk","model":"gz-1","choices":[{"index":0,"delta":{"content":" two"}}]}`,
				`data: {"id":"c","object":"chat.completion.chunk","model":"gz-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
				`data: [DONE]`,
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: events\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if u := s.usageFor(user, "gz-1"); u.Requests != 1 || u.PromptTokens != 7 || u.CompletionTokens != 3 || u.EstimatedRequests != 0 {
			t.Fatalf("%s: usage %+v", name, u)
		}
	}
}
