package aiproxy

import (
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

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
// the request to proxy, whose body is restored (and maybe spliced), and the
// body it holds in memory for that, if any: the caller releases it when the
// request is done, in case the upstream never read it.
//
// A body is held once, within budget: the splice is sent as slices of it,
// and it is let go as soon as it is sent. A body the budget has no room for
// is proxied as it comes, uninspected, like one over maxInspectedBody.
func inspectRequest(r *http.Request, budget *inspectBudget) (*http.Request, meteredRequest, *heldBody) {
	mr := meteredRequest{kind: meter.KindOther, start: time.Now()}
	// Only a POST creates a completion; a GET of the same path lists
	// stored ones, whose answers carry no usage of their own.
	if r.Method == http.MethodPost {
		mr.kind = meter.KindOf(r.URL.Path)
	}
	if mr.kind == meter.KindOther || r.Body == nil || r.Body == http.NoBody ||
		r.ContentLength > maxInspectedBody || !isJSON(r.Header.Get("Content-Type")) {
		return r, mr, nil
	}
	body, reserved, whole := readBody(r.Body, r.ContentLength, budget)
	if !whole {
		if reserved == 0 {
			return r, mr, nil // nothing read: no room in the budget
		}
		// Give the upstream everything, read or not, and count blind.
		held := newHeldBody([][]byte{body}, r.Body, budget, reserved)
		return withBody(r, held, -1), mr, held
	}
	pieces := [][]byte{body}
	if info, err := meter.InspectRequest(body); err == nil {
		// Cut now: a huge model string is let go at once.
		mr.model = cleanModel(info.Model)
		if info.Stream && !info.IncludeUsage && (mr.kind == meter.KindChat || mr.kind == meter.KindCompletion) {
			if spliced, ok := meter.IncludeUsagePieces(body); ok {
				pieces, mr.strip = spliced, true
			}
		}
	}
	held := newHeldBody(pieces, nil, budget, reserved)
	return withBody(r, held, held.size()), mr, held
}

// readBody reads a body of the given length (-1: unknown) whole, in one
// allocation when the length is known, with the budget's leave. whole is
// false when it could not: no room left in the budget, a body longer than
// maxInspectedBody, or a read error. body is what was read, and reserved
// the bytes of budget taken for it (0 when nothing was read).
func readBody(r io.Reader, length int64, budget *inspectBudget) (body []byte, reserved int64, whole bool) {
	if length >= 0 {
		if !budget.reserve(length) {
			return nil, 0, false
		}
		buf := make([]byte, length)
		n, err := io.ReadFull(r, buf)
		return buf[:n], length, err == nil
	}
	// Unknown length: grow the buffer, taking budget as it grows.
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			c := min(max(2*cap(buf), 64<<10), maxInspectedBody+1)
			if !budget.reserve(int64(c - cap(buf))) {
				return buf, reserved, false
			}
			reserved += int64(c - cap(buf))
			buf = append(make([]byte, 0, c), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case len(buf) > maxInspectedBody:
			return buf, reserved, false
		case err == io.EOF:
			return buf, reserved, true
		case err != nil:
			return buf, reserved, false
		}
	}
}

// withBody returns a shallow copy of r reading body, of the given length
// (-1: unknown, sent chunked).
func withBody(r *http.Request, body io.ReadCloser, length int64) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = body
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
	date := usageDate(mr.start)
	model := usageModel(mr.model, u.Model, w.status)
	if model != unknownModel {
		model = h.models.Model(user.ID, date, model)
	}
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
	h.usage.Add(keystore.UsageKey{User: user.Name, UserID: user.ID, Model: model, Date: date}, c)
	h.metrics.observe(user.Name, model, mr.kind.String(), w.status, tokenCounts{
		prompt: c.PromptTokens, completion: c.CompletionTokens, cached: c.CachedTokens, reasoning: c.ReasoningTokens,
	})
}

// maxModelLen bounds a model name kept in statistics and metric labels, in
// bytes.
const maxModelLen = 128

// unknownModel is the model of failed requests and of answers that name
// none when the request did not either.
const unknownModel = "-"

// usageModel is the model a request is counted under: the one the answer
// names, which the provider chose (e.g. gpt-4o-mini-2024-07-18 for
// gpt-4o-mini), else the one the client asked for. Failed requests count
// under unknownModel: the name is the client's, unchecked by the provider,
// and would let anyone mint rows and metric series at will. Successful ones
// are bounded per user and day by the caller (usage.ModelBound).
func usageModel(requested, answered string, status int) string {
	model := answered
	if model == "" {
		model = requested
	}
	if model == "" || status < 200 || status >= 300 {
		return unknownModel
	}
	return cleanModel(model)
}

// cleanModel returns model as valid UTF-8, each run of invalid bytes
// replaced by U+FFFD, cut on a character boundary to at most maxModelLen
// bytes: Prometheus refuses invalid UTF-8 in a label, and usage rows are
// JSON. A cut name is a copy, so it does not keep a long body's string
// alive in the statistics.
func cleanModel(model string) string {
	if len(model) > maxModelLen+utf8.UTFMax {
		// What lies further is cut anyway: a replacement only lengthens
		// what precedes it.
		model = model[:maxModelLen+utf8.UTFMax]
	}
	model = strings.ToValidUTF8(model, "\uFFFD")
	if len(model) <= maxModelLen {
		return model
	}
	cut := maxModelLen
	for !utf8.RuneStart(model[cut]) {
		cut--
	}
	return strings.Clone(model[:cut])
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
