package main

// provider.go: a mock OpenAI-compatible provider. A streaming chat
// completion gets chunks at a steady interval, each carrying, as its
// content, the provider's clock (Unix nanoseconds) just before it was
// written; any other chat completion gets a short JSON answer.

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// The pieces of a content chunk around its send time.
const (
	chunkHead = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"delta":{"content":"`
	chunkTail = ` "},"finish_reason":null}]}` + "\n\n"
	lastChunk = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	doneEvent = "data: [DONE]\n\n"
	jsonReply = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`
)

type provider struct {
	chunks   int
	interval time.Duration
	srv      *http.Server
}

func runProvider(args []string) error {
	fs := flag.NewFlagSet("provider", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18290", "listen address")
	p := &provider{}
	fs.IntVar(&p.chunks, "chunks", 1000, "content chunks a stream has, unless the query sets chunks=")
	fs.DurationVar(&p.interval, "interval", 50*time.Millisecond, "time between chunks, unless the query sets interval=")
	_ = fs.Parse(args)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", p.chat)
	mux.HandleFunc("POST /close-idle", p.closeIdle)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	p.srv = &http.Server{Addr: *addr, Handler: mux}
	return p.srv.ListenAndServe()
}

// closeIdle closes the provider's idle keep-alive connections, so that the
// proxy's side of them ends too and its goroutines can be counted as if it
// had never served.
func (p *provider) closeIdle(w http.ResponseWriter, _ *http.Request) {
	p.srv.SetKeepAlivesEnabled(false) // closes the idle ones
	p.srv.SetKeepAlivesEnabled(true)
	w.Header().Set("Connection", "close")
	_, _ = io.WriteString(w, "ok\n")
}

func (p *provider) chat(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	if !bytes.Contains(body, []byte(`"stream":true`)) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, jsonReply)
		return
	}
	chunks, interval := p.chunks, p.interval
	if n, err := strconv.Atoi(r.URL.Query().Get("chunks")); err == nil && n >= 0 {
		chunks = n
	}
	if d, err := time.ParseDuration(r.URL.Query().Get("interval")); err == nil && d > 0 {
		interval = d
	}
	p.stream(w, r, chunks, interval, bytes.Contains(body, []byte(`"include_usage":true`)))
}

// stream sends chunks content chunks, interval apart, starting at a random
// point of the first interval so that many streams do not tick together.
func (p *provider) stream(w http.ResponseWriter, r *http.Request, chunks int, interval time.Duration, usage bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	done := r.Context().Done()
	offset := rand.N(interval)
	next := time.Now().Add(offset)
	timer := time.NewTimer(offset)
	defer timer.Stop()
	buf := make([]byte, 0, len(chunkHead)+len(chunkTail)+20)
	for range chunks {
		select {
		case <-done:
			return
		case <-timer.C:
		}
		next = next.Add(interval)
		timer.Reset(time.Until(next))
		buf = append(buf[:0], chunkHead...)
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		buf = append(buf, chunkTail...)
		if _, err := w.Write(buf); err != nil || rc.Flush() != nil {
			return
		}
	}
	tail := lastChunk
	if usage {
		tail += fmt.Sprintf(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",`+
			`"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", chunks, chunks+9)
	}
	_, _ = io.WriteString(w, tail+doneEvent)
}
