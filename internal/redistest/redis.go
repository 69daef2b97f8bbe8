// Package redistest starts real Redis servers for tests, on free ports of
// 127.0.0.1: a single node (Start), a Redis Cluster (StartCluster) and a
// master behind Sentinel (StartSentinel). They keep nothing on disk beyond
// temporary directories, and fail rather than skip without redis-server.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// redisStartTimeout bounds the wait for a fresh redis-server to answer.
const redisStartTimeout = 10 * time.Second

// Server is a redis-server process started for tests. It keeps nothing on
// disk beyond its temporary directory.
type Server struct {
	// Addr is the server's host:port on 127.0.0.1.
	Addr string

	cmd    *exec.Cmd
	dir    string
	exited chan struct{} // closed when the process has been reaped
	output *lockedBuffer
	once   sync.Once
}

// Start starts redis-server on a free 127.0.0.1 port and returns once
// it answers PING. Call it once per test binary, from TestMain, and Close the
// result before os.Exit. Without a redis-server on PATH it fails (tests need
// Redis; they do not skip).
func Start() (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH: install it (e.g. apt-get install -y redis-server): %v", err)
	}
	// Another process may take the free port before redis binds it: retry.
	var lastErr error
	for range 3 {
		r, err := start(bin)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin string, extra ...string) (*Server, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	port := ports[0]
	dir, err := os.MkdirTemp("", "aiproxy-redis-")
	if err != nil {
		return nil, err
	}
	return spawn(bin, port, dir, append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--loglevel", "warning",
	}, extra...)...)
}

// spawn runs bin with args as a server that listens on port of
// 127.0.0.1 and returns once it answers PING. The result owns dir: Close
// removes it, and so does a failure.
func spawn(bin string, port int, dir string, args ...string) (*Server, error) {
	r := &Server{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:    dir,
		exited: make(chan struct{}),
		output: new(lockedBuffer),
	}
	r.cmd = exec.Command(bin, args...)
	r.cmd.SysProcAttr = dieWithParent()
	r.cmd.Stdout = r.output
	r.cmd.Stderr = r.output
	if err := r.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %v", filepath.Base(bin), err)
	}
	go func() {
		r.cmd.Wait()
		close(r.exited)
	}()

	if err := r.waitReady(); err != nil {
		r.Close()
		return nil, fmt.Errorf("%s on %s: %v; its output:\n%s", filepath.Base(bin), r.Addr, err, r.output.String())
	}
	return r, nil
}

// waitReady polls with PING until the server answers, exits or time runs out.
func (r *Server) waitReady() error {
	deadline := time.Now().Add(redisStartTimeout)
	backoff := 5 * time.Millisecond
	for {
		err := ping(r.Addr)
		if err == nil {
			return nil
		}
		select {
		case <-r.exited:
			return errors.New("exited before answering")
		case <-time.After(backoff):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %v", redisStartTimeout, err)
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// ping sends one PING in RESP and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

// Close kills the server, waits for it to exit and removes its directory.
// It is safe to call more than once.
func (r *Server) Close() {
	r.once.Do(func() {
		r.cmd.Process.Kill()
		<-r.exited
		os.RemoveAll(r.dir)
	})
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that nothing listened
// on a moment ago. It holds them all at once so that they differ.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// lockedBuffer collects a process' output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
