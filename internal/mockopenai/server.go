// Package mockopenai is a mock OpenAI upstream for end-to-end tests. It
// speaks enough of the OpenAI HTTP API (chat, legacy completions, embeddings,
// responses, models, files, a Realtime WebSocket handshake) for the official
// SDKs and raw HTTP tests, records every request it receives, and lets a test
// hold a stream between chunks to prove chunk-by-chunk delivery through a
// proxy. Each endpoint family has its file; server.go routes, records,
// authenticates and holds the gate.
//
// It deliberately shares no code with the gateway (not even internal/apierror):
// a mock that reused the code under test would hide that code's bugs.
package mockopenai

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Special model names. Any other model name is served normally.
const (
	// ModelGated makes the mock wait at the gate (see [Server.Release])
	// before every content chunk of a stream after the first one, and once
	// before answering a non-streaming request.
	ModelGated = "gated"
	// ModelError429 gets a 429 rate_limit_exceeded error with the headers
	// Retry-After: 1 and x-ratelimit-remaining-requests: 0.
	ModelError429 = "error-429"
	// ModelError500 gets a 500 server_error error.
	ModelError500 = "error-500"
)

// RecordedBodyMax is the largest request body kept in [RecordedRequest.Body].
const RecordedBodyMax = 1 << 20

// fixedTime is the fixed "created" timestamp, so response bodies are deterministic.
const fixedTime = 1735689600

// signalBuffer bounds the unread values of GateWaiting, Canceled and
// WebSocketClosed, and the unused Release tokens; far more than any test
// needs.
const signalBuffer = 4096

// Cookie is the name of the cookie every answer of the mock sets.
const Cookie = "__cf_bm"

// Server is a mock OpenAI API server. Create it with [New] or
// [NewTLS]; it is closed when the test ends.
//
// Every route requires the header "Authorization: Bearer <key>" (exactly one
// such header) and is served under both /v1/... and /openai/v1/... (the
// Groq-style prefix), whatever the Host header says:
//
//	POST   /v1/chat/completions   chat.completion, or SSE chat.completion.chunk events
//	POST   /v1/completions        text_completion, or SSE text_completion events
//	POST   /v1/embeddings         a list of 8-dimension embeddings (float or base64)
//	POST   /v1/responses          a response object, or SSE response.* events
//	GET    /v1/models, /v1/models/{id}
//	POST   /v1/files              multipart upload (purpose, file)
//	DELETE /v1/files/{id}
//	any    /v1/echo/...           describes the request ([Echo]); ?echo=body echoes the body
//	GET    /v1/realtime           WebSocket handshake, then echoes raw bytes
//
// Every answer sets a cookie, as api.openai.com behind Cloudflare does
// (Set-Cookie: [Cookie]=...), so a proxy can be shown to drop it.
//
// The reply text and token usage are deterministic: see [Reply] and
// [ExpectedUsage]. Anything else gets OpenAI's 404 "Invalid URL" error.
//
// Output caps and choice counts are honoured as OpenAI honours them, a
// token being a word ([ReplyCapped], [ExpectedUsageCapped]):
//   - chat: max_completion_tokens, else max_tokens, cuts the reply, and a
//     cut choice has finish_reason "length"; n (1 to [MaxChoices]) choices
//     each carry the reply, and completion_tokens counts them all;
//     streamed, each chunk carries one choice, the choices interleaved;
//   - legacy completions: the same with max_tokens, whose default is
//     [CompletionsDefaultMaxTokens];
//   - responses: max_output_tokens (at least [ResponsesMinOutputTokens])
//     cuts the reply; the response is then "incomplete", with
//     incomplete_details {"reason":"max_output_tokens"}, and a stream ends
//     with response.incomplete instead of response.completed.
//
// A cap below its minimum, an n out of range, or one that is not an
// integer gets OpenAI's 400 invalid_request_error naming the parameter.
//
// The error models ([ModelError429], [ModelError500]) are
// retryable statuses for SDKs: use option.WithMaxRetries(0) in such tests.
//
// A request for model [ModelGated] lets a test step a stream:
//
//	// stream through the proxy; read the first content chunk, then:
//	<-o.GateWaiting() // upstream parked: it has sent exactly one content chunk
//	o.Release()       // it sends one more, then parks again
//	cancel()          // or the client leaves...
//	<-o.Canceled()    // ...and the upstream request was cancelled
type Server struct {
	*httptest.Server

	key    string
	tmpDir string // spool for ?echo=body

	mu     sync.Mutex
	reqs   []RecordedRequest
	conns  map[net.Conn]struct{} // hijacked WebSocket connections
	closed bool

	gate     chan struct{} // Release tokens
	gateOpen chan struct{} // closed by OpenGate
	openOnce sync.Once
	waiting  chan struct{}
	canceled chan struct{}
	wsClosed chan struct{}
}

// RecordedRequest is what the mock received in one request, recorded before
// any response byte is written (so it is visible once the client has a response).
type RecordedRequest struct {
	Method string
	// RequestURI is the request target exactly as it came on the wire.
	RequestURI string
	Path       string
	RawPath    string // set only when the path's encoding is not the default one
	RawQuery   string
	Host       string
	// Header is a copy of the request headers (Host is in Host, not here).
	Header http.Header
	// ContentLength is as received: -1 when unknown (chunked).
	ContentLength    int64
	TransferEncoding []string
	ContentType      string
	// BodyLen and BodySHA256 (lowercase hex) cover the whole request body.
	BodyLen    int64
	BodySHA256 string
	// Body is the request body when it is at most RecordedBodyMax bytes, else nil.
	Body []byte
	// Authorized tells whether the Authorization header carried the mock's key.
	Authorized bool
	// Upload* describe the "file" part of a POST /v1/files multipart body.
	UploadFilename string
	UploadPurpose  string
	UploadBytes    int64
	UploadSHA256   string
}

// New starts a plain-HTTP mock OpenAI server that accepts only key.
// It is closed (see [Server.Close]) by tb.Cleanup.
func New(tb testing.TB, key string) *Server {
	tb.Helper()
	return newServer(tb, key, false)
}

// NewTLS is [New] over HTTPS (HTTP/1.1 only). Clients must trust
// its certificate: use o.Client(), o.Certificate() or [Server.CertificatePEM].
func NewTLS(tb testing.TB, key string) *Server {
	tb.Helper()
	return newServer(tb, key, true)
}

func newServer(tb testing.TB, key string, useTLS bool) *Server {
	o := &Server{
		key:      key,
		tmpDir:   tb.TempDir(), // registered first, so removed after the server is closed
		conns:    map[net.Conn]struct{}{},
		gate:     make(chan struct{}, signalBuffer),
		gateOpen: make(chan struct{}),
		waiting:  make(chan struct{}, signalBuffer),
		canceled: make(chan struct{}, signalBuffer),
		wsClosed: make(chan struct{}, signalBuffer),
	}
	// A Handler on an unstarted server, not a ServeMux: ServeMux cleans paths
	// and redirects, which would hide what a proxy really sent.
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(o.serve))
	if useTLS {
		o.StartTLS()
	} else {
		o.Start()
	}
	tb.Cleanup(o.Close)
	return o
}

// Close opens the gate, closes every client connection (WebSocket ones too)
// and stops the server. The test's cleanup calls it; a test may call it
// earlier to make the upstream vanish. It shadows httptest.Server.Close,
// which would wait forever for a request parked at the gate.
func (o *Server) Close() {
	o.OpenGate()
	o.mu.Lock()
	o.closed = true
	for c := range o.conns {
		_ = c.Close()
	}
	o.mu.Unlock()
	o.CloseClientConnections()
	o.Server.Close()
}

// CertificatePEM returns the TLS server's certificate in PEM form (for a
// proxy's trust pool), or nil for a plain-HTTP server.
func (o *Server) CertificatePEM() []byte {
	cert := o.Certificate()
	if cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// Requests returns every request received so far, in the order they were recorded.
func (o *Server) Requests() []RecordedRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]RecordedRequest(nil), o.reqs...)
}

// LastRequest returns the most recently recorded request, or the zero value if none.
func (o *Server) LastRequest() RecordedRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reqs) == 0 {
		return RecordedRequest{}
	}
	return o.reqs[len(o.reqs)-1]
}

// request returns the n-th (1-based) recorded request.
func (o *Server) request(n int) RecordedRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reqs[n-1]
}

// Release lets one gated chunk (or one gated non-streaming reply) through. It
// does not block (up to 4096 unused tokens): tokens are counted and shared by
// all gated requests of this server, so a token released before anything
// waits is used by the next chunk that does.
func (o *Server) Release() {
	o.gate <- struct{}{}
}

// OpenGate lets every gated request through, now and from then on.
func (o *Server) OpenGate() {
	o.openOnce.Do(func() { close(o.gateOpen) })
}

// GateWaiting receives one value each time a gated request starts to wait at
// the gate. When it arrives, every earlier chunk of that stream has been
// written and flushed, and no later one will be until [Server.Release].
func (o *Server) GateWaiting() <-chan struct{} {
	return o.waiting
}

// Canceled receives one value each time a handler stops early because its
// request context was canceled (the client, or a proxy, went away) while it
// waited at the gate or wrote a stream. It is the way to prove that a proxy
// cancelled its upstream request.
func (o *Server) Canceled() <-chan struct{} {
	return o.canceled
}

// WebSocketClosed receives one value each time a Realtime WebSocket
// connection ends because its other end (a proxy, or the client) closed it.
// It is the way to prove that a proxy closed the provider's side of a
// session.
func (o *Server) WebSocketClosed() <-chan struct{} {
	return o.wsClosed
}

// call is one request being served.
type call struct {
	o    *Server
	w    http.ResponseWriter
	r    *http.Request
	body *recordingBody
	n    int // 1-based position in Requests(); set by record
}

// recordingBody hashes and counts a request body as it is read, and keeps it if small.
type recordingBody struct {
	rc   io.ReadCloser
	h    hash.Hash
	n    int64
	keep []byte
	over bool
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.h.Write(p[:n])
		b.n += int64(n)
		if !b.over {
			if len(b.keep)+n <= RecordedBodyMax {
				b.keep = append(b.keep, p[:n]...)
			} else {
				b.over, b.keep = true, nil
			}
		}
	}
	return n, err
}

func (b *recordingBody) Close() error { return b.rc.Close() }

func (o *Server) serve(w http.ResponseWriter, r *http.Request) {
	c := &call{o: o, w: w, r: r, body: &recordingBody{rc: r.Body, h: sha256.New()}}
	r.Body = c.body

	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/openai/"); ok {
		path = "/" + rest // Groq serves the same API under /openai/v1
	}
	if !c.authorized() {
		c.record(nil)
		c.authError()
		return
	}
	m := r.Method
	switch {
	case path == "/v1/echo" || strings.HasPrefix(path, "/v1/echo/"):
		c.echo()
	case m == http.MethodPost && path == "/v1/chat/completions":
		c.chat()
	case m == http.MethodPost && path == "/v1/completions":
		c.completions()
	case m == http.MethodPost && path == "/v1/embeddings":
		c.embeddings()
	case m == http.MethodPost && path == "/v1/responses":
		c.responses()
	case m == http.MethodGet && path == "/v1/models":
		c.models()
	case m == http.MethodGet && strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		c.model(strings.TrimPrefix(path, "/v1/models/"))
	case m == http.MethodPost && path == "/v1/files":
		c.uploadFile()
	case m == http.MethodDelete && strings.HasPrefix(path, "/v1/files/") && len(path) > len("/v1/files/"):
		c.deleteFile(strings.TrimPrefix(path, "/v1/files/"))
	case m == http.MethodGet && path == "/v1/realtime":
		c.realtime()
	default:
		c.record(nil)
		c.fail(http.StatusNotFound, "invalid_request_error", "", "",
			fmt.Sprintf("Invalid URL (%s %s)", m, r.URL.Path))
	}
}

// authorized requires exactly one Authorization header, "Bearer <key>": a
// proxy that appends instead of replacing the header must fail.
func (c *call) authorized() bool {
	v := c.r.Header.Values("Authorization")
	return len(v) == 1 && v[0] == "Bearer "+c.o.key
}

// authError answers 401 like OpenAI: a missing key and a wrong key get
// different messages, and a wrong key is masked, never echoed whole.
func (c *call) authError() {
	v := c.r.Header.Values("Authorization")
	if len(v) == 0 {
		c.fail(http.StatusUnauthorized, "invalid_request_error", "", "",
			"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.")
		return
	}
	given := strings.TrimPrefix(strings.Join(v, ","), "Bearer ")
	c.fail(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "",
		"Incorrect API key provided: "+maskKey(given)+". You can find your API key at https://platform.openai.com/account/api-keys.")
}

// maskKey keeps the first 3 and last 4 characters of a key, as OpenAI does.
func maskKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

// record drains the rest of the body (so BodyLen and BodySHA256 cover all of
// it), stores the request and sets X-Request-Id. Every route calls it before
// writing its response, so a client that got a response finds its request here.
func (c *call) record(up *upload) {
	_, _ = io.Copy(io.Discard, c.body)
	r := c.r
	rr := RecordedRequest{
		Method:           r.Method,
		RequestURI:       r.RequestURI,
		Path:             r.URL.Path,
		RawPath:          r.URL.RawPath,
		RawQuery:         r.URL.RawQuery,
		Host:             r.Host,
		Header:           r.Header.Clone(),
		ContentLength:    r.ContentLength,
		TransferEncoding: append([]string(nil), r.TransferEncoding...),
		ContentType:      r.Header.Get("Content-Type"),
		BodyLen:          c.body.n,
		BodySHA256:       hex.EncodeToString(c.body.h.Sum(nil)),
		Authorized:       c.authorized(),
	}
	if !c.body.over {
		rr.Body = append([]byte(nil), c.body.keep...)
	}
	if up != nil {
		rr.UploadFilename, rr.UploadPurpose = up.filename, up.purpose
		rr.UploadBytes, rr.UploadSHA256 = up.bytes, up.sha256
	}
	c.o.mu.Lock()
	c.o.reqs = append(c.o.reqs, rr)
	c.n = len(c.o.reqs)
	c.o.mu.Unlock()
	c.w.Header().Set("X-Request-Id", c.id("req_"))
	c.w.Header().Set("Set-Cookie", cookieHeader)
}

// cookieHeader is the cookie every answer sets.
const cookieHeader = Cookie + "=mock-session; path=/; HttpOnly; Secure; SameSite=None"

// id returns a deterministic object id, e.g. "chatcmpl-mock000003" for the third request.
func (c *call) id(prefix string) string {
	return fmt.Sprintf("%smock%06d", prefix, c.n)
}

// readJSON reads and records the body, then decodes it into v. On a bad
// body it answers 400 as OpenAI does and returns false.
func (c *call) readJSON(v any) bool {
	data, err := io.ReadAll(c.body)
	c.record(nil)
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "",
			"We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
		return false
	}
	return true
}

// writeJSON writes v as a JSON response with a Content-Length.
func (c *call) writeJSON(status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic("mockopenai: marshal mock response: " + err.Error()) // a bug in this package
	}
	data = append(data, '\n')
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write(data)
}

// waitGate blocks a gated request until a Release token, OpenGate, or the end
// of the request context. It reports false (and signals Canceled) on the last.
func (c *call) waitGate() bool {
	select {
	case c.o.waiting <- struct{}{}:
	default:
	}
	select {
	case <-c.o.gate:
		return true
	case <-c.o.gateOpen:
		return true
	case <-c.r.Context().Done():
		c.noteCanceled()
		return false
	}
}

func (c *call) noteCanceled() {
	select {
	case c.o.canceled <- struct{}{}:
	default:
	}
}
