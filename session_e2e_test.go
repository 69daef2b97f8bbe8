package aiproxy_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// closeWait bounds the wait for a session that should close. Tests that
// pass never wait that long: they go on as soon as it has closed.
const closeWait = 5 * time.Second

// wantClosed waits for the gateway to close the session: the client's
// read ends with an error other than its own deadline, after nothing but
// maybe a WebSocket Close frame (Caddy sends one when a reload closes
// sessions), and the provider's side of the session closes too.
func (ws *wsConn) wantClosed(up *mockopenai.Server) {
	ws.t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(closeWait))
	rest, err := io.ReadAll(ws.br)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		ws.t.Fatalf("the session is still open after %v (read %q)", closeWait, rest)
	case len(rest) > 0 && rest[0] != wsCloseFrame:
		ws.t.Fatalf("the session sent %q before it closed", rest)
	}
	select {
	case <-up.WebSocketClosed():
	case <-time.After(closeWait):
		ws.t.Fatalf("the client's side closed, the provider's is still open after %v", closeWait)
	}
}

// wsCloseFrame is the first byte of a WebSocket Close frame (FIN, opcode 8).
const wsCloseFrame = 0x88

// TestRevokedKeyClosesWebSocket: a key reset, deleted or suspended closes
// the Realtime sessions open with it at once, through whichever admin
// route; other users' sessions go on.
func TestRevokedKeyClosesWebSocket(t *testing.T) {
	revokes := []struct {
		name, method, path, body string
		byUser                   bool // with alice's key, else the admin token
	}{
		{"REST delete", "DELETE", "/admin/users/alice", "", false},
		{"REST reset", "POST", "/admin/users/alice/reset", "", false},
		{"REST expiry in the past", "PATCH", "/admin/users/alice", `{"expires_at":"2026-01-02T03:04:05Z"}`, false},
		{"seed reset", "GET", "/" + adminToken + "/reset/alice", "", false},
		{"seed register", "GET", "/" + adminToken + "/register/alice", "", false},
		{"seed delete", "DELETE", "/" + adminToken + "/alice", "", false},
		{"self reset", "POST", "/me/reset", "", true},
	}
	for _, backend := range []string{"file", "redis"} {
		for _, c := range revokes {
			t.Run(backend+"/"+c.name, func(t *testing.T) {
				// An hour between checks: only the change itself can
				// close the session in time.
				s := startSite(t, siteOptions{store: backend, extra: "session_check_interval 1h"})
				alice, bob := s.register("alice"), s.register("bob")
				aliceWS := wsDial(t, "localhost:9080", "Authorization: Bearer "+alice)
				defer aliceWS.Close()
				bobWS := wsDial(t, "localhost:9080", "Sec-WebSocket-Protocol: realtime, openai-insecure-api-key."+bob)
				defer bobWS.Close()
				aliceWS.echo()
				bobWS.echo()

				auth := "Bearer " + adminToken
				if c.byUser {
					auth = "Bearer " + alice
				}
				if code, _, body := s.request(c.method, c.path, strings.NewReader(c.body), "Authorization", auth); code != http.StatusOK {
					t.Fatalf("%s %s: %d %s", c.method, c.path, code, body)
				}
				aliceWS.wantClosed(s.upstream)
				bobWS.echo()
			})
		}
	}
}

// TestExpiringKeyClosesWebSocket: a session outlives neither its key's
// expiry, though nobody changes anything.
func TestExpiringKeyClosesWebSocket(t *testing.T) {
	s := startSite(t, siteOptions{extra: "session_check_interval 50ms"})
	code, out := s.adminJSON("POST", "/admin/users", map[string]any{"name": "brief", "ttl": "2s"})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	expires, err := time.Parse(time.RFC3339, out["expires_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	ws := wsDial(t, "localhost:9080", "Authorization: Bearer "+out["key"].(string))
	defer ws.Close()
	ws.echo()
	ws.wantClosed(s.upstream)
	if now := time.Now(); now.Before(expires) {
		t.Fatalf("closed at %v, before the key expired at %v", now, expires)
	}
}

// TestKeyRevokedOnAnotherInstanceClosesWebSocket: two gateways share a
// Redis store; a key deleted through one closes its session on the other,
// which learns of it by checking.
func TestKeyRevokedOnAnotherInstanceClosesWebSocket(t *testing.T) {
	up := mockopenai.New(t, upstreamKey)
	store := storeLine(t, "redis")
	gateway := func(site string) string {
		return fmt.Sprintf(`%s {
	aiproxy {
		admin_token %s
		upstream %s %s
		%s
		session_check_interval 50ms
	}
}
`, site, adminToken, up.URL, upstreamKey, store)
	}
	caddytest.NewTester(t).InitServer(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
`+gateway("http://localhost:9080")+gateway("http://localhost:9081"), "caddyfile")
	a := &site{t: t, upstream: up, client: &http.Client{Timeout: 10 * time.Second}}

	key := a.register("roaming")
	ws := wsDial(t, "localhost:9081", "Authorization: Bearer "+key)
	defer ws.Close()
	ws.echo()
	if code, out := a.adminJSON("DELETE", "/admin/users/roaming", nil); code != http.StatusOK {
		t.Fatalf("delete on A: %d %v", code, out)
	}
	ws.wantClosed(up)
}

// TestStreamCloseDelay: with stream_close_delay, a config reload leaves
// open sessions alone, and their keys are still checked; without it (Caddy's
// default), a reload closes them.
func TestStreamCloseDelay(t *testing.T) {
	t.Run("set", func(t *testing.T) {
		opts := siteOptions{extra: "stream_close_delay 1m\n\t\tsession_check_interval 50ms"}
		s := startSite(t, opts)
		key := s.register("steady")
		ws := wsDial(t, "localhost:9080", "Authorization: Bearer "+key)
		defer ws.Close()
		ws.echo()

		opts.extra += "\n\t\tcors https://changed.example"
		s.load(opts)
		ws.echo()

		// The old config's handler still checks the session's key.
		if code, out := s.adminJSON("DELETE", "/admin/users/steady", nil); code != http.StatusOK {
			t.Fatalf("delete: %d %v", code, out)
		}
		ws.wantClosed(s.upstream)
	})
	t.Run("unset", func(t *testing.T) {
		s := startSite(t, siteOptions{})
		key := s.register("cut")
		ws := wsDial(t, "localhost:9080", "Authorization: Bearer "+key)
		defer ws.Close()
		ws.echo()
		s.load(siteOptions{extra: "cors https://changed.example"})
		ws.wantClosed(s.upstream)
	})
}

// TestStreamTimeout: stream_timeout closes a session after that long,
// whatever its key.
func TestStreamTimeout(t *testing.T) {
	s := startSite(t, siteOptions{extra: "stream_timeout 1s"})
	key := s.register("timed")
	start := time.Now()
	ws := wsDial(t, "localhost:9080", "Authorization: Bearer "+key)
	defer ws.Close()
	ws.echo()
	ws.wantClosed(s.upstream)
	if took := time.Since(start); took < time.Second {
		t.Fatalf("closed after %v, before stream_timeout", took)
	}
}
