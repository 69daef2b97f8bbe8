package aiproxy_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
	"github.com/aiproxy/aiproxy/internal/netfault"
)

func newHost(t *testing.T, key string) *mockopenai.Server {
	return mockopenai.New(t, key)
}

// echoed is what the mock's /v1/echo route reports about a request.
type echoed struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	RawPath    string              `json:"raw_path"`
	RawQuery   string              `json:"raw_query"`
	Host       string              `json:"host"`
	Headers    map[string][]string `json:"headers"`
	BodyLen    int64               `json:"body_len"`
	BodySHA256 string              `json:"body_sha256"`
}

func decodeEcho(t *testing.T, body []byte) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("echo body: %v: %s", err, body)
	}
	return e
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestProxyTransparency: method, path, query and body reach the provider
// untouched, for every kind of body OpenAI clients send.
func TestProxyTransparency(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("transparent")
	auth := []string{"Authorization", "Bearer " + key}

	binary := make([]byte, 256*1024)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	cases := []struct {
		method, path, query string
		body                []byte
		ctype               string
	}{
		{"POST", "/v1/echo/chat", "a=1&b=%2F&c=x+y", []byte(`{"model":"m","messages":[]}`), "application/json"},
		{"PUT", "/v1/echo/binary", "", binary, "application/octet-stream"},
		{"DELETE", "/v1/echo/files/file-abc", "", nil, ""},
		{"GET", "/v1/echo/models", "limit=2&order=desc", nil, ""},
		{"PATCH", "/v1/echo/a%2Fb/c", "", []byte("x"), "text/plain"},
		{"POST", "/openai/v1/echo/groq-style", "", []byte(`{}`), "application/json"},
		{"POST", "/v2/echo/next-version", "", []byte(`{}`), "application/json"},
	}
	for _, c := range cases {
		t.Run(c.method+c.path, func(t *testing.T) {
			url := c.path
			if c.query != "" {
				url += "?" + c.query
			}
			var body io.Reader
			if c.body != nil {
				body = bytes.NewReader(c.body)
			}
			hdr := append([]string{}, auth...)
			if c.ctype != "" {
				hdr = append(hdr, "Content-Type", c.ctype)
			}
			code, _, out := s.request(c.method, url, body, hdr...)
			if strings.HasPrefix(c.path, "/v2/") {
				// The mock serves /v1 only: its 404 proves the path went through.
				if code != 404 || !bytes.Contains(out, []byte("/v2/echo/next-version")) {
					t.Fatalf("/v2 path: %d %s", code, out)
				}
				return
			}
			if code != 200 {
				t.Fatalf("%d %s", code, out)
			}
			e := decodeEcho(t, out)
			if e.Method != c.method || e.RawQuery != c.query || e.BodyLen != int64(len(c.body)) || e.BodySHA256 != sha(c.body) {
				t.Fatalf("upstream saw %+v", e)
			}
			wantPath := c.path
			gotPath := e.Path
			if e.RawPath != "" {
				gotPath = e.RawPath
			}
			if gotPath != wantPath {
				t.Fatalf("upstream path %q, want %q", gotPath, wantPath)
			}
		})
	}
}

// TestProxyLargeAndMultipartBodies: a multipart upload and a large body pass
// byte for byte.
func TestProxyLargeAndMultipartBodies(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("uploader")

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("purpose", "fine-tune")
	fw, _ := mw.CreateFormFile("file", "train.jsonl")
	file := bytes.Repeat([]byte(`{"messages":[{"role":"user","content":"q"}]}`+"\n"), 5000)
	_, _ = fw.Write(file)
	_ = mw.Close()
	code, _, out := s.request("POST", "/v1/files", &form,
		"Authorization", "Bearer "+key, "Content-Type", mw.FormDataContentType())
	if code != 200 {
		t.Fatalf("upload: %d %s", code, out)
	}
	if got := s.upstream.LastRequest().UploadSHA256; got != sha(file) {
		t.Fatalf("uploaded file arrived with sha %s, want %s", got, sha(file))
	}

	// 64 MiB generated on the fly, sent chunked (no Content-Length).
	const size = 64 << 20
	h := sha256.New()
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for sent := 0; sent < size; sent += len(chunk) {
			h.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	code, _, out = s.request("POST", "/v1/echo/large", pr, "Authorization", "Bearer "+key)
	if code != 200 {
		t.Fatalf("large body: %d %s", code, out)
	}
	e := decodeEcho(t, out)
	if e.BodyLen != size || e.BodySHA256 != hex.EncodeToString(h.Sum(nil)) {
		t.Fatalf("large body arrived as %d bytes sha %s", e.BodyLen, e.BodySHA256)
	}
}

// TestProxyHeaderHygiene: the provider sees its own key and none of the
// client's credentials, the selector, cookies or forwarding headers.
func TestProxyHeaderHygiene(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("hygiene")
	for _, keyHeader := range [][]string{
		{"Authorization", "Bearer " + key},
		{"Api-Key", key},
		{"X-Api-Key", key},
	} {
		t.Run(keyHeader[0], func(t *testing.T) {
			hdr := append([]string{
				// The default upstream, selected by its registered name.
				"X-Host-Final", strings.TrimPrefix(s.upstream.URL, "http://"),
				"Cookie", "session=secret",
				"X-Forwarded-For", "10.1.2.3",
				"X-Forwarded-Host", "evil",
				"X-Forwarded-Proto", "https",
				"Forwarded", "for=10.1.2.3",
				"Via", "1.1 someproxy",
				"X-Real-Ip", "10.1.2.3",
				"OpenAI-Beta", "assistants=v2",
			}, keyHeader...)
			code, _, out := s.request("POST", "/v1/echo/h", strings.NewReader("{}"), hdr...)
			if code != 200 {
				t.Fatalf("%d %s", code, out)
			}
			got := s.upstream.LastRequest().Header
			if a := got.Get("Authorization"); a != "Bearer "+upstreamKey {
				t.Errorf("Authorization upstream = %q", a)
			}
			for _, name := range []string{"Api-Key", "X-Api-Key", "X-Host-Final", "Cookie",
				"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "Via", "X-Real-Ip"} {
				if v := got.Values(name); len(v) > 0 {
					t.Errorf("%s reached the provider: %q", name, v)
				}
			}
			if got.Get("OpenAI-Beta") != "assistants=v2" {
				t.Errorf("OpenAI-Beta was not passed through")
			}
			if strings.Contains(fmt.Sprint(got), key) {
				t.Errorf("the user key reached the provider")
			}
		})
	}
}

// TestProxyStreamsChunkByChunk: each SSE event reaches the client before the
// provider has sent the next one.
func TestProxyStreamsChunkByChunk(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("streamer")
	req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(
		`{"model":"gated","stream":true,"messages":[{"role":"user","content":"one two three"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(res.Body)
	readEvent := func() string {
		t.Helper()
		var ev strings.Builder
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("reading stream: %v (so far %q)", err, ev.String())
			}
			if line == "\n" {
				return ev.String()
			}
			ev.WriteString(line)
		}
	}
	// The gated mock holds every content chunk after the first until the
	// test releases it: receiving an event before releasing the next
	// proves nothing buffers the stream.
	events := 0
	for {
		ev := readEvent()
		events++
		if strings.Contains(ev, "[DONE]") {
			break
		}
		s.upstream.Release()
	}
	if events < 5 {
		t.Fatalf("only %d events", events)
	}
}

// TestProxyWebSocket: a Realtime-style WebSocket upgrade passes through and
// carries bytes both ways.
func TestProxyWebSocket(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("realtime")
	wsRoundTrip(t, s, "Authorization: Bearer "+key)

	// Browsers cannot set headers on a WebSocket: the Realtime API takes
	// the key as a subprotocol. The provider gets its own key in the
	// Authorization header instead, and no key in the subprotocols.
	wsRoundTrip(t, s, "Sec-WebSocket-Protocol: realtime, openai-insecure-api-key."+key+", openai-beta.realtime-v1")
	got := s.upstream.LastRequest().Header
	if p := got.Get("Sec-WebSocket-Protocol"); p != "realtime, openai-beta.realtime-v1" {
		t.Fatalf("upstream subprotocols %q", p)
	}
	if a := got.Get("Authorization"); a != "Bearer "+upstreamKey {
		t.Fatalf("upstream Authorization %q", a)
	}
}

// TestRealtimeKeyProtocolRemoved: the provider gets the browser's
// subprotocol list without the key in it, as a clean list, and no
// Sec-WebSocket-Protocol header at all when the key was all there was.
func TestRealtimeKeyProtocolRemoved(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("subprotocols")
	kp := "openai-insecure-api-key." + key
	for _, c := range []struct {
		name, offered string
		upstream      []string // the header values the provider gets
	}{
		{"key in the middle", "realtime, " + kp + ", openai-beta.realtime-v1", []string{"realtime, openai-beta.realtime-v1"}},
		{"key last", "realtime, " + kp, []string{"realtime"}},
		{"key first", kp + ", realtime", []string{"realtime"}},
		{"no spaces", "realtime," + kp + ",openai-beta.realtime-v1", []string{"realtime, openai-beta.realtime-v1"}},
		{"key alone", kp, nil},
		{"two header lines", "Sec-WebSocket-Protocol: realtime\r\nSec-WebSocket-Protocol: " + kp, []string{"realtime"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			line := c.offered
			if !strings.HasPrefix(line, "Sec-WebSocket-Protocol:") {
				line = "Sec-WebSocket-Protocol: " + line
			}
			wsRoundTrip(t, s, line)
			got := s.upstream.LastRequest().Header.Values("Sec-WebSocket-Protocol")
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.upstream) {
				t.Fatalf("provider got Sec-WebSocket-Protocol %q, want %q", got, c.upstream)
			}
		})
	}
}

// TestProviderCookiesDropped: a provider's Set-Cookie (Cloudflare's, in
// front of api.openai.com) never reaches clients, on an answer or on a
// WebSocket upgrade. The cookie is the provider's, shared by every user of
// the gateway: it would only let the provider tell them apart.
func TestProviderCookiesDropped(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("cookieless")

	// The mock does set it.
	req, _ := http.NewRequest("GET", s.upstream.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+upstreamKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !strings.HasPrefix(res.Header.Get("Set-Cookie"), mockopenai.Cookie+"=") {
		t.Fatalf("the mock sets no cookie: %v", res.Header)
	}

	code, hdr, body := s.request("GET", "/v1/models", nil, "Authorization", "Bearer "+key)
	if code != 200 || len(hdr.Values("Set-Cookie")) != 0 {
		t.Fatalf("answer: %d Set-Cookie %q %s", code, hdr.Values("Set-Cookie"), body)
	}
	ws := wsDial(t, "localhost:9080", "Authorization: Bearer "+key)
	defer ws.Close()
	if v := ws.res.Header.Values("Set-Cookie"); len(v) != 0 {
		t.Fatalf("upgrade: Set-Cookie %q", v)
	}
	ws.echo()
}

// wsRoundTrip upgrades /v1/realtime through the site, authenticated by the
// given header line, and echoes a frame.
func wsRoundTrip(t *testing.T, s *site, authLine string) {
	t.Helper()
	ws := wsDial(t, "localhost:9080", authLine)
	defer ws.Close()
	ws.echo()
	if got := s.upstream.LastRequest().Header.Get("Authorization"); got != "Bearer "+upstreamKey {
		t.Fatalf("upgrade carried Authorization %q upstream", got)
	}
}

// wsConn is a client's upgraded Realtime connection through a site.
type wsConn struct {
	net.Conn
	t   *testing.T
	br  *bufio.Reader
	res *http.Response // the 101 answer
}

// wsDial upgrades /v1/realtime on addr, authenticated by the given header
// line(s), and fails the test unless the upgrade succeeds. Reads and writes
// give up after 10 s, so a session that should close and does not fails
// the test rather than hanging it.
func wsDial(t *testing.T, addr, authLine string) *wsConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: %s\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n\r\n", addr, authLine)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		t.Fatalf("upgrade: %d", res.StatusCode)
	}
	if got := res.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		conn.Close()
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	return &wsConn{Conn: conn, t: t, br: br, res: res}
}

// echo sends a frame and reads it back from the mock provider, which
// echoes bytes.
func (ws *wsConn) echo() {
	ws.t.Helper()
	msg := []byte("\x81\x05hello")
	if _, err := ws.Write(msg); err != nil {
		ws.t.Fatal(err)
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(ws.br, back); err != nil || !bytes.Equal(back, msg) {
		ws.t.Fatalf("echo %q, %v", back, err)
	}
}

// TestXHostFinalRefusesUnregistered: no value but an exact registered host
// name is dialed; everything else gets a 400 before any connection.
func TestXHostFinalRefusesUnregistered(t *testing.T) {
	groq := newHost(t, "sk-groq-static")
	s := startSite(t, siteOptions{extra: "host groq.test {\n\t\t\tbase_url " + groq.URL + "\n\t\t\tkey sk-groq-static\n\t\t}"})
	key := s.register("relay")

	if code, body := s.chat(key, "X-Host-Final", "groq.test"); code != 200 {
		t.Fatalf("registered host: %d %s", code, body)
	}
	if got := groq.LastRequest().Header.Get("Authorization"); got != "Bearer sk-groq-static" {
		t.Fatalf("groq got %q", got)
	}
	if code, _ := s.chat(key, "X-Host-Final", "GROQ.TEST"); code != 200 {
		t.Fatalf("host names are case-insensitive: %d", code)
	}

	before := len(groq.Requests()) + len(s.upstream.Requests())
	for _, v := range []string{
		"127.0.0.1", "127.0.0.1:9080", "localhost", "localhost:2999", "[::1]", "169.254.169.254",
		"user@groq.test", "groq.test@evil.com", "groq.test/v1", "groq.test:443", "groq.test.",
		"evil.groq.test", "groq.test.evil.com", "http://groq.test", "api.groq.com",
		"groq.test,evil.com",
	} {
		code, body := s.chat(key, "X-Host-Final", v)
		if code != 400 {
			t.Errorf("X-Host-Final %q: %d %s", v, code, body)
			continue
		}
		if c, _ := apiError(t, body); c != "unknown_host" {
			t.Errorf("X-Host-Final %q: code %q", v, c)
		}
	}
	if after := len(groq.Requests()) + len(s.upstream.Requests()); after != before {
		t.Fatalf("refused values reached an upstream: %d requests", after-before)
	}
}

// TestProxyAuthErrors: missing, malformed and unknown keys get OpenAI's 401,
// and a key sent without "Bearer " is told how to send it.
func TestProxyAuthErrors(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("unbearing")
	for name, c := range map[string]struct {
		hdr     []string
		message string
	}{
		"missing":        {nil, "You didn't provide an API key"},
		"malformed":      {[]string{"Authorization", "Bearer nope"}, "Incorrect API key"},
		"basic":          {[]string{"Authorization", "Basic dXNlcjpwYXNz"}, `must start with "Bearer "`},
		"without bearer": {[]string{"Authorization", key}, `must start with "Bearer "`},
		"unknown":        {[]string{"Authorization", "Bearer sk-cfw" + strings.Repeat("A", 45)}, "Incorrect API key"},
		"openai":         {[]string{"Authorization", "Bearer sk-proj-" + strings.Repeat("a", 40)}, "Incorrect API key"},
	} {
		code, _, body := s.request("POST", "/v1/chat/completions", strings.NewReader("{}"), c.hdr...)
		if code != 401 {
			t.Errorf("%s: %d %s", name, code, body)
			continue
		}
		if got, message := apiError(t, body); got != "invalid_api_key" || !strings.Contains(message, c.message) {
			t.Errorf("%s: %s %q, want invalid_api_key saying %q", name, got, message, c.message)
		}
	}
	if n := len(s.upstream.Requests()); n != 0 {
		t.Fatalf("%d unauthenticated requests reached the provider", n)
	}
	// Other paths are not ours: the site's own content answers.
	if code, _, body := s.request("GET", "/index.html", nil); code != 404 || string(body) != "site content" {
		t.Fatalf("other path: %d %q", code, body)
	}
}

// TestUpstreamErrorsPassThrough: a provider's error reaches the client as is.
func TestUpstreamErrorsPassThrough(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("ratelimited")
	code, hdr, body := s.request("POST", "/v1/chat/completions",
		strings.NewReader(`{"model":"error-429","messages":[{"role":"user","content":"x"}]}`),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	if code != 429 || hdr.Get("Retry-After") != "1" || hdr.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Fatalf("429 pass-through: %d %v", code, hdr)
	}
	if c, _ := apiError(t, body); c != "rate_limit_exceeded" {
		t.Logf("429 body: %s", body)
	}
}

// TestUpstreamDown: an unreachable provider is a 502 in OpenAI's shape.
func TestUpstreamDown(t *testing.T) {
	port, err := netfault.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s := startSite(t, siteOptions{extra: fmt.Sprintf("host down.test {\n\t\t\tbase_url http://127.0.0.1:%d\n\t\t\tkey sk-x\n\t\t}", port)})
	key := s.register("unlucky")
	code, body := s.chat(key, "X-Host-Final", "down.test")
	if code != 502 {
		t.Fatalf("upstream down: %d %s", code, body)
	}
	if c, _ := apiError(t, body); c != "upstream_error" {
		t.Fatalf("code %q", c)
	}
}

// TestStoreDown: with Redis unreachable or silent, requests fail fast with
// 503 instead of hanging.
func TestStoreDown(t *testing.T) {
	port, err := netfault.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	hole, closeHole := netfault.Blackhole()
	defer closeHole()
	for name, addr := range map[string]string{
		"refused":    fmt.Sprintf("127.0.0.1:%d", port),
		"blackholed": hole,
	} {
		t.Run(name, func(t *testing.T) {
			s := startSite(t, siteOptions{store: "store redis " + addr})
			start := time.Now()
			code, body := s.chat("sk-cfw" + strings.Repeat("B", 45))
			took := time.Since(start)
			if code != 503 {
				t.Fatalf("store down: %d %s", code, body)
			}
			if c, _ := apiError(t, body); c != "store_unavailable" {
				t.Fatalf("code %q", c)
			}
			if took > 2*time.Second {
				t.Fatalf("store down took %v to answer", took)
			}
			if code, _, _ := s.request("GET", "/admin/users", nil, "Authorization", "Bearer "+adminToken); code != 503 {
				t.Fatalf("admin with store down: %d", code)
			}
		})
	}
}

// TestStoreOutageLoggedOnce: during a store outage every request gets its
// 503, but the log gets one line about it, not one per request, and one
// more when the store is back.
func TestStoreOutageLoggedOnce(t *testing.T) {
	redis := netfault.StartRelay(t, redisAddr)
	logs := newLogFile(t)
	s := startSite(t, siteOptions{
		store:  fmt.Sprintf("store redis {\n\t\t\taddress %s\n\t\t\tkey_prefix test-outage-%d:\n\t\t}", redis.Addr, storeSeq.Add(1)),
		global: logs.global(),
	})
	key := s.register("patient")

	redis.Cut()
	for range 10 {
		if code, body := s.chat(key); code != 503 {
			t.Fatalf("store down: %d %s", code, body)
		}
	}
	// The line is written before the answer: all ten are in the file.
	if n := logs.count("key lookup"); n != 1 {
		t.Fatalf("%d log lines about the outage for 10 requests, want 1:\n%s", n, logs.read())
	}

	redis.Restore()
	if code, body := s.chat(key); code != 200 {
		t.Fatalf("store back: %d %s", code, body)
	}
	if n := logs.count("key lookups work again"); n != 1 {
		t.Fatalf("%d log lines about the store being back, want 1:\n%s", n, logs.read())
	}
}

// TestCORS: preflight needs no key; responses carry the headers; a list of
// origins is honoured.
func TestCORS(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("browser")
	code, hdr, _ := s.request("OPTIONS", "/v1/chat/completions", nil,
		"Origin", "https://chat.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type, x-stainless-os")
	if code != 204 || hdr.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(hdr.Get("Access-Control-Allow-Headers"), "x-stainless-os") ||
		!strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", code, hdr)
	}
	code, hdr, _ = s.request("POST", "/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"x"}]}`),
		"Origin", "https://chat.example", "Authorization", "Bearer "+key, "Content-Type", "application/json")
	if code != 200 || hdr.Values("Access-Control-Allow-Origin")[0] != "*" || len(hdr.Values("Access-Control-Allow-Origin")) != 1 {
		t.Fatalf("response CORS: %d %v", code, hdr)
	}
	// Errors carry CORS headers too, or browsers hide them from the app.
	code, hdr, _ = s.request("POST", "/v1/chat/completions", nil, "Origin", "https://chat.example")
	if code != 401 || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("error CORS: %d %v", code, hdr)
	}

	// A provider's own CORS headers are replaced by ours, never doubled.
	corsy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://provider.example")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	}))
	defer corsy.Close()
	s.load(siteOptions{extra: "host corsy.test {\n\t\t\tbase_url " + corsy.URL + "\n\t\t\tkey k\n\t\t}"})
	code, hdr, _ = s.request("GET", "/v1/models", nil, "Origin", "https://chat.example",
		"Authorization", "Bearer "+key, "X-Host-Final", "corsy.test")
	if code != 200 || len(hdr.Values("Access-Control-Allow-Origin")) != 1 || hdr.Get("Access-Control-Allow-Origin") != "*" ||
		hdr.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("provider CORS headers: %d %v", code, hdr)
	}

	s.load(siteOptions{extra: "cors https://chat.example https://other.example"})
	_, hdr, _ = s.request("OPTIONS", "/v1/models", nil, "Origin", "https://chat.example", "Access-Control-Request-Method", "GET")
	if hdr.Get("Access-Control-Allow-Origin") != "https://chat.example" {
		t.Fatalf("listed origin: %v", hdr)
	}
	_, hdr, _ = s.request("OPTIONS", "/v1/models", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin allowed: %v", hdr)
	}
}

// TestHTTPSUpstream: the default upstream over https (as api.openai.com),
// certificate verified against the system roots, streaming and WebSocket
// included.
func TestHTTPSUpstream(t *testing.T) {
	s := startSite(t, siteOptions{tls: true})
	if !strings.HasPrefix(s.upstream.URL, "https://") {
		t.Fatalf("mock is not https: %s", s.upstream.URL)
	}
	key := s.register("secure")
	if code, body := s.chat(key); code != 200 {
		t.Fatalf("chat over https: %d %s", code, body)
	}
	code, hdr, body := s.request("POST", "/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"a b c"}]}`),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") ||
		!bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("stream over https: %d %v %s", code, hdr, body)
	}
	wsRoundTrip(t, s, "Authorization: Bearer "+key)
	if got := s.upstream.LastRequest().Host; got != strings.TrimPrefix(s.upstream.URL, "https://") {
		t.Fatalf("upstream saw Host %q", got)
	}
}

// TestBaseURLPathPrefix: a host's base URL path is put in front of the
// client's path (e.g. Groq's /openai).
func TestBaseURLPathPrefix(t *testing.T) {
	groq := newHost(t, "sk-groq-prefix")
	s := startSite(t, siteOptions{extra: "host groq.test {\n\t\t\tbase_url " + groq.URL + "/openai/\n\t\t\tkey sk-groq-prefix\n\t\t}"})
	key := s.register("prefixed")
	code, _, body := s.request("GET", "/v1/echo/models?x=1", nil, "Authorization", "Bearer "+key, "X-Host-Final", "groq.test")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if e := decodeEcho(t, body); e.Path != "/openai/v1/echo/models" || e.RawQuery != "x=1" {
		t.Fatalf("upstream saw %s ? %s", e.Path, e.RawQuery)
	}
}

// TestProxyStreamsUnknownLengthBodies: a stream that is not SSE (NDJSON, as
// some OpenAI-compatible servers send) is still passed on as it arrives.
func TestProxyStreamsUnknownLengthBodies(t *testing.T) {
	release := make(chan struct{})
	ndjson := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = io.WriteString(w, `{"n":1}`+"\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, `{"n":2}`+"\n")
	}))
	defer ndjson.Close()
	defer close(release)
	s := startSite(t, siteOptions{extra: "host ndjson.test {\n\t\t\tbase_url " + ndjson.URL + "\n\t\t\tkey k\n\t\t}"})
	key := s.register("ndjson")
	req, _ := http.NewRequest("GET", siteURL+"/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Host-Final", "ndjson.test")
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	// The first line arrives while the upstream still holds the second.
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || line != `{"n":1}`+"\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
}
