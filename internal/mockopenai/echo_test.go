package mockopenai

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestEcho(t *testing.T) {
	o := New(t, testKey)
	payload := bytes.Repeat([]byte{0, 1, 2, 0xff}, 300_000)
	sum := sha256.Sum256(payload)

	// Chunked upload (unknown length), odd path encoding, a query.
	req, _ := http.NewRequest(http.MethodPut, o.URL+"/openai/v1/echo/a%2Fb/c?x=1&y=%20", io.NopCloser(bytes.NewReader(payload)))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("X-Custom", "kept")
	resp, err := o.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var echo Echo
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if echo.Method != "PUT" || echo.Path != "/openai/v1/echo/a/b/c" || echo.RawPath != "/openai/v1/echo/a%2Fb/c" ||
		echo.RawQuery != "x=1&y=%20" || echo.RequestURI != "/openai/v1/echo/a%2Fb/c?x=1&y=%20" ||
		echo.ContentLength != -1 || echo.BodyLen != int64(len(payload)) || echo.BodySHA256 != hex.EncodeToString(sum[:]) ||
		echo.Headers.Get("X-Custom") != "kept" || echo.Host != strings.TrimPrefix(o.URL, "http://") {
		t.Errorf("echo = %+v", echo)
	}

	req, _ = http.NewRequest(http.MethodPost, o.URL+"/v1/echo/bytes?echo=body", bytes.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err = o.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, payload) || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		resp.Header.Get("X-Echo-Body-Sha256") != hex.EncodeToString(sum[:]) {
		t.Errorf("echo=body: %d bytes, err %v, headers %v", len(got), err, resp.Header)
	}
	if rr := o.LastRequest(); rr.Body != nil || rr.ContentLength != int64(len(payload)) || rr.BodyLen != int64(len(payload)) {
		t.Errorf("recorded large body: Body %d bytes, ContentLength %d", len(rr.Body), rr.ContentLength)
	}
}
