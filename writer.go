package aiproxy

// writer.go: the response writer between Caddy's reverse_proxy and the
// client, which meters the answer on its way through.

import (
	"io"
	"net/http"
	"time"

	"github.com/aiproxy/aiproxy/meter"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// proxyWriter sits between Caddy's reverse_proxy and the client. It records
// whether the response has started (so a failure can still become an error
// answer), puts our CORS headers in place of the provider's, drops the
// provider's cookies, and feeds every byte to the usage meter on the way. It embeds
// Caddy's wrapper, whose Unwrap keeps flushing and hijacking (SSE,
// WebSocket) working through http.ResponseController.
type proxyWriter struct {
	*caddyhttp.ResponseWriterWrapper
	meter       *meter.Meter
	cors        *corsPolicy   // nil: CORS handling is off
	corsOrigin  string        // the Allow-Origin value for this request
	spend       *admission    // the key's limits: their headers replace the provider's
	models      *modelsFilter // the key's model list: a list answer is filtered
	status      int
	wroteHeader bool

	// nextTry, when set, is asked at a failed answer (see retryable)
	// whether the request goes again: true drops the answer, which then
	// never reaches the client. dropped says it was, retryAfter what the
	// provider asked for.
	nextTry    func() bool
	dropped    bool
	retryAfter time.Duration
}

func (w *proxyWriter) WriteHeader(status int) {
	if w.dropped {
		return
	}
	// 1xx are interim: the final status is still to come (but 101 is final).
	if status >= 200 || status == http.StatusSwitchingProtocols {
		if !w.wroteHeader && w.nextTry != nil && retryable(status) {
			w.status, w.retryAfter = status, retryAfter(w.Header())
			if w.nextTry() {
				// Nothing reaches the client: the request goes again.
				w.dropped = true
				return
			}
		}
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
			if w.spend != nil {
				dropProviderRateLimits(w.Header())
				setRateLimitHeaders(w.Header(), w.spend.Allowance, w.spend.verdict.Window)
			}
		}
		w.wroteHeader = true
		if w.models != nil && status != http.StatusSwitchingProtocols {
			w.models.status = status // written, filtered, by finish
			return
		}
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *proxyWriter) Write(p []byte) (int, error) {
	if w.dropped {
		return len(p), nil
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	out := w.meter.Write(p)
	defer w.meter.Sent() // out's buffer is lent to another stream's next chunk
	if w.models != nil {
		w.models.write(out)
		return len(p), nil
	}
	if len(out) > 0 {
		if _, err := w.ResponseWriterWrapper.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// FlushError flushes what was written to the client, except for an answer
// that is dropped or held back to be filtered: a flush would send its
// status and headers. Caddy's proxy flushes answers of unknown length
// (any a provider gzips) as soon as their header is written.
func (w *proxyWriter) FlushError() error {
	if w.dropped || w.models != nil || !w.wroteHeader {
		return nil
	}
	return http.NewResponseController(w.ResponseWriterWrapper).Flush()
}

// Flush is FlushError for callers that use http.Flusher.
func (w *proxyWriter) Flush() { _ = w.FlushError() }

// ReadFrom sends everything through Write, so no byte escapes the meter.
func (w *proxyWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{w}, r)
}

type writerOnly struct{ io.Writer }

// finish sends what the meter still holds, once the proxy is done.
func (w *proxyWriter) finish() {
	if w.dropped {
		return
	}
	out := w.meter.Finish()
	if w.models != nil {
		if w.wroteHeader {
			w.models.write(out)
			w.models.finish(w.ResponseWriterWrapper)
		}
		return
	}
	if len(out) > 0 {
		_, _ = w.ResponseWriterWrapper.Write(out)
	}
}
