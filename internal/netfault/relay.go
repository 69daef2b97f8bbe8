package netfault

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Relay is a TCP relay to a server (Redis, say) that a test can cut and
// restore, to stage an outage of a server that clients keep pooled
// connections to. Create it with [StartRelay]; it is closed when the test
// ends.
type Relay struct {
	// Addr is the relay's host:port on 127.0.0.1, for clients to dial.
	Addr string

	target string
	ln     net.Listener
	done   chan struct{} // closed when the accept loop has ended

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{} // both ends of every relayed connection
}

// StartRelay listens on a free 127.0.0.1 port and relays every connection
// to target.
func StartRelay(tb testing.TB, target string) *Relay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("relay: %v", err)
	}
	r := &Relay{Addr: ln.Addr().String(), target: target, ln: ln,
		done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	go r.accept()
	tb.Cleanup(r.close)
	return r
}

// Cut closes every relayed connection, and from then on closes each new
// one as soon as it is accepted: clients see their server fail at once,
// on old connections and new ones, until [Relay.Restore].
func (r *Relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = true
	for c := range r.conns {
		_ = c.Close()
	}
}

// Restore relays new connections again.
func (r *Relay) Restore() {
	r.mu.Lock()
	r.cut = false
	r.mu.Unlock()
}

func (r *Relay) accept() {
	defer close(r.done)
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.relay(c)
	}
}

// relay copies both ways between c and a new connection to the target.
func (r *Relay) relay(c net.Conn) {
	r.mu.Lock()
	cut := r.cut
	r.mu.Unlock()
	if cut {
		_ = c.Close()
		return
	}
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !r.track(c, up) {
		return
	}
	defer r.untrack(c, up)
	go func() {
		_, _ = io.Copy(up, c)
		_ = up.Close()
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// track registers a connection pair; it reports false, having closed
// both, when the relay was cut in the meantime.
func (r *Relay) track(c, up net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cut {
		_ = c.Close()
		_ = up.Close()
		return false
	}
	r.conns[c], r.conns[up] = struct{}{}, struct{}{}
	return true
}

func (r *Relay) untrack(c, up net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	delete(r.conns, up)
	r.mu.Unlock()
}

// close stops listening and closes every connection.
func (r *Relay) close() {
	_ = r.ln.Close()
	<-r.done
	r.Cut()
}
