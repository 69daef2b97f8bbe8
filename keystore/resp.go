package keystore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
)

// respValue is one RESP3 reply. Kind is its type byte: '+' '-' ':' '$'
// '*' '_' '#' ',' '(' '!' '=' '%' '~' '>'; Str holds simple strings,
// errors, bulk and verbatim strings, doubles and big numbers; Int integers
// and booleans (0/1); Elems the items of arrays, sets, pushes, and maps
// (keys and values in turn). Null is set for '_' and RESP2's null forms.
type respValue struct {
	Kind  byte
	Str   string
	Int   int64
	Elems []respValue
	Null  bool
}

// Bounds on a reply, so that a broken or hostile peer cannot make the
// reader allocate without limit.
const (
	respMaxBulk  = 8 << 20 // a user record is a few hundred bytes
	respMaxElems = 1 << 20
	respMaxDepth = 8
)

var errRespProtocol = errors.New("redis protocol error")

// readResp reads one reply. Attributes ('|') are read and dropped, as the
// reply they annotate follows them.
func readResp(r *bufio.Reader, depth int) (respValue, error) {
	if depth > respMaxDepth {
		return respValue{}, fmt.Errorf("%w: nested too deep", errRespProtocol)
	}
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return respValue{}, fmt.Errorf("%w: line too long", errRespProtocol)
		}
		return respValue{}, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return respValue{}, fmt.Errorf("%w: malformed line", errRespProtocol)
	}
	kind, text := line[0], string(line[1:len(line)-2])
	v := respValue{Kind: kind}
	switch kind {
	case '+', '-', ',', '(':
		v.Str = text
	case ':':
		v.Int, err = strconv.ParseInt(text, 10, 64)
	case '#':
		v.Int = 0
		if text == "t" {
			v.Int = 1
		}
	case '_':
		v.Null = true
	case '$', '!', '=':
		n, perr := strconv.Atoi(text)
		switch {
		case perr != nil || n > respMaxBulk:
			return v, fmt.Errorf("%w: bulk length %q", errRespProtocol, text)
		case n < 0:
			v.Null = true
			return v, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return v, err
		}
		v.Str = string(buf[:n])
	case '*', '~', '>', '%', '|':
		n, perr := strconv.Atoi(text)
		switch {
		case perr != nil || n > respMaxElems:
			return v, fmt.Errorf("%w: length %q", errRespProtocol, text)
		case n < 0:
			v.Null = true
			return v, nil
		}
		if kind == '%' || kind == '|' {
			n *= 2
		}
		v.Elems = make([]respValue, 0, min(n, 64))
		for range n {
			e, err := readResp(r, depth+1)
			if err != nil {
				return v, err
			}
			v.Elems = append(v.Elems, e)
		}
		if kind == '|' {
			return readResp(r, depth+1)
		}
	default:
		return v, fmt.Errorf("%w: unknown type %q", errRespProtocol, kind)
	}
	if err != nil {
		return v, fmt.Errorf("%w: %v", errRespProtocol, err)
	}
	return v, nil
}

// err returns the reply's error, if it is one.
func (v respValue) err() error {
	if v.Kind == '-' || v.Kind == '!' {
		return respError(v.Str)
	}
	return nil
}

// respError is an error reply of the server.
type respError string

func (e respError) Error() string { return "redis: " + string(e) }

// writeResp writes one command as an array of bulk strings.
func writeResp(w *bufio.Writer, args []string) {
	w.WriteByte('*')
	w.WriteString(strconv.Itoa(len(args)))
	w.WriteString("\r\n")
	for _, a := range args {
		w.WriteByte('$')
		w.WriteString(strconv.Itoa(len(a)))
		w.WriteString("\r\n")
		w.WriteString(a)
		w.WriteString("\r\n")
	}
}

// respConn is one RESP3 connection whose replies are read by a goroutine
// of its own: push messages go to onPush as soon as they arrive (an idle
// connection is read too), and replies to the callers of do in the order
// the commands were written, so that several commands may be in flight.
type respConn struct {
	nc     net.Conn
	onPush func(respValue)
	onDone func()

	mu      sync.Mutex // orders writes with their places in pending
	bw      *bufio.Writer
	pending chan chan respResult
	closed  bool

	done    chan struct{} // closed when the connection is over
	errOnce sync.Once
	err     error // why it is over, set before done closes
}

// respResult is a reply or the reason there is none.
type respResult struct {
	v   respValue
	err error
}

// maxInFlight bounds the commands written and not yet answered.
const maxInFlight = 256

// newRespConn starts reading nc. onPush runs on the reading goroutine;
// onDone once the connection is over, before anyone is told.
func newRespConn(nc net.Conn, onPush func(respValue), onDone func()) *respConn {
	c := &respConn{
		nc:      nc,
		onPush:  onPush,
		onDone:  onDone,
		bw:      bufio.NewWriter(nc),
		pending: make(chan chan respResult, maxInFlight),
		done:    make(chan struct{}),
	}
	go c.read()
	return c
}

// read delivers replies and pushes until the connection fails or closes.
func (c *respConn) read() {
	r := bufio.NewReaderSize(c.nc, 16<<10)
	for {
		v, err := readResp(r, 0)
		if err != nil {
			c.fail(err)
			return
		}
		if v.Kind == '>' {
			c.onPush(v)
			continue
		}
		select {
		case w := <-c.pending:
			w <- respResult{v: v}
		default:
			c.fail(fmt.Errorf("%w: a reply nobody asked for", errRespProtocol))
			return
		}
	}
}

// fail ends the connection with err and answers every waiting caller.
func (c *respConn) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.nc.Close()
		c.onDone()
		close(c.done)
		for {
			select {
			case w := <-c.pending:
				w <- respResult{err: err}
			default:
				return
			}
		}
	})
}

// close ends the connection.
func (c *respConn) close() { c.fail(net.ErrClosed) }

// do sends one command and waits for its reply. A context that ends first
// leaves the connection up: the reply still on its way goes to the place
// the command took in pending, not to the next caller. A server that stops
// answering is the health check's to find.
func (c *respConn) do(ctx context.Context, args ...string) (respValue, error) {
	w := make(chan respResult, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return respValue{}, c.err
	}
	select {
	case c.pending <- w:
	default:
		c.mu.Unlock()
		return respValue{}, errors.New("redis tracking connection: too many commands in flight")
	}
	d, _ := ctx.Deadline() // zero: none
	c.nc.SetWriteDeadline(d)
	writeResp(c.bw, args)
	err := c.bw.Flush()
	c.mu.Unlock()
	if err != nil {
		c.fail(err)
	}
	select {
	case res := <-w:
		if res.err == nil {
			res.err = res.v.err()
		}
		return res.v, res.err
	case <-ctx.Done():
		return respValue{}, ctx.Err()
	}
}
