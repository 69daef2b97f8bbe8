package aiproxy

// writer.go: the response writer between Caddy's reverse_proxy and the
// client, which meters the answer on its way through.

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aiproxy/aiproxy/meter"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// proxyWriter sits between Caddy's reverse_proxy and the client. It records
// whether the response has started (so a failure can still become an error
// answer), puts our CORS headers in place of the provider's, drops the
// provider's cookies, and feeds every byte to the usage meter on the way:
// a gzipped answer passes as it came, and the meter reads it inflated
// (inflate.go). It embeds
// Caddy's wrapper, whose Unwrap keeps flushing and hijacking (SSE,
// WebSocket) working through http.ResponseController.
type proxyWriter struct {
	*caddyhttp.ResponseWriterWrapper
	meter       *meter.Meter
	cors        *corsPolicy   // nil: CORS handling is off
	corsOrigin  string        // the Allow-Origin value for this request
	spend       *admission    // the key's limits: their headers replace the provider's
	models      *modelsFilter // the key's model list: a list answer is filtered
	inflate     *inflater     // a gzipped answer's: nil for others
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
			w.startMeter(status)
			if status != http.StatusSwitchingProtocols {
				// The answer passes gzipped or not by the client's
				// Accept-Encoding, which a cache must then key on.
				w.Header().Add("Vary", "Accept-Encoding")
			}
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

// startMeter starts metering the answer, by its status, type and
// encoding. A gzipped answer the meter reads is inflated for it; one in
// another encoding (br, zstd: never asked for) cannot be read, and passes
// unmetered.
func (w *proxyWriter) startMeter(status int) {
	contentType := w.Header().Get("Content-Type")
	gzipped := false
	switch enc := w.Header()["Content-Encoding"]; {
	case len(enc) == 0 || len(enc) == 1 && strings.EqualFold(enc[0], "identity"):
	case len(enc) == 1 && (strings.EqualFold(enc[0], "gzip") || strings.EqualFold(enc[0], "x-gzip")):
		gzipped = true
	default:
		contentType = ""
	}
	w.meter.Start(status, contentType)
	if gzipped && w.meter.Mode() != meter.ModePass {
		w.inflate = startInflater(w.meter, maxInflated)
	}
}

func (w *proxyWriter) Write(p []byte) (int, error) {
	if w.dropped {
		return len(p), nil
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	out := p
	if w.inflate == nil { // an inflated answer's meter is its goroutine's
		out = w.meter.Write(p)
		defer w.meter.Sent() // out's buffer is lent to another stream's next chunk
	}
	if w.models != nil {
		w.models.write(out)
		return len(p), nil
	}
	if len(out) > 0 {
		if _, err := w.ResponseWriterWrapper.Write(out); err != nil {
			if w.inflate != nil {
				w.inflate.write(p) // billed all the same: the usage may be in it
			}
			return 0, err
		}
	}
	if w.inflate != nil {
		// After the client has them, so that inflating this chunk
		// overlaps with sending it.
		w.inflate.write(p)
	}
	return len(p), nil
}

// FlushError flushes what was written to the client, except for an answer
// that is dropped or held back to be filtered: a flush would send its
// status and headers. Caddy's proxy flushes answers of unknown length
// (any Go's transport decompresses) as soon as their header is written.
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
	if w.inflate != nil {
		w.inflate.close()
		// The client has every byte already, as the provider sent them.
		_ = w.meter.Finish()
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

// usage is what the meter learnt of the answer, once a gzipped answer's
// inflating has ended.
func (w *proxyWriter) usage() meter.Usage {
	if w.inflate != nil {
		w.inflate.close()
	}
	return w.meter.Usage()
}
