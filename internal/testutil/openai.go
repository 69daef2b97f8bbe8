package testutil

// openai.go: a mock OpenAI upstream for end-to-end tests. It speaks enough of
// the OpenAI HTTP API (chat, legacy completions, embeddings, responses,
// models, files, a Realtime WebSocket handshake) for the official SDKs and
// raw HTTP tests, records every request it receives, and lets a test hold a
// stream between chunks to prove chunk-by-chunk delivery through a proxy.
//
// It deliberately shares no code with the gateway (not even internal/apierror):
// a mock that reused the code under test would hide that code's bugs.

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"io"
	"math"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Special model names. Any other model name is served normally.
const (
	// OpenAIModelGated makes the mock wait at the gate (see [OpenAI.Release])
	// before every content chunk of a stream after the first one, and once
	// before answering a non-streaming request.
	OpenAIModelGated = "gated"
	// OpenAIModelError429 gets a 429 rate_limit_exceeded error with the headers
	// Retry-After: 1 and x-ratelimit-remaining-requests: 0.
	OpenAIModelError429 = "error-429"
	// OpenAIModelError500 gets a 500 server_error error.
	OpenAIModelError500 = "error-500"
)

// OpenAIDefaultReply is the mock's reply when the prompt's last text has no words.
const OpenAIDefaultReply = "Hello from mock"

// RecordedBodyMax is the largest request body kept in [RecordedRequest.Body].
const RecordedBodyMax = 1 << 20

// oaiCreated is the fixed "created" timestamp, so response bodies are deterministic.
const oaiCreated = 1735689600

// oaiWebSocketGUID is the RFC 6455 constant used to compute Sec-WebSocket-Accept.
const oaiWebSocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// oaiSignalBuffer bounds the unread values of GateWaiting, Canceled and
// WebSocketClosed, and the unused Release tokens; far more than any test
// needs.
const oaiSignalBuffer = 4096

// OpenAICookie is the name of the cookie every answer of the mock sets.
const OpenAICookie = "__cf_bm"

// oaiModels are the models GET /v1/models lists and GET /v1/models/{id} knows.
var oaiModels = []string{"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}

// OpenAI is a mock OpenAI API server. Create it with [NewOpenAI] or
// [NewOpenAITLS]; it is closed when the test ends.
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
//	any    /v1/echo/...           describes the request ([OpenAIEcho]); ?echo=body echoes the body
//	GET    /v1/realtime           WebSocket handshake, then echoes raw bytes
//
// Every answer sets a cookie, as api.openai.com behind Cloudflare does
// (Set-Cookie: [OpenAICookie]=...), so a proxy can be shown to drop it.
//
// The reply text and token usage are deterministic: see [OpenAIReply] and
// [OpenAIExpectedUsage]. Anything else gets OpenAI's 404 "Invalid URL" error.
// The error models ([OpenAIModelError429], [OpenAIModelError500]) are
// retryable statuses for SDKs: use option.WithMaxRetries(0) in such tests.
//
// A request for model [OpenAIModelGated] lets a test step a stream:
//
//	// stream through the proxy; read the first content chunk, then:
//	<-o.GateWaiting() // upstream parked: it has sent exactly one content chunk
//	o.Release()       // it sends one more, then parks again
//	cancel()          // or the client leaves...
//	<-o.Canceled()    // ...and the upstream request was cancelled
type OpenAI struct {
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

// OpenAIEcho is the JSON body the /v1/echo/... route answers with.
type OpenAIEcho struct {
	Method           string      `json:"method"`
	RequestURI       string      `json:"request_uri"`
	Path             string      `json:"path"`
	RawPath          string      `json:"raw_path"`
	RawQuery         string      `json:"raw_query"`
	Host             string      `json:"host"`
	Headers          http.Header `json:"headers"`
	ContentLength    int64       `json:"content_length"` // -1 for chunked
	TransferEncoding []string    `json:"transfer_encoding"`
	BodyLen          int64       `json:"body_len"`
	BodySHA256       string      `json:"body_sha256"`
}

// OpenAIUsage is the token usage the mock reports. For the Responses API,
// PromptTokens is input_tokens and CompletionTokens is output_tokens.
// Cached and reasoning token counts are always 0.
type OpenAIUsage struct {
	PromptTokens     int64
	CompletionTokens int64
	TotalTokens      int64
}

// NewOpenAI starts a plain-HTTP mock OpenAI server that accepts only key.
// It is closed (see [OpenAI.Close]) by tb.Cleanup.
func NewOpenAI(tb testing.TB, key string) *OpenAI {
	tb.Helper()
	return newOpenAI(tb, key, false)
}

// NewOpenAITLS is [NewOpenAI] over HTTPS (HTTP/1.1 only). Clients must trust
// its certificate: use o.Client(), o.Certificate() or [OpenAI.CertificatePEM].
func NewOpenAITLS(tb testing.TB, key string) *OpenAI {
	tb.Helper()
	return newOpenAI(tb, key, true)
}

func newOpenAI(tb testing.TB, key string, useTLS bool) *OpenAI {
	o := &OpenAI{
		key:      key,
		tmpDir:   tb.TempDir(), // registered first, so removed after the server is closed
		conns:    map[net.Conn]struct{}{},
		gate:     make(chan struct{}, oaiSignalBuffer),
		gateOpen: make(chan struct{}),
		waiting:  make(chan struct{}, oaiSignalBuffer),
		canceled: make(chan struct{}, oaiSignalBuffer),
		wsClosed: make(chan struct{}, oaiSignalBuffer),
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
func (o *OpenAI) Close() {
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
func (o *OpenAI) CertificatePEM() []byte {
	cert := o.Certificate()
	if cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// Requests returns every request received so far, in the order they were recorded.
func (o *OpenAI) Requests() []RecordedRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]RecordedRequest(nil), o.reqs...)
}

// LastRequest returns the most recently recorded request, or the zero value if none.
func (o *OpenAI) LastRequest() RecordedRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reqs) == 0 {
		return RecordedRequest{}
	}
	return o.reqs[len(o.reqs)-1]
}

// Release lets one gated chunk (or one gated non-streaming reply) through. It
// does not block (up to 4096 unused tokens): tokens are counted and shared by
// all gated requests of this server, so a token released before anything
// waits is used by the next chunk that does.
func (o *OpenAI) Release() {
	o.gate <- struct{}{}
}

// OpenGate lets every gated request through, now and from then on.
func (o *OpenAI) OpenGate() {
	o.openOnce.Do(func() { close(o.gateOpen) })
}

// GateWaiting receives one value each time a gated request starts to wait at
// the gate. When it arrives, every earlier chunk of that stream has been
// written and flushed, and no later one will be until [OpenAI.Release].
func (o *OpenAI) GateWaiting() <-chan struct{} {
	return o.waiting
}

// Canceled receives one value each time a handler stops early because its
// request context was canceled (the client, or a proxy, went away) while it
// waited at the gate or wrote a stream. It is the way to prove that a proxy
// cancelled its upstream request.
func (o *OpenAI) Canceled() <-chan struct{} {
	return o.canceled
}

// WebSocketClosed receives one value each time a Realtime WebSocket
// connection ends because its other end (a proxy, or the client) closed it.
// It is the way to prove that a proxy closed the provider's side of a
// session.
func (o *OpenAI) WebSocketClosed() <-chan struct{} {
	return o.wsClosed
}

// OpenAIWordCount returns the mock's token count of texts: the number of
// whitespace-separated words in all of them.
func OpenAIWordCount(texts ...string) int64 {
	var n int64
	for _, t := range texts {
		n += int64(len(strings.Fields(t)))
	}
	return n
}

// OpenAIReply returns the mock's reply to a prompt made of texts: the words
// of the last text joined by single spaces, or [OpenAIDefaultReply] when that
// has no words. The texts are, in order: for chat, each message's content
// (each text part of an array content); for responses, the instructions and
// then each input text; for completions, the prompt string(s).
func OpenAIReply(texts ...string) string {
	if len(texts) > 0 {
		if words := strings.Fields(texts[len(texts)-1]); len(words) > 0 {
			return strings.Join(words, " ")
		}
	}
	return OpenAIDefaultReply
}

// OpenAIExpectedUsage returns the usage the mock reports for a prompt made of
// texts (see [OpenAIReply]): PromptTokens = OpenAIWordCount(texts...),
// CompletionTokens = OpenAIWordCount(OpenAIReply(texts...)). For embeddings
// the usage is PromptTokens = TotalTokens = OpenAIWordCount(inputs...).
func OpenAIExpectedUsage(texts ...string) OpenAIUsage {
	p := OpenAIWordCount(texts...)
	c := OpenAIWordCount(OpenAIReply(texts...))
	return OpenAIUsage{PromptTokens: p, CompletionTokens: c, TotalTokens: p + c}
}

// ---- request plumbing ----

// oaiCall is one request being served.
type oaiCall struct {
	o    *OpenAI
	w    http.ResponseWriter
	r    *http.Request
	body *oaiBody
	n    int // 1-based position in Requests(); set by record
}

// oaiBody hashes and counts a request body as it is read, and keeps it if small.
type oaiBody struct {
	rc   io.ReadCloser
	h    hash.Hash
	n    int64
	keep []byte
	over bool
}

func (b *oaiBody) Read(p []byte) (int, error) {
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

func (b *oaiBody) Close() error { return b.rc.Close() }

// oaiUpload is what POST /v1/files saw of the uploaded file.
type oaiUpload struct {
	filename, purpose string
	bytes             int64
	sha256            string
}

func (o *OpenAI) serve(w http.ResponseWriter, r *http.Request) {
	c := &oaiCall{o: o, w: w, r: r, body: &oaiBody{rc: r.Body, h: sha256.New()}}
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
func (c *oaiCall) authorized() bool {
	v := c.r.Header.Values("Authorization")
	return len(v) == 1 && v[0] == "Bearer "+c.o.key
}

// record drains the rest of the body (so BodyLen and BodySHA256 cover all of
// it), stores the request and sets X-Request-Id. Every route calls it before
// writing its response, so a client that got a response finds its request here.
func (c *oaiCall) record(up *oaiUpload) {
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
	c.w.Header().Set("Set-Cookie", oaiCookie)
}

// oaiCookie is the cookie every answer sets.
const oaiCookie = OpenAICookie + "=mock-session; path=/; HttpOnly; Secure; SameSite=None"

// id returns a deterministic object id, e.g. "chatcmpl-mock000003" for the third request.
func (c *oaiCall) id(prefix string) string {
	return fmt.Sprintf("%smock%06d", prefix, c.n)
}

// readJSON reads and records the body, then decodes it into v. On a bad
// body it answers 400 as OpenAI does and returns false.
func (c *oaiCall) readJSON(v any) bool {
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

// ---- responses and errors ----

type oaiErrorBody struct {
	Error oaiErrorDetail `json:"error"`
}

type oaiErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// fail writes an OpenAI error body; an empty code or param is sent as null.
func (c *oaiCall) fail(status int, typ, code, param, msg string) {
	d := oaiErrorDetail{Message: msg, Type: typ}
	if code != "" {
		d.Code = &code
	}
	if param != "" {
		d.Param = &param
	}
	c.writeJSON(status, oaiErrorBody{Error: d})
}

// writeJSON writes v as a JSON response with a Content-Length.
func (c *oaiCall) writeJSON(status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic("testutil: marshal mock response: " + err.Error()) // a bug in this file
	}
	data = append(data, '\n')
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write(data)
}

// authError answers 401 like OpenAI: a missing key and a wrong key get
// different messages, and a wrong key is masked, never echoed whole.
func (c *oaiCall) authError() {
	v := c.r.Header.Values("Authorization")
	if len(v) == 0 {
		c.fail(http.StatusUnauthorized, "invalid_request_error", "", "",
			"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.")
		return
	}
	given := strings.TrimPrefix(strings.Join(v, ","), "Bearer ")
	c.fail(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "",
		"Incorrect API key provided: "+oaiMaskKey(given)+". You can find your API key at https://platform.openai.com/account/api-keys.")
}

// oaiMaskKey keeps the first 3 and last 4 characters of a key, as OpenAI does.
func oaiMaskKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

// modelError answers the error models and reports whether it did.
func (c *oaiCall) modelError(model string) bool {
	switch model {
	case OpenAIModelError429:
		h := c.w.Header()
		h.Set("Retry-After", "1")
		h.Set("X-Ratelimit-Limit-Requests", "3")
		h.Set("X-Ratelimit-Remaining-Requests", "0")
		h.Set("X-Ratelimit-Reset-Requests", "1s")
		c.fail(http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "",
			"Rate limit reached for "+model+" in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more.")
		return true
	case OpenAIModelError500:
		c.fail(http.StatusInternalServerError, "server_error", "", "",
			"The server had an error while processing your request. Sorry about that!")
		return true
	}
	return false
}

// requireModel answers 400 when model is empty, as OpenAI does.
func (c *oaiCall) requireModel(model string) bool {
	if model == "" {
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "", "you must provide a model parameter")
		return false
	}
	return true
}

// waitGate blocks a gated request until a Release token, OpenGate, or the end
// of the request context. It reports false (and signals Canceled) on the last.
func (c *oaiCall) waitGate() bool {
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

func (c *oaiCall) noteCanceled() {
	select {
	case c.o.canceled <- struct{}{}:
	default:
	}
}

// ---- server-sent events ----

// oaiSSE writes server-sent events, flushing each one so that a test can see
// whether a proxy delivers them one at a time.
type oaiSSE struct {
	c  *oaiCall
	rc *http.ResponseController
}

func (c *oaiCall) startSSE() *oaiSSE {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(http.StatusOK)
	s := &oaiSSE{c: c, rc: http.NewResponseController(c.w)}
	_ = s.rc.Flush()
	return s
}

// send writes one event ("event: name" line only when name is set) and
// reports false, signalling Canceled if that is why, when the stream must stop.
func (s *oaiSSE) send(name string, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		panic("testutil: marshal mock event: " + err.Error())
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

func (s *oaiSSE) done() bool { return s.write([]byte("data: [DONE]\n\n")) }

func (s *oaiSSE) write(p []byte) bool {
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

// oaiReplyWords splits a reply into stream deltas whose concatenation is the
// reply: "Hello", " from", " mock".
func oaiReplyWords(reply string) []string {
	words := strings.Fields(reply)
	for i := 1; i < len(words); i++ {
		words[i] = " " + words[i]
	}
	return words
}

// oaiTexts returns the prompt texts in a JSON value, in order: a string; each
// element of a list; an object's "text", else its "content". That covers chat
// messages (string or text-part contents), Responses input items and parts,
// and string or string-list prompts and inputs.
func oaiTexts(raw json.RawMessage) []string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var out []string
		for _, e := range list {
			out = append(out, oaiTexts(e)...)
		}
		return out
	}
	var obj struct {
		Text    *string         `json:"text"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		if obj.Text != nil {
			return []string{*obj.Text}
		}
		return oaiTexts(obj.Content)
	}
	return nil
}

// ---- chat completions and legacy completions ----

type oaiStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type oaiUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
		AudioTokens  int64 `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int64 `json:"reasoning_tokens"`
		AudioTokens              int64 `json:"audio_tokens"`
		AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

func oaiUsageOf(u OpenAIUsage) *oaiUsage {
	return &oaiUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
}

type oaiChatCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []oaiChatChoice `json:"choices"`
	Usage             *oaiUsage       `json:"usage"`
	ServiceTier       string          `json:"service_tier"`
	SystemFingerprint string          `json:"system_fingerprint"`
}

type oaiChatChoice struct {
	Index        int            `json:"index"`
	Message      oaiChatMessage `json:"message"`
	Logprobs     any            `json:"logprobs"`
	FinishReason string         `json:"finish_reason"`
}

type oaiChatMessage struct {
	Role        string `json:"role"`
	Content     string `json:"content"`
	Refusal     any    `json:"refusal"`
	Annotations []any  `json:"annotations"`
}

// oaiChunk is a chat.completion.chunk or a streamed text_completion. Usage is
// omitted (nil), null (json.RawMessage("null")) or the final usage, as OpenAI
// sends it depending on stream_options.include_usage.
type oaiChunk struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	ServiceTier       string `json:"service_tier,omitempty"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []any  `json:"choices"`
	Usage             any    `json:"usage,omitempty"`
}

type oaiChunkChoice struct {
	Index        int      `json:"index"`
	Delta        oaiDelta `json:"delta"`
	Logprobs     any      `json:"logprobs"`
	FinishReason *string  `json:"finish_reason"`
}

type oaiDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type oaiTextChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

func (c *oaiCall) chat() {
	var req struct {
		Model         string            `json:"model"`
		Messages      json.RawMessage   `json:"messages"`
		Stream        bool              `json:"stream"`
		StreamOptions *oaiStreamOptions `json:"stream_options"`
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	var msgs []json.RawMessage
	if json.Unmarshal(req.Messages, &msgs) != nil || len(msgs) == 0 {
		c.fail(http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "messages",
			"Missing required parameter: 'messages'.")
		return
	}
	texts := oaiTexts(req.Messages)
	reply, usage := OpenAIReply(texts...), OpenAIExpectedUsage(texts...)
	gated := req.Model == OpenAIModelGated
	if !req.Stream {
		if gated && !c.waitGate() {
			return
		}
		c.writeJSON(http.StatusOK, oaiChatCompletion{
			ID: c.id("chatcmpl-"), Object: "chat.completion", Created: oaiCreated, Model: req.Model,
			Choices: []oaiChatChoice{{
				Message:      oaiChatMessage{Role: "assistant", Content: reply, Annotations: []any{}},
				FinishReason: "stop",
			}},
			Usage: oaiUsageOf(usage), ServiceTier: "default", SystemFingerprint: "fp_mock",
		})
		return
	}

	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	chunk := func(choices ...any) oaiChunk {
		ch := oaiChunk{
			ID: c.id("chatcmpl-"), Object: "chat.completion.chunk", Created: oaiCreated, Model: req.Model,
			ServiceTier: "default", SystemFingerprint: "fp_mock", Choices: append([]any{}, choices...),
		}
		if includeUsage {
			ch.Usage = json.RawMessage("null") // OpenAI sends "usage":null on every chunk but the last
		}
		return ch
	}
	s := c.startSSE()
	empty := ""
	if !s.send("", chunk(oaiChunkChoice{Delta: oaiDelta{Role: "assistant", Content: &empty}})) {
		return
	}
	for i, word := range oaiReplyWords(reply) {
		if i > 0 && gated && !c.waitGate() {
			return
		}
		if !s.send("", chunk(oaiChunkChoice{Delta: oaiDelta{Content: &word}})) {
			return
		}
	}
	stop := "stop"
	if !s.send("", chunk(oaiChunkChoice{FinishReason: &stop})) {
		return
	}
	if includeUsage {
		last := chunk()
		last.Usage = oaiUsageOf(usage)
		if !s.send("", last) {
			return
		}
	}
	s.done()
}

func (c *oaiCall) completions() {
	var req struct {
		Model         string            `json:"model"`
		Prompt        json.RawMessage   `json:"prompt"`
		Stream        bool              `json:"stream"`
		StreamOptions *oaiStreamOptions `json:"stream_options"`
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	texts := oaiTexts(req.Prompt)
	reply, usage := OpenAIReply(texts...), OpenAIExpectedUsage(texts...)
	gated := req.Model == OpenAIModelGated
	stop := "stop"
	base := func(choices ...any) oaiChunk {
		return oaiChunk{
			ID: c.id("cmpl-"), Object: "text_completion", Created: oaiCreated, Model: req.Model,
			SystemFingerprint: "fp_mock", Choices: append([]any{}, choices...),
		}
	}
	if !req.Stream {
		if gated && !c.waitGate() {
			return
		}
		resp := base(oaiTextChoice{Text: reply, FinishReason: &stop})
		resp.Usage = oaiUsageOf(usage)
		c.writeJSON(http.StatusOK, resp)
		return
	}

	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	chunk := func(choices ...any) oaiChunk {
		ch := base(choices...)
		if includeUsage {
			ch.Usage = json.RawMessage("null")
		}
		return ch
	}
	s := c.startSSE()
	for i, word := range oaiReplyWords(reply) {
		if i > 0 && gated && !c.waitGate() {
			return
		}
		if !s.send("", chunk(oaiTextChoice{Text: word})) {
			return
		}
	}
	if !s.send("", chunk(oaiTextChoice{FinishReason: &stop})) {
		return
	}
	if includeUsage {
		last := chunk()
		last.Usage = oaiUsageOf(usage)
		if !s.send("", last) {
			return
		}
	}
	s.done()
}

// ---- embeddings ----

type oaiEmbedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

func (c *oaiCall) embeddings() {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	inputs := oaiTexts(req.Input)
	if len(inputs) == 0 {
		c.fail(http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "input",
			"Missing required parameter: 'input'.")
		return
	}
	data := make([]oaiEmbedding, len(inputs))
	for i, in := range inputs {
		// 8 values in [-1, 1) from the input's hash: deterministic, exact in float32.
		sum := sha256.Sum256([]byte(in))
		vec := make([]float32, 8)
		for j := range vec {
			vec[j] = float32(int(sum[j])-128) / 128
		}
		var emb any = vec
		if req.EncodingFormat == "base64" { // little-endian float32s, as OpenAI sends them
			buf := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data[i] = oaiEmbedding{Object: "embedding", Index: i, Embedding: emb}
	}
	n := OpenAIWordCount(inputs...)
	c.writeJSON(http.StatusOK, map[string]any{
		"object": "list",
		"data":   data,
		"model":  req.Model,
		"usage":  map[string]int64{"prompt_tokens": n, "total_tokens": n},
	})
}

// ---- responses ----

type oaiResponse struct {
	ID                 string             `json:"id"`
	Object             string             `json:"object"`
	CreatedAt          int64              `json:"created_at"`
	Status             string             `json:"status"`
	Background         bool               `json:"background"`
	Error              any                `json:"error"`
	IncompleteDetails  any                `json:"incomplete_details"`
	Instructions       json.RawMessage    `json:"instructions"`
	MaxOutputTokens    any                `json:"max_output_tokens"`
	Model              string             `json:"model"`
	Output             []oaiOutputMessage `json:"output"`
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	PreviousResponseID any                `json:"previous_response_id"`
	Reasoning          map[string]any     `json:"reasoning"`
	Store              bool               `json:"store"`
	Temperature        float64            `json:"temperature"`
	Text               map[string]any     `json:"text"`
	ToolChoice         string             `json:"tool_choice"`
	Tools              []any              `json:"tools"`
	TopP               float64            `json:"top_p"`
	Truncation         string             `json:"truncation"`
	Usage              *oaiResponseUsage  `json:"usage"`
	User               any                `json:"user"`
	Metadata           map[string]string  `json:"metadata"`
}

type oaiOutputMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Status  string          `json:"status"`
	Content []oaiOutputText `json:"content"`
	Role    string          `json:"role"`
}

type oaiOutputText struct {
	Type        string `json:"type"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
	Text        string `json:"text"`
}

type oaiResponseUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// oaiResponseEvent is any streamed Responses API event; each kind sets its own fields.
type oaiResponseEvent struct {
	Type           string            `json:"type"`
	SequenceNumber int               `json:"sequence_number"`
	Response       *oaiResponse      `json:"response,omitempty"`
	ItemID         string            `json:"item_id,omitempty"`
	OutputIndex    *int              `json:"output_index,omitempty"`
	ContentIndex   *int              `json:"content_index,omitempty"`
	Item           *oaiOutputMessage `json:"item,omitempty"`
	Part           *oaiOutputText    `json:"part,omitempty"`
	Delta          *string           `json:"delta,omitempty"`
	Text           *string           `json:"text,omitempty"`
	Logprobs       *[]any            `json:"logprobs,omitempty"`
}

func (c *oaiCall) responses() {
	var req struct {
		Model        string          `json:"model"`
		Input        json.RawMessage `json:"input"`
		Instructions json.RawMessage `json:"instructions"`
		Stream       bool            `json:"stream"`
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	texts := append(oaiTexts(req.Instructions), oaiTexts(req.Input)...)
	reply, u := OpenAIReply(texts...), OpenAIExpectedUsage(texts...)
	gated := req.Model == OpenAIModelGated

	instructions := json.RawMessage("null")
	if len(bytes.TrimSpace(req.Instructions)) > 0 {
		instructions = req.Instructions
	}
	newResponse := func(status string, output []oaiOutputMessage, usage *oaiResponseUsage) *oaiResponse {
		return &oaiResponse{
			ID: c.id("resp_"), Object: "response", CreatedAt: oaiCreated, Status: status,
			Instructions: instructions, Model: req.Model, Output: output, ParallelToolCalls: true,
			Reasoning: map[string]any{"effort": nil, "summary": nil}, Store: true, Temperature: 1,
			Text: map[string]any{"format": map[string]string{"type": "text"}}, ToolChoice: "auto",
			Tools: []any{}, TopP: 1, Truncation: "disabled", Usage: usage, Metadata: map[string]string{},
		}
	}
	text := func(s string) oaiOutputText {
		return oaiOutputText{Type: "output_text", Annotations: []any{}, Logprobs: []any{}, Text: s}
	}
	msgID := c.id("msg_")
	message := func(status string, content ...oaiOutputText) *oaiOutputMessage {
		return &oaiOutputMessage{ID: msgID, Type: "message", Status: status, Content: append([]oaiOutputText{}, content...), Role: "assistant"}
	}
	usage := &oaiResponseUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	final := newResponse("completed", []oaiOutputMessage{*message("completed", text(reply))}, usage)

	if !req.Stream {
		if gated && !c.waitGate() {
			return
		}
		c.writeJSON(http.StatusOK, final)
		return
	}

	s := c.startSSE()
	seq := 0
	zero := 0
	send := func(ev oaiResponseEvent) bool {
		ev.SequenceNumber = seq
		seq++
		return s.send(ev.Type, ev)
	}
	inProgress := newResponse("in_progress", []oaiOutputMessage{}, nil)
	emptyPart, fullPart := text(""), text(reply)
	noLogprobs := []any{}
	if !send(oaiResponseEvent{Type: "response.created", Response: inProgress}) ||
		!send(oaiResponseEvent{Type: "response.in_progress", Response: inProgress}) ||
		!send(oaiResponseEvent{Type: "response.output_item.added", OutputIndex: &zero, Item: message("in_progress")}) ||
		!send(oaiResponseEvent{Type: "response.content_part.added", ItemID: msgID, OutputIndex: &zero, ContentIndex: &zero, Part: &emptyPart}) {
		return
	}
	for i, word := range oaiReplyWords(reply) {
		if i > 0 && gated && !c.waitGate() {
			return
		}
		if !send(oaiResponseEvent{Type: "response.output_text.delta", ItemID: msgID, OutputIndex: &zero, ContentIndex: &zero, Delta: &word, Logprobs: &noLogprobs}) {
			return
		}
	}
	_ = send(oaiResponseEvent{Type: "response.output_text.done", ItemID: msgID, OutputIndex: &zero, ContentIndex: &zero, Text: &reply, Logprobs: &noLogprobs}) &&
		send(oaiResponseEvent{Type: "response.content_part.done", ItemID: msgID, OutputIndex: &zero, ContentIndex: &zero, Part: &fullPart}) &&
		send(oaiResponseEvent{Type: "response.output_item.done", OutputIndex: &zero, Item: message("completed", fullPart)}) &&
		send(oaiResponseEvent{Type: "response.completed", Response: final})
	// The Responses API ends its stream without a [DONE] line.
}

// ---- models and files ----

type oaiModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (c *oaiCall) models() {
	c.record(nil)
	data := make([]oaiModel, len(oaiModels))
	for i, id := range oaiModels {
		data[i] = oaiModel{ID: id, Object: "model", Created: oaiCreated, OwnedBy: "system"}
	}
	c.writeJSON(http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (c *oaiCall) model(id string) {
	c.record(nil)
	for _, m := range oaiModels {
		if m == id {
			c.writeJSON(http.StatusOK, oaiModel{ID: id, Object: "model", Created: oaiCreated, OwnedBy: "system"})
			return
		}
	}
	c.fail(http.StatusNotFound, "invalid_request_error", "model_not_found", "model",
		fmt.Sprintf("The model '%s' does not exist", id))
}

// uploadFile reads the multipart body part by part, hashing the file as it
// streams, so any size works and the recorded hash proves it arrived intact.
func (c *oaiCall) uploadFile() {
	mr, err := c.r.MultipartReader()
	if err != nil {
		c.record(nil)
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "",
			"Invalid Content-Type header ("+c.r.Header.Get("Content-Type")+"), expected multipart/form-data.")
		return
	}
	var up oaiUpload
	sawFile := false
	for err == nil {
		var p *multipart.Part
		p, err = mr.NextPart()
		if err != nil {
			break
		}
		switch p.FormName() {
		case "file":
			h := sha256.New()
			up.bytes, err = io.Copy(h, p)
			up.filename, up.sha256, sawFile = p.FileName(), hex.EncodeToString(h.Sum(nil)), true
		case "purpose":
			var b []byte
			b, err = io.ReadAll(io.LimitReader(p, 1<<10))
			up.purpose = string(b)
		}
	}
	c.record(&up)
	if err != io.EOF {
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "", "Could not parse multipart form: "+err.Error())
		return
	}
	if !sawFile {
		c.fail(http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "file",
			"Missing required parameter: 'file'.")
		return
	}
	if up.purpose == "" {
		c.fail(http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "purpose",
			"Missing required parameter: 'purpose'.")
		return
	}
	c.writeJSON(http.StatusOK, map[string]any{
		"id": c.id("file-"), "object": "file", "bytes": up.bytes, "created_at": oaiCreated,
		"filename": up.filename, "purpose": up.purpose, "status": "processed",
		"expires_at": nil, "status_details": nil,
	})
}

func (c *oaiCall) deleteFile(id string) {
	c.record(nil)
	c.writeJSON(http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}

// ---- echo ----

// echo describes the request, or with ?echo=body sends its body back. The body
// is hashed as it streams; for ?echo=body it is spooled to a temporary file
// first, so the reply never depends on a proxy supporting full-duplex HTTP/1.
func (c *oaiCall) echo() {
	if c.r.URL.Query().Get("echo") != "body" {
		c.record(nil)
		rr := c.o.request(c.n)
		c.writeJSON(http.StatusOK, OpenAIEcho{
			Method: rr.Method, RequestURI: rr.RequestURI, Path: rr.Path, RawPath: rr.RawPath,
			RawQuery: rr.RawQuery, Host: rr.Host, Headers: rr.Header, ContentLength: rr.ContentLength,
			TransferEncoding: rr.TransferEncoding, BodyLen: rr.BodyLen, BodySHA256: rr.BodySHA256,
		})
		return
	}
	f, err := os.CreateTemp(c.o.tmpDir, "echo-*")
	if err == nil {
		defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
		_, err = io.Copy(f, c.body)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	c.record(nil)
	if err != nil {
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "", "echo: "+err.Error())
		return
	}
	rr := c.o.request(c.n)
	h := c.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(rr.BodyLen, 10))
	h.Set("X-Echo-Body-Sha256", rr.BodySHA256)
	c.w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(c.w, f)
}

// request returns the n-th (1-based) recorded request.
func (o *OpenAI) request(n int) RecordedRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reqs[n-1]
}

// ---- realtime (WebSocket) ----

// realtime completes a WebSocket handshake and then echoes raw bytes without
// parsing frames: enough to prove a proxy upgrades and relays the connection.
func (c *oaiCall) realtime() {
	c.record(nil)
	h := c.r.Header
	key := h.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 ||
		!oaiHeaderHas(h, "Connection", "upgrade") || !oaiHeaderHas(h, "Upgrade", "websocket") {
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "",
			"Expected a WebSocket upgrade request (Upgrade: websocket, Connection: Upgrade, a valid Sec-WebSocket-Key).")
		return
	}
	conn, brw, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		c.fail(http.StatusInternalServerError, "server_error", "", "", "hijack: "+err.Error())
		return
	}
	if !c.o.track(conn) {
		_ = conn.Close()
		return
	}
	defer c.o.untrack(conn)

	sum := sha1.Sum([]byte(key + oaiWebSocketGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n"
	if proto, _, _ := strings.Cut(h.Get("Sec-WebSocket-Protocol"), ","); strings.TrimSpace(proto) != "" {
		resp += "Sec-WebSocket-Protocol: " + strings.TrimSpace(proto) + "\r\n" // accept the first offered
	}
	resp += "X-Request-Id: " + c.id("req_") + "\r\nSet-Cookie: " + oaiCookie + "\r\n\r\n"
	if _, err := brw.WriteString(resp); err != nil || brw.Flush() != nil {
		return
	}
	_, _ = io.Copy(conn, brw.Reader) // brw.Reader first returns what the server already buffered
	select {
	case c.o.wsClosed <- struct{}{}:
	default:
	}
}

// oaiHeaderHas reports whether a comma-separated header lists token (case-insensitive).
func oaiHeaderHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// track registers a hijacked connection so that cleanup closes it; it
// reports false when the server is already closing.
func (o *OpenAI) track(conn net.Conn) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.conns[conn] = struct{}{}
	return true
}

func (o *OpenAI) untrack(conn net.Conn) {
	o.mu.Lock()
	delete(o.conns, conn)
	o.mu.Unlock()
	_ = conn.Close()
}
