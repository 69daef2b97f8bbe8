package mockopenai

import (
	"io"
	"net/http"
	"os"
	"strconv"
)

// Echo is the JSON body the /v1/echo/... route answers with.
type Echo struct {
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

// echo describes the request, or with ?echo=body sends its body back. The body
// is hashed as it streams; for ?echo=body it is spooled to a temporary file
// first, so the reply never depends on a proxy supporting full-duplex HTTP/1.
func (c *call) echo() {
	if c.r.URL.Query().Get("echo") != "body" {
		c.record(nil)
		rr := c.o.request(c.n)
		c.writeJSON(http.StatusOK, Echo{
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
