package meter

import "strings"

// Mode is how a Meter treats a response body; Start chooses it.
type Mode uint8

// The modes.
const (
	// ModePass: the body is not metered and passes untouched.
	ModePass Mode = iota
	// ModeJSON: a JSON object whose top-level "model" and "usage" are read.
	ModeJSON
	// ModeSSE: a server-sent event stream whose events are read.
	ModeSSE
)

// String returns "pass", "json" or "sse".
func (m Mode) String() string {
	switch m {
	case ModeJSON:
		return "json"
	case ModeSSE:
		return "sse"
	}
	return "pass"
}

// Meter observes one response body as it streams to the client and learns
// its token usage, holding at most a few bounded buffers whatever the size
// of the body. Create it with New, call Start once at WriteHeader, Write
// for every chunk, Finish at the end, then Usage.
//
// A Meter is not safe for concurrent use: Usage must not run while Write
// or Finish does (call it after the proxy is done, or synchronize).
type Meter struct {
	kind      Kind
	strip     bool // asked for by New; effective only for SSE chat and completion streams
	mode      Mode
	started   bool
	finished  bool
	stripping bool // strip, in effect

	json  streamScanner // ModeJSON
	sse   sseParser     // ModeSSE
	usage Usage         // ModeSSE: what the events so far said
	model modelName

	// Stripping state (strip.go).
	held      []byte  // the bytes of the current, unfinished event
	out       []byte  // Write's result
	outBox    *[]byte // from outBuffers, while out is lent: Sent gives it back
	passEvent bool    // the current event outgrew maxHeld: it passes unedited
	dropLF    bool    // a dropped event ended with '\r': drop the '\n' that may follow
}

// New returns a Meter for a response to a request of the given kind.
//
// strip must be true exactly when the proxy injected include_usage into a
// streaming request that did not ask for it (see [IncludeUsagePieces]): the
// meter then removes what that injection added to a chat or completion
// stream, so the client receives the bytes it would have received without
// it (see [Meter.Write]). It is ignored for other kinds and for responses
// that are not event streams.
//
// A Meter for KindOther never meters: other endpoints (for example
// GET /v1/responses/{id}, which returns a stored response with its usage)
// must not be counted as generation.
func New(kind Kind, strip bool) *Meter {
	m := &Meter{kind: kind, strip: strip}
	m.sse.json.events = true
	return m
}

// Start chooses the mode from the response status and Content-Type; call it
// once, when the response header is written. A 2xx text/event-stream body
// is read as events (ModeSSE), a 2xx application/json body as an object
// (ModeJSON); anything else, errors included, passes untouched (ModePass):
// an error carries no usage, and must never be edited.
//
// The meter reads the body as it goes to the client: if the body has a
// Content-Encoding (gzip, br...), feed it the decoded bytes instead (as
// aiproxy does for gzip, inflating a copy), or pass contentType "" so that
// it is not parsed. A meter that strips must see the bytes the client gets.
func (m *Meter) Start(status int, contentType string) {
	if m.started {
		return
	}
	m.started = true
	if m.kind == KindOther || status < 200 || status > 299 {
		return
	}
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, "text/event-stream"):
		m.mode = ModeSSE
		m.stripping = m.strip && (m.kind == KindChat || m.kind == KindCompletion)
	case strings.EqualFold(mt, "application/json"):
		m.mode = ModeJSON
	}
}

// Mode returns the mode Start chose: ModePass until Start is called.
func (m *Meter) Mode() Mode { return m.mode }

// Write observes the next chunk of the body and returns the bytes to send
// to the client now.
//
// Unless the meter strips, it returns p itself, unchanged, in every mode.
// When it strips, it returns only whole events, each as the client would
// have received it without include_usage: the usage chunk (empty
// "choices", non-null "usage") is dropped, and the top-level "usage":null
// member of other chunks removed. It holds back the bytes of an unfinished
// event until its blank line arrives; an event still unfinished after
// 1 MiB has been held is sent on as it comes, unedited. The result is then
// a buffer lent to the meter, valid only until the next call to Write,
// Finish or Sent, and may be empty: call Sent once it is sent.
//
// p is only read, and not retained after Write returns.
func (m *Meter) Write(p []byte) []byte {
	if m.finished {
		return p
	}
	switch m.mode {
	case ModeJSON:
		m.json.write(p)
	case ModeSSE:
		if m.stripping {
			return m.writeStrip(p)
		}
		m.scanEvents(p)
	}
	return p
}

// Finish ends the body and returns the bytes still held back (nil unless
// the meter strips): an unfinished last event passes on as it is. The
// result is valid until the next call on the Meter. A last event whose
// data is complete JSON is metered even without its blank line. Calling
// Finish again returns nil; Write after Finish passes bytes untouched.
func (m *Meter) Finish() []byte {
	if m.finished {
		return nil
	}
	m.finished = true
	if m.mode != ModeSSE {
		return nil
	}
	if m.sse.dataLines > 0 && m.sse.json.complete {
		m.onEvent()
	}
	m.sse.resetEvent()
	held := m.held
	m.held = nil
	return held
}

// Sent tells the meter that the bytes Write returned were sent (or
// dropped), and must not be used any more: their buffer goes back to be
// lent to any meter's next Write, so that a stream between chunks holds
// none. Without it, the meter keeps the buffer for its next Write.
func (m *Meter) Sent() {
	if m.outBox == nil {
		return
	}
	*m.outBox = nil
	if cap(m.out) <= keepBuf {
		*m.outBox = m.out[:0]
	}
	outBuffers.Put(m.outBox)
	m.outBox, m.out = nil, nil
}

// Usage returns what the meter has learned so far: complete after Finish,
// and the tokens known so far if the body was cut short.
func (m *Meter) Usage() Usage {
	u := m.usage
	if m.mode == ModeJSON {
		if raw, ok := m.json.get(fUsage); ok {
			u.setUsage(raw)
		}
		if raw, ok := m.json.get(fModel); ok {
			m.model.set(raw)
		}
	}
	u.Model = m.model.name
	return u
}
