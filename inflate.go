package aiproxy

// inflate.go: a gzipped answer metered while it passes to the client as it
// came. A goroutine inflates a copy of its bytes into the usage meter as
// they arrive (a stream is metered event by event), in a fixed amount of
// memory, and at most maxInflated bytes of it.

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"sync"

	"github.com/aiproxy/aiproxy/meter"
)

// maxInflated bounds the bytes of one answer inflated for the meter: gzip
// can inflate a thousandfold, and no real answer comes near it (about the
// largest, 2048 embeddings of 3072 floats, is some 130 MB of JSON). Past
// it, the rest passes unmetered and the request counts as one whose usage
// was not found.
const maxInflated = 256 << 20

// inflateBuf is the size of each of an inflating goroutine's two buffers,
// for the compressed bytes and the inflated ones; a gzipped chat
// completion fits in one.
const inflateBuf = 8 << 10

// errInflateStopped ends the pipe of an answer no longer inflated.
var errInflateStopped = errors.New("aiproxy: the answer is no longer inflated for the meter")

// inflater feeds a gzipped answer, inflated, to a meter. The answer's
// bytes go to its goroutine through a pipe; the meter is the goroutine's
// from start until close returns.
type inflater struct {
	limit   int // the most bytes inflated: maxInflated
	pw      *io.PipeWriter
	done    chan struct{}
	stopped bool // the goroutine ended early: corrupt data, or maxInflated reached
}

// inflateState is an inflating goroutine's memory (about 60 KiB with the
// decompressor's window and tables), reused from answer to answer.
type inflateState struct {
	zr  gzip.Reader
	br  *bufio.Reader
	out [inflateBuf]byte
}

var inflateStates = sync.Pool{New: func() any {
	return &inflateState{br: bufio.NewReaderSize(nil, inflateBuf)}
}}

// startInflater starts inflating an answer into m, at most limit bytes of
// it; m must not be used again before close.
func startInflater(m *meter.Meter, limit int) *inflater {
	pr, pw := io.Pipe()
	in := &inflater{limit: limit, pw: pw, done: make(chan struct{})}
	go in.run(pr, m)
	return in
}

func (in *inflater) run(pr *io.PipeReader, m *meter.Meter) {
	defer close(in.done)
	defer func() {
		// Off the request's goroutine, a panic would take the server down
		// (net/http recovers only its own): the answer goes unmetered.
		if recover() != nil {
			_ = pr.CloseWithError(errInflateStopped)
		}
	}()
	st := inflateStates.Get().(*inflateState)
	st.br.Reset(pr)
	err := st.zr.Reset(st.br)
	for n := 0; err == nil && n < in.limit; {
		var k int
		k, err = st.zr.Read(st.out[:min(len(st.out), in.limit-n)])
		m.Write(st.out[:k])
		n += k
	}
	// The answer's later bytes are not waited for: write returns at once.
	_ = pr.CloseWithError(errInflateStopped)
	st.br.Reset(nil)
	inflateStates.Put(st)
}

// write hands the next bytes of the answer to the goroutine. It returns
// once they are read (not yet inflated), so p may be reused.
func (in *inflater) write(p []byte) {
	if in.stopped || len(p) == 0 {
		return
	}
	if _, err := in.pw.Write(p); err != nil {
		in.stopped = true
	}
}

// close ends the answer and waits for the goroutine to have metered all of
// it: the meter is the caller's again. Calling it again does nothing.
func (in *inflater) close() {
	_ = in.pw.Close()
	<-in.done
}
