package mockopenai

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// sseStream writes server-sent events, flushing each one so that a test can see
// whether a proxy delivers them one at a time.
type sseStream struct {
	c  *call
	rc *http.ResponseController
}

func (c *call) startSSE() *sseStream {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(http.StatusOK)
	s := &sseStream{c: c, rc: http.NewResponseController(c.w)}
	_ = s.rc.Flush()
	return s
}

// send writes one event ("event: name" line only when name is set) and
// reports false, signalling Canceled if that is why, when the stream must stop.
func (s *sseStream) send(name string, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		panic("mockopenai: marshal mock event: " + err.Error())
	}
	var b bytes.Buffer
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	return s.write(b.Bytes())
}

func (s *sseStream) done() bool { return s.write([]byte("data: [DONE]\n\n")) }

func (s *sseStream) write(p []byte) bool {
	_, err := s.c.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	if err == nil {
		err = s.c.r.Context().Err()
	}
	if err != nil {
		if s.c.r.Context().Err() != nil {
			s.c.noteCanceled()
		}
		return false
	}
	return true
}

// replyWords splits a reply into stream deltas whose concatenation is the
// reply: "Hello", " from", " mock".
func replyWords(reply string) []string {
	words := strings.Fields(reply)
	for i := 1; i < len(words); i++ {
		words[i] = " " + words[i]
	}
	return words
}

// streamChoices sends words to each of n choices, a chunk each, the
// choices advancing together as OpenAI interleaves them (a gated model
// waits at the gate before every content chunk but the first); then each
// choice's finish; then, when usage is not nil, a last chunk carrying it;
// then [DONE]. content and finish make a choice's chunk.
func (c *call) streamChoices(s *sseStream, words []string, n int, gated bool,
	content func(i int, word string) any, finish func(i int) any, usage any) {
	for k, word := range words {
		for i := range n {
			if (k > 0 || i > 0) && gated && !c.waitGate() {
				return
			}
			if !s.send("", content(i, word)) {
				return
			}
		}
	}
	for i := range n {
		if !s.send("", finish(i)) {
			return
		}
	}
	if usage != nil && !s.send("", usage) {
		return
	}
	s.done()
}
