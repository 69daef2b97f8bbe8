// Package browsertest drives a headless Chromium from Go tests, through the
// DevTools protocol over --remote-debugging-pipe: JSON messages ending in a
// NUL byte, written to the browser's fd 3 and read from its fd 4. It needs
// only the standard library and the chromium binary.
//
// Tests wait on conditions (a JavaScript expression becoming true, polled
// until a deadline), never on fixed sleeps.
package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Binary returns the path of the Chromium binary: $CHROMIUM if set, else
// the first of chromium, chromium-browser, google-chrome on PATH; "" when
// there is none.
func Binary() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one running headless Chromium.
type Browser struct {
	cmd     *exec.Cmd
	toB     *os.File // the browser's fd 3
	fromB   *os.File // the browser's fd 4
	dataDir string
	stderr  *tailBuffer

	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	pages   map[string]*Page // by session ID
	readErr error            // why the reader stopped
	done    chan struct{}    // closed when the reader stops
}

// message is one DevTools protocol message: a command, its answer or an
// event.
type message struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Flags are the command-line flags Launch starts Chromium with, besides
// --remote-debugging-pipe and --user-data-dir. The network ones keep it
// from calling home, which on a closed network makes it slow.
var Flags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
	"--no-first-run", "--no-default-browser-check",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
	"--disable-features=Translate,MediaRouter,OptimizationHints",
}

// Launch starts Chromium with a fresh profile in a temporary directory.
func Launch() (*Browser, error) {
	bin := Binary()
	if bin == "" {
		return nil, errors.New("no chromium binary found (set CHROMIUM or install chromium)")
	}
	dir, err := os.MkdirTemp("", "browsertest-")
	if err != nil {
		return nil, err
	}
	// Two pipes: we write commands into the first, the browser answers
	// into the second.
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	args := append([]string{"--remote-debugging-pipe", "--user-data-dir=" + dir}, Flags...)
	args = append(args, "about:blank")
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{cmdR, outW} // fds 3 and 4
	b := &Browser{
		cmd: cmd, toB: cmdW, fromB: outR, dataDir: dir, stderr: &tailBuffer{max: 16 << 10},
		pending: map[int64]chan message{}, pages: map[string]*Page{}, done: make(chan struct{}),
	}
	cmd.Stderr = b.stderr
	cmd.SysProcAttr = procAttr()
	err = cmd.Start()
	cmdR.Close() // the child's ends
	outW.Close()
	if err != nil {
		cmdW.Close()
		outR.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %v", bin, err)
	}
	go b.read()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var version struct {
		Product string `json:"product"`
	}
	if err := b.call(ctx, "", "Browser.getVersion", nil, &version); err != nil {
		b.Close()
		return nil, fmt.Errorf("chromium did not answer: %v; its stderr: %s", err, b.stderr.String())
	}
	return b, nil
}

// read dispatches every message the browser sends, until the pipe closes.
func (b *Browser) read() {
	r := bufio.NewReaderSize(b.fromB, 1<<20)
	var err error
	for {
		var raw []byte
		raw, err = r.ReadBytes(0)
		if err != nil {
			break
		}
		var m message
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				delete(b.pending, m.ID)
				ch <- m
			}
			b.mu.Unlock()
			continue
		}
		page := b.pages[m.SessionID]
		b.mu.Unlock()
		if page != nil {
			page.event(m.Method, m.Params)
		}
	}
	b.mu.Lock()
	b.readErr = fmt.Errorf("the browser closed its pipe: %v", err)
	b.mu.Unlock()
	close(b.done)
}

// call sends a command (to the browser, or to a page's session) and
// decodes its result into result, unless result is nil.
func (b *Browser) call(ctx context.Context, session, method string, params, result any) error {
	raw, err := json.Marshal(params)
	if err != nil {
		return err
	}
	if params == nil {
		raw = nil
	}
	ch := make(chan message, 1)
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return b.readErr
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	msg, _ := json.Marshal(message{ID: id, SessionID: session, Method: method, Params: raw})
	b.writeMu.Lock()
	_, err = b.toB.Write(append(msg, 0))
	b.writeMu.Unlock()
	if err != nil {
		b.forget(id)
		return fmt.Errorf("%s: %v", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-b.done:
		b.forget(id)
		return fmt.Errorf("%s: %v", method, b.readErr)
	case <-ctx.Done():
		b.forget(id)
		return fmt.Errorf("%s: %v", method, ctx.Err())
	}
}

func (b *Browser) forget(id int64) {
	b.mu.Lock()
	delete(b.pending, id)
	b.mu.Unlock()
}

// Close asks the browser to quit, kills it if it does not within a few
// seconds, and removes its profile.
func (b *Browser) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.call(ctx, "", "Browser.close", nil, nil)
	exited := make(chan error, 1)
	go func() { exited <- b.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		killGroup(b.cmd)
		<-exited
	}
	b.toB.Close()
	b.fromB.Close()
	return os.RemoveAll(b.dataDir)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
