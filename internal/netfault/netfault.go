// Package netfault gives tests network endpoints that fail on purpose: a
// port nothing listens on (FreePort), a server that accepts connections and
// never answers (Blackhole), and a relay a test can cut and restore to stage
// an outage of a server its clients keep pooled connections to (Relay).
package netfault

import (
	"fmt"
	"net"
	"sync"
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago. Whoever uses it must cope with losing a race for it.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Blackhole listens on a free 127.0.0.1 port, accepts every connection and
// never reads from or answers it: a server that hangs. It returns the
// address and a function that closes the listener and every connection.
// It panics if it cannot listen, which only a broken machine causes.
func Blackhole() (addr string, closer func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("netfault: blackhole listener: %v", err))
	}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				c.Close()
			} else {
				conns = append(conns, c)
			}
			mu.Unlock()
		}
	}()
	var once sync.Once
	return l.Addr().String(), func() {
		once.Do(func() {
			l.Close()
			mu.Lock()
			closed = true
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			<-done
		})
	}
}
