package meter

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

func TestStrip(t *testing.T) {
	chat := sse(chatChunkRole, chatChunkHello, chatChunkWorld, chatChunkStop, chatChunkUsage, sseDone)
	chatWant := withoutUsageNull(sse(chatChunkRole, chatChunkHello, chatChunkWorld, chatChunkStop, sseDone))
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	cr := func(s string) string { return strings.ReplaceAll(s, "\n", "\r") }
	nospace := func(s string) string { return strings.ReplaceAll(s, "data: ", "data:") }
	hello := `"choices":[{"index":0,"delta":{"content":"a"}}]`
	tests := []struct {
		name, in, want string
	}{
		{"openai layout", chat, chatWant},
		{"CRLF", crlf(chat), crlf(chatWant)},
		{"CR", cr(chat), cr(chatWant)},
		{"data: without space", nospace(chat), nospace(chatWant)},
		{"usage first", sse(`data: {"usage":null,"id":"1",` + hello + `}`), sse(`data: {"id":"1",` + hello + `}`)},
		{"usage in the middle, spaced", sse(`data: { "id": "1" , "usage" : null , ` + hello + ` }`),
			sse(`data: { "id": "1" , ` + hello + ` }`)},
		{"usage first, spaced", sse("data: {  \"usage\": null,\t\"id\": 1}"), sse("data: {  \"id\": 1}")},
		{"usage alone", sse(`data: {"usage":null}`, `data: { "usage":null }`), sse(`data: {}`, `data: {  }`)},
		{"other fields kept", sse(": comment\nid: 7\nevent: chunk\nretry: 10\ndata: {\"id\":\"1\",\"usage\":null}", "id: 8"),
			sse(": comment\nid: 7\nevent: chunk\nretry: 10\ndata: {\"id\":\"1\"}", "id: 8")},
		{"pretty usage chunk dropped", sse(chatChunkHello, `data: { "choices" : [ ] , "usage" : { "total_tokens" : 3 } }`, sseDone),
			withoutUsageNull(sse(chatChunkHello, sseDone))},
		{"usage chunk with event fields dropped", sse("id: 3\nevent: x\n"+chatChunkUsage, "id: 4\n"+sseDone), sse("id: 4\n" + sseDone)},
		{"usage with content kept", sse(`data: {` + hello + `,"usage":{"total_tokens":3}}`), ""},
		{"usage without choices kept", sse(`data: {"usage":{"total_tokens":3}}`), ""},
		{"nested usage kept", sse(`data: {"x":{"usage":null},` + hello + `}`), ""},
		{"repeated usage kept", sse(`data: {"usage":null,"usage":null}`), ""},
		{"usage not null kept", sse(`data: {"usage":0}`, `data: {"usage":"null"}`), ""},
		{"invalid JSON kept", sse(`data: {"usage":null,}`, `data: {"usage":null`, `data: {"usage":null} x`), sse(`data: {"usage":null,}`, `data: {"usage":null`, `data: {}`+` x`)},
		{"two data lines kept", sse("data: {\"usage\":null,\ndata: \"id\":1}"), ""},
		{"unfinished last event passes as is", sse(chatChunkHello) + chatChunkStop, withoutUsageNull(sse(chatChunkHello)) + chatChunkStop},
		{"unfinished usage chunk passes as is", sse(chatChunkHello) + chatChunkUsage + "\n", withoutUsageNull(sse(chatChunkHello)) + chatChunkUsage + "\n"},
		{"no data", "\n\n: x\n\n\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			_, usage := feed(t, KindChat, false, "text/event-stream", [][]byte{[]byte(tt.in)})
			checkAllChunkings(t, KindChat, true, "text/event-stream", []byte(tt.in), []byte(want), usage)
			checkAllChunkings(t, KindCompletion, true, "text/event-stream", []byte(tt.in), []byte(want), usage)
			// Other kinds never strip.
			checkAllChunkings(t, KindResponse, true, "text/event-stream", []byte(tt.in), nil, usage)
		})
	}
	if _, u := feed(t, KindChat, true, "text/event-stream", [][]byte{[]byte(chat)}); u != chatUsage {
		t.Errorf("stripped stream usage %+v, want %+v", u, chatUsage)
	}
}

// TestStripBigEvent: an event that does not end within 1 MiB of holding
// passes unedited, and the events after it are stripped again.
func TestStripBigEvent(t *testing.T) {
	big := `data: {"choices":[{"delta":{"content":"` + strings.Repeat("x", 2*maxHeld) + `"}}],"usage":null}`
	in := sse(chatChunkHello, big, chatChunkWorld, chatChunkUsage, sseDone)
	want := withoutUsageNull(sse(chatChunkHello)) + big + "\n\n" + withoutUsageNull(sse(chatChunkWorld, sseDone))
	for _, size := range []int{100, 32 << 10, maxHeld - 1, len(in)} {
		if size == len(in) { // seen whole in one Write: nothing to hold, so it is edited
			want = withoutUsageNull(sse(chatChunkHello, big, chatChunkWorld, sseDone))
		}
		var chunks [][]byte
		for b := []byte(in); len(b) > 0; {
			k := min(size, len(b))
			chunks, b = append(chunks, b[:k]), b[k:]
		}
		out, u := feed(t, KindChat, true, "text/event-stream", chunks)
		if string(out) != want {
			t.Errorf("chunks of %d: output differs (len %d, want %d)", size, len(out), len(want))
		}
		if !u.Found || u.ContentChunks != 3 {
			t.Errorf("chunks of %d: usage %+v", size, u)
		}
	}
}

// chunkRecorder is an http.ResponseWriter that keeps each Write as the
// chunk a proxy would have received.
type chunkRecorder struct {
	header http.Header
	status int
	chunks [][]byte
}

func (w *chunkRecorder) Header() http.Header { return w.header }
func (w *chunkRecorder) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *chunkRecorder) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.chunks = append(w.chunks, bytes.Clone(p))
	return len(p), nil
}
func (w *chunkRecorder) Flush() {}

func (w *chunkRecorder) body() []byte { return bytes.Join(w.chunks, nil) }

const mockKey = "sk-upstream-test"

// callMock sends one request to a fresh mock upstream's handler (fresh, so
// that its ids are the same from call to call).
func callMock(t *testing.T, path, body string) *chunkRecorder {
	t.Helper()
	o := mockopenai.New(t, mockKey)
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+mockKey)
	r.Header.Set("Content-Type", "application/json")
	w := &chunkRecorder{header: http.Header{}}
	o.Config.Handler.ServeHTTP(w, r)
	if w.status != http.StatusOK {
		t.Fatalf("mock answered %d: %s", w.status, w.body())
	}
	return w
}

// proxy runs the mock's answer through a meter chunk by chunk, as the proxy does.
func proxy(t *testing.T, kind Kind, strip bool, w *chunkRecorder) ([]byte, Usage) {
	t.Helper()
	m := New(kind, strip)
	m.Start(w.status, w.header.Get("Content-Type"))
	var out []byte
	for _, c := range w.chunks {
		out = append(out, m.Write(c)...)
	}
	return append(out, m.Finish()...), m.Usage()
}

// TestStripMatchesMock: a client that did not ask for usage gets, through a
// stripping meter, the very bytes the mock upstream sends it without
// include_usage, while the meter counts the usage the injection brought.
func TestStripMatchesMock(t *testing.T) {
	tests := []struct {
		path, body string
		texts      []string
	}{
		{"/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello to the whole world"}]}`,
			[]string{"Say hello to the whole world"}},
		{"/v1/chat/completions", `{"stream":true,"stream_options":{},"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"one \"two\" three"}]}]}`,
			[]string{"Be brief.", `one "two" three`}},
		{"/openai/v1/chat/completions", `{"model":"llama","messages":[{"role":"user","content":"   "}],"stream":true,"stream_options":{"include_usage":false}}`,
			[]string{"   "}},
		{"/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"Once upon a time","stream":true}`,
			[]string{"Once upon a time"}},
		{"/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":["a b","c d e"],"stream":true,"stream_options":null}`,
			[]string{"a b", "c d e"}},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.body, func(t *testing.T) {
			kind := KindOf(tt.path)
			info, err := InspectRequest([]byte(tt.body))
			if err != nil || !info.Stream || info.IncludeUsage {
				t.Fatalf("InspectRequest: %+v, %v", info, err)
			}
			injected, strip := InjectIncludeUsage([]byte(tt.body))
			if !strip {
				t.Fatal("InjectIncludeUsage did not inject")
			}

			direct := callMock(t, tt.path, tt.body).body()
			upstream := callMock(t, tt.path, string(injected))
			if !bytes.Contains(upstream.body(), []byte(`"usage":null`)) || bytes.Contains(direct, []byte(`"usage"`)) {
				t.Fatalf("the mock does not answer include_usage as expected:\n%s\n%s", direct, upstream.body())
			}
			got, u := proxy(t, kind, strip, upstream)
			if !bytes.Equal(got, direct) {
				t.Fatalf("the client got\n%s\nwant (a direct call)\n%s", got, direct)
			}
			exp := mockopenai.ExpectedUsage(tt.texts...)
			words := int64(len(strings.Fields(mockopenai.Reply(tt.texts...))))
			want := Usage{Found: true, Model: info.Model, PromptTokens: exp.PromptTokens,
				CompletionTokens: exp.CompletionTokens, TotalTokens: exp.TotalTokens, ContentChunks: words}
			if u != want {
				t.Errorf("usage %+v, want %+v", u, want)
			}
			// Any other cutting of the same stream gives the same bytes.
			checkAllChunkings(t, kind, true, upstream.header.Get("Content-Type"), upstream.body(), direct, want)

			// A client that asked for usage gets the upstream's bytes, untouched.
			asked := callMock(t, tt.path, string(injected))
			got, u2 := proxy(t, kind, false, asked)
			if !bytes.Equal(got, asked.body()) || u2 != want {
				t.Errorf("include_usage asked by the client: usage %+v, output untouched: %v", u2, bytes.Equal(got, asked.body()))
			}
		})
	}
}

// TestMeterMock meters every answer shape of the mock upstream.
func TestMeterMock(t *testing.T) {
	tests := []struct {
		path, body string
		texts      []string
		embedding  bool
		chunks     int64
	}{
		{"/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi there you"}]}`, []string{"hi there you"}, false, 0},
		{"/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"x y"}`, []string{"x y"}, false, 0},
		{"/v1/embeddings", `{"model":"text-embedding-3-small","input":["a b c","d"]}`, []string{"a b c", "d"}, true, 0},
		{"/v1/embeddings", `{"model":"text-embedding-3-small","input":"a b","encoding_format":"base64"}`, []string{"a b"}, true, 0},
		{"/v1/responses", `{"model":"gpt-4.1","input":"tell me more"}`, []string{"tell me more"}, false, 0},
		{"/v1/responses", `{"model":"gpt-4.1","instructions":"Be kind.","input":[{"role":"user","content":"one two"}],"stream":true}`,
			[]string{"Be kind.", "one two"}, false, 2},
		{"/openai/v1/responses", `{"model":"gpt-4.1","input":"a","stream":true}`, []string{"a"}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.body, func(t *testing.T) {
			w := callMock(t, tt.path, tt.body)
			exp := mockopenai.ExpectedUsage(tt.texts...)
			if tt.embedding {
				exp = mockopenai.Usage{PromptTokens: mockopenai.WordCount(tt.texts...)}
				exp.TotalTokens = exp.PromptTokens
			}
			info, _ := InspectRequest([]byte(tt.body))
			want := Usage{Found: true, Model: info.Model, PromptTokens: exp.PromptTokens,
				CompletionTokens: exp.CompletionTokens, TotalTokens: exp.TotalTokens, ContentChunks: tt.chunks}
			got, u := proxy(t, KindOf(tt.path), false, w)
			if !bytes.Equal(got, w.body()) || u != want {
				t.Fatalf("usage %+v, want %+v (output untouched: %v)", u, want, bytes.Equal(got, w.body()))
			}
			checkAllChunkings(t, KindOf(tt.path), false, w.header.Get("Content-Type"), w.body(), nil, want)
		})
	}
}
