package aiproxy_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDroppedChunkedErrorStaysHidden: a failed answer of unknown length
// (chunked) that the request goes again past never reaches the client,
// status, headers or cookie: Caddy's flush of it stops at the gateway.
func TestDroppedChunkedErrorStaysHidden(t *testing.T) {
	s := startSite(t, siteOptions{})
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "__cf_bm=provider-tracking; Path=/")
		w.Header().Set("X-Provider-Leak", "from-the-dropped-503")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.(http.Flusher).Flush() // chunked
		fmt.Fprint(w, `{"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}`)
	}))
	defer broken.Close()
	backup := withBackupHost(t, s, broken.URL)
	key := s.register("ann")
	code, hdr, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("llama-2-7b", "hi")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	if code != 200 || len(backup.Requests()) != 1 {
		t.Fatalf("%d %s (backup got %d)", code, out, len(backup.Requests()))
	}
	if hdr.Get("X-Provider-Leak") != "" || hdr.Get("Set-Cookie") != "" {
		t.Fatalf("the dropped 503's headers reached the client: %v", hdr)
	}
}

// TestLastErrorReachesClientWhenNoTryIsLeft: when a failed answer finds no
// try left to go to (the other key was set aside meanwhile), it reaches
// the client as the provider sent it, not an empty 200.
func TestLastErrorReachesClientWhenNoTryIsLeft(t *testing.T) {
	s := startSite(t, siteOptions{})
	release := make(chan struct{})
	var n atomic.Int64
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch n.Add(1) {
		case 1: // the first request's try: held, then 503
			<-release
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}`)
		default: // the other key: refused, so set aside
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}`)
		}
	}))
	defer prov.Close()
	s.load(siteOptions{extra: fmt.Sprintf("host keys.test {\n\t\t\tbase_url %s\n\t\t\tkey sk-one sk-two\n\t\t}", prov.URL)})
	key := s.register("ann")

	type result struct {
		code int
		body string
		err  error
	}
	first := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Host-Final", "keys.test")
		res, err := s.client.Do(req)
		if err != nil {
			first <- result{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		first <- result{res.StatusCode, string(b), err}
	}()
	for n.Load() < 1 {
		// wait for the first try to reach the provider
	}
	code, _, _ := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json", "X-Host-Final", "keys.test")
	if code != http.StatusUnauthorized {
		t.Fatalf("second request: %d, want the provider's 401", code)
	}
	close(release)
	r := <-first
	if r.err != nil || r.code != http.StatusServiceUnavailable {
		t.Fatalf("first request: status %d, body %q, err %v; want the provider's 503", r.code, r.body, r.err)
	}
}

// TestDroppedGzipErrorStaysHidden: the same for a gzipped error, both as it
// passes compressed, with its Content-Length (the client accepts gzip),
// and as Go's transport decompresses it into an answer of unknown length
// (the client does not).
func TestDroppedGzipErrorStaysHidden(t *testing.T) {
	s := startSite(t, siteOptions{})
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		fmt.Fprint(zw, `{"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}`)
		zw.Close()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		w.Header().Set("X-Provider-Leak", "from-the-dropped-503")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(buf.Bytes())
	}))
	defer broken.Close()
	backup := withBackupHost(t, s, broken.URL)
	key := s.register("ann")
	for i, accept := range []string{"gzip", "identity"} {
		code, hdr, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("llama-2-7b", "hi")),
			"Authorization", "Bearer "+key, "Content-Type", "application/json", "Accept-Encoding", accept)
		// The backup answers plain JSON: none of the dropped answer's
		// headers (its Content-Encoding, its Content-Length) go with it.
		if code != 200 || len(backup.Requests()) != i+1 || !json.Valid(out) || hdr.Get("Content-Encoding") != "" {
			t.Fatalf("Accept-Encoding %s: %d %q, Content-Encoding %q (backup got %d)",
				accept, code, out, hdr.Get("Content-Encoding"), len(backup.Requests()))
		}
		if hdr.Get("X-Provider-Leak") != "" {
			t.Fatalf("Accept-Encoding %s: the dropped 503's headers reached the client: %v", accept, hdr)
		}
	}
}
