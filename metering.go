package aiproxy

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/meter"
)

// maxInspectedBody bounds how much of a request body is read to learn its
// model and whether it streams. Larger bodies are proxied uninspected: their
// usage still counts, with the model the response names.
const maxInspectedBody = 16 << 20

// meteredRequest is what the proxy learns about one request for counting.
type meteredRequest struct {
	kind  meter.Kind
	model string
	strip bool // include_usage was injected: hide its effects from the client
	start time.Time
}

// inspectRequest reads a JSON body of the API kinds that report usage, learns
// its model, and asks a stream for usage when the client did not. It returns
// the request to proxy, whose body is restored (and maybe rewritten).
func inspectRequest(r *http.Request) (*http.Request, meteredRequest) {
	mr := meteredRequest{kind: meter.KindOther, start: time.Now()}
	// Only a POST creates a completion; a GET of the same path lists
	// stored ones, whose answers carry no usage of their own.
	if r.Method == http.MethodPost {
		mr.kind = meter.KindOf(r.URL.Path)
	}
	if mr.kind == meter.KindOther || r.Body == nil || r.Body == http.NoBody ||
		r.ContentLength > maxInspectedBody || !isJSON(r.Header.Get("Content-Type")) {
		return r, mr
	}
	body, err := readBody(r.Body, r.ContentLength)
	if err != nil || len(body) > maxInspectedBody {
		// Give the upstream everything, read or not, and count blind.
		return withBody(r, io.MultiReader(bytes.NewReader(body), r.Body), -1), mr
	}
	info, err := meter.InspectRequest(body)
	if err != nil {
		return withBody(r, bytes.NewReader(body), int64(len(body))), mr
	}
	mr.model = info.Model
	if info.Stream && !info.IncludeUsage && (mr.kind == meter.KindChat || mr.kind == meter.KindCompletion) {
		if injected, ok := meter.InjectIncludeUsage(body); ok {
			body, mr.strip = injected, true
		}
	}
	return withBody(r, bytes.NewReader(body), int64(len(body))), mr
}

// readBody reads at most maxInspectedBody+1 bytes, in one allocation when
// the length is known.
func readBody(body io.Reader, length int64) ([]byte, error) {
	if length < 0 {
		return io.ReadAll(io.LimitReader(body, maxInspectedBody+1))
	}
	buf := make([]byte, length)
	n, err := io.ReadFull(body, buf)
	return buf[:n], err
}

// withBody returns a shallow copy of r reading body, of the given length
// (-1: unknown, sent chunked).
func withBody(r *http.Request, body io.Reader, length int64) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = io.NopCloser(body)
	r2.ContentLength = length
	if length >= 0 {
		r2.TransferEncoding = nil
	}
	return r2
}

func isJSON(contentType string) bool {
	if contentType == "" {
		return true // SDKs always set it; curl users often forget
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || mt == "text/json")
}

// proxyWriter sits between Caddy's reverse_proxy and the client. It records
// whether the response has started (so a failure can still become an error
// answer), puts our CORS headers in place of the provider's, drops the
// provider's cookies, and feeds every byte to the usage meter on the way. It embeds
// Caddy's wrapper, whose Unwrap keeps flushing and hijacking (SSE,
// WebSocket) working through http.ResponseController.
type proxyWriter struct {
	*caddyhttp.ResponseWriterWrapper
	meter       *meter.Meter
	cors        *corsPolicy // nil: CORS handling is off
	corsOrigin  string      // the Allow-Origin value for this request
	status      int
	wroteHeader bool
}

func (w *proxyWriter) WriteHeader(status int) {
	// 1xx are interim: the final status is still to come (but 101 is final).
	if status >= 200 || status == http.StatusSwitchingProtocols {
		if !w.wroteHeader {
			w.status = status
			w.meter.Start(status, w.Header().Get("Content-Type"))
			if w.cors != nil {
				w.cors.override(w.Header(), w.corsOrigin)
			}
			// A provider's cookie (Cloudflare's __cf_bm at OpenAI) is
			// for its own site, and all users share it through the
			// gateway: it would only let the provider tell them apart.
			// Here rather than in a header op: those skip 101 answers.
			delete(w.Header(), "Set-Cookie")
		}
		w.wroteHeader = true
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *proxyWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	out := w.meter.Write(p)
	if len(out) > 0 {
		if _, err := w.ResponseWriterWrapper.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// ReadFrom sends everything through Write, so no byte escapes the meter.
func (w *proxyWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{w}, r)
}

type writerOnly struct{ io.Writer }

// finish sends what the meter still holds, once the proxy is done.
func (w *proxyWriter) finish() {
	if out := w.meter.Finish(); len(out) > 0 {
		_, _ = w.ResponseWriterWrapper.Write(out)
	}
}

// record counts a finished request in the usage statistics and metrics.
func (h *Handler) record(user keystore.User, mr meteredRequest, w *proxyWriter) {
	if w.status == 0 {
		// Cut off before any answer: Caddy's proxy aborted the response.
		w.status = statusClientClosed
	}
	u := w.meter.Usage()
	model := usageModel(mr.model, u.Model, w.status)
	c := keystore.UsageCounts{
		Requests:         1,
		PromptTokens:     u.PromptTokens,
		CompletionTokens: u.CompletionTokens,
		TotalTokens:      u.TotalTokens,
		CachedTokens:     u.CachedTokens,
		ReasoningTokens:  u.ReasoningTokens,
	}
	if !u.Found && mr.kind != meter.KindOther && w.status >= 200 && w.status < 300 {
		// The answer should have carried usage but did not (a client gone
		// mid-stream, a provider that omits it): count the request, estimate
		// the completion from the content chunks seen, and say so.
		c.EstimatedRequests = 1
		c.CompletionTokens = u.ContentChunks
		c.TotalTokens = u.ContentChunks
	}
	h.usage.Add(keystore.UsageKey{User: user.Name, UserID: user.ID, Model: model, Date: usageDate(mr.start)}, c)
	h.metrics.observe(user.Name, model, mr.kind.String(), w.status, tokenCounts{
		prompt: c.PromptTokens, completion: c.CompletionTokens, cached: c.CachedTokens, reasoning: c.ReasoningTokens,
	})
}

// The models usage is counted under when it cannot be the request's own.
const (
	modelFailed = "-"      // a failed request (not 2xx)
	modelNone   = "(none)" // a successful request that names no model
)

// maxModelLen bounds a model name kept in statistics and metric labels.
const maxModelLen = 128

// usageModel is the model a request is counted under: the one the client
// asked for (the usual way to read bills), else the one the answer names.
// Failed requests count under "-": the name is the client's, unchecked by
// the provider, and would let anyone mint rows and metric series at will.
// Successful requests that name no model (a model list, a file upload)
// count under "(none)", apart from the failures.
func usageModel(requested, answered string, status int) string {
	model := requested
	if model == "" {
		model = answered
	}
	switch {
	case status < 200 || status >= 300:
		return modelFailed
	case model == "":
		return modelNone
	}
	if len(model) > maxModelLen {
		model = model[:maxModelLen]
	}
	return model
}

// today caches the current UTC date string, so that counting a request
// formats no date.
var today atomic.Pointer[cachedDate]

type cachedDate struct {
	start, end time.Time // the day's bounds
	date       string
}

// usageDate returns t's UTC date as YYYY-MM-DD.
func usageDate(t time.Time) string {
	if d := today.Load(); d != nil && !t.Before(d.start) && t.Before(d.end) {
		return d.date
	}
	start := t.UTC().Truncate(24 * time.Hour)
	d := &cachedDate{start: start, end: start.Add(24 * time.Hour), date: start.Format(time.DateOnly)}
	today.Store(d)
	return d.date
}
