package aiproxy

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/aiproxy/aiproxy/meter"
)

// clientGone is a ResponseWriter whose client left: every write fails.
type clientGone struct{ *httptest.ResponseRecorder }

func (clientGone) Write([]byte) (int, error) { return 0, errors.New("client gone") }

// TestLastChunkMeteredWhenTheClientLeaves: the chunk whose write to the
// client fails is metered all the same, gzipped or not: it may carry the
// usage the provider bills.
func TestLastChunkMeteredWhenTheClientLeaves(t *testing.T) {
	answer := []byte(`{"id":"c1","object":"chat.completion","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(answer)
	zw.Close()
	for _, gz := range []bool{false, true} {
		w := &proxyWriter{
			ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: clientGone{httptest.NewRecorder()}},
			meter:                 meter.New(meter.KindChat, false),
		}
		w.Header().Set("Content-Type", "application/json")
		body := answer
		if gz {
			w.Header().Set("Content-Encoding", "gzip")
			body = zipped.Bytes()
		}
		w.WriteHeader(http.StatusOK)
		if _, err := w.Write(body); err == nil {
			t.Fatal("a write to a client that left succeeded")
		}
		if u := w.usage(); !u.Found || u.PromptTokens != 7 || u.CompletionTokens != 3 {
			t.Errorf("gzipped %v: usage %+v, want 7 prompt and 3 completion tokens", gz, u)
		}
	}
}
