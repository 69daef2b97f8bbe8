package mockopenai

import (
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
)

// webSocketGUID is the RFC 6455 constant used to compute Sec-WebSocket-Accept.
const webSocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// realtime completes a WebSocket handshake and then echoes raw bytes without
// parsing frames: enough to prove a proxy upgrades and relays the connection.
func (c *call) realtime() {
	c.record(nil)
	h := c.r.Header
	key := h.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 ||
		!headerHas(h, "Connection", "upgrade") || !headerHas(h, "Upgrade", "websocket") {
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "",
			"Expected a WebSocket upgrade request (Upgrade: websocket, Connection: Upgrade, a valid Sec-WebSocket-Key).")
		return
	}
	conn, brw, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		c.fail(http.StatusInternalServerError, "server_error", "", "", "hijack: "+err.Error())
		return
	}
	if !c.o.track(conn) {
		_ = conn.Close()
		return
	}
	defer c.o.untrack(conn)

	sum := sha1.Sum([]byte(key + webSocketGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n"
	if proto, _, _ := strings.Cut(h.Get("Sec-WebSocket-Protocol"), ","); strings.TrimSpace(proto) != "" {
		resp += "Sec-WebSocket-Protocol: " + strings.TrimSpace(proto) + "\r\n" // accept the first offered
	}
	resp += "X-Request-Id: " + c.id("req_") + "\r\nSet-Cookie: " + cookieHeader + "\r\n\r\n"
	if _, err := brw.WriteString(resp); err != nil || brw.Flush() != nil {
		return
	}
	_, _ = io.Copy(conn, brw.Reader) // brw.Reader first returns what the server already buffered
	select {
	case c.o.wsClosed <- struct{}{}:
	default:
	}
}

// headerHas reports whether a comma-separated header lists token (case-insensitive).
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// track registers a hijacked connection so that cleanup closes it; it
// reports false when the server is already closing.
func (o *Server) track(conn net.Conn) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.conns[conn] = struct{}{}
	return true
}

func (o *Server) untrack(conn net.Conn) {
	o.mu.Lock()
	delete(o.conns, conn)
	o.mu.Unlock()
	_ = conn.Close()
}
