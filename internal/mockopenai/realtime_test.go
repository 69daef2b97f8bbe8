package mockopenai

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestRealtimeWebSocket does the handshake over raw TCP and checks that
// bytes round-trip.
func TestRealtimeWebSocket(t *testing.T) {
	o := New(t, testKey)
	conn, err := net.Dial("tcp", o.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(deadline))
	_, err = io.WriteString(conn, "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: api.openai.com\r\n"+
		"Authorization: Bearer "+testKey+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: realtime, openai-beta.realtime-v1\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The accept value is RFC 6455's worked example for this key.
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		resp.Header.Get("Sec-WebSocket-Protocol") != "realtime" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	msg := []byte("\x81\x05hello, raw bytes \x00\xff")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo %q, err %v", got, err)
	}
	if rr := o.LastRequest(); rr.Path != "/v1/realtime" || rr.Host != "api.openai.com" || rr.Header.Get("Upgrade") != "websocket" {
		t.Errorf("recorded %+v", rr)
	}

	// Without the upgrade headers it is an OpenAI error, not a hijack.
	req, _ := http.NewRequest(http.MethodGet, o.URL+"/v1/realtime", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	plain, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != 400 {
		t.Errorf("plain GET /v1/realtime: %d", plain.StatusCode)
	}
}
