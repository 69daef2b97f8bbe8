package aiproxy

import (
	"bytes"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/aiproxy/aiproxy/meter"
)

// requestbody.go: request bodies held in memory for inspection, the budget
// that bounds them, and the reader that sends one upstream and lets it go.

// defaultInspectMemory is the default InspectMemory: 64 MiB, room for four
// bodies of the largest size inspected or thousands of usual ones (a body
// is held only until it is sent). Measured with 32 concurrent streaming
// requests of 15 MB, three waves of them: peak RSS 144 to 189 MB, where
// 256 MiB let it reach 509 MB (Go's collector lets the heap grow to twice
// what is live before collecting) and holding every body twice 1039 MB.
const defaultInspectMemory = 64 << 20

// inspectBudget bounds the bytes of request bodies held for inspection at
// once, all requests of a handler together. It is safe for concurrent use.
type inspectBudget struct {
	limit int64
	held  atomic.Int64
}

// reserve takes n bytes of the budget and reports true, or takes nothing and
// reports false when fewer than n are left.
func (b *inspectBudget) reserve(n int64) bool {
	for {
		held := b.held.Load()
		if held+n > b.limit {
			return false
		}
		if b.held.CompareAndSwap(held, held+n) {
			return true
		}
	}
}

// release gives back n reserved bytes.
func (b *inspectBudget) release(n int64) {
	b.held.Add(-n)
}

// heldBody is a request body held in memory, sent upstream as pieces (the
// body, or slices of it and the bytes spliced in) and then, if the body was
// read only in part, the unread rest. Once the pieces are sent, or at Close,
// it drops them and gives their bytes back to the budget, so the memory can
// be reclaimed while the answer streams. The upstream's transport may close
// it while reading it: its methods are safe for concurrent use.
type heldBody struct {
	mu       sync.Mutex
	pieces   [][]byte  // still to send
	rest     io.Reader // read after the pieces; nil when the body was read whole
	budget   *inspectBudget
	reserved int64 // bytes of budget held until release

	// body is the body as read, and edits the changes its pieces make to
	// it, so that one more (an output cap) can be made before it is sent.
	body  []byte
	edits []meter.Edit
}

// replayable reports whether the body can be sent again: held whole.
func (b *heldBody) replayable() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rest == nil && b.budget != nil
}

// pieceList returns the pieces as they stand, for sending again: slices
// of the held body, which stay in memory as long as the list does.
func (b *heldBody) pieceList() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.pieces)
}

// replayReader sends pieces, and once they are all read calls sent: the
// body has gone up whole.
type replayReader struct {
	r    io.Reader
	sent func()
}

func newReplayReader(pieces [][]byte, sent func()) *replayReader {
	readers := make([]io.Reader, 0, len(pieces))
	for _, p := range pieces {
		readers = append(readers, bytes.NewReader(p))
	}
	return &replayReader{r: io.MultiReader(readers...), sent: sent}
}

func (r *replayReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF && r.sent != nil {
		r.sent()
		r.sent = nil
	}
	return n, err
}

func (r *replayReader) Close() error { return nil }

// addEdits adds edits to those the body's pieces make, before any is
// read: the pieces are cut again from the body as read. Edits never
// overlap: each changes its own top-level member.
func (b *heldBody) addEdits(edits []meter.Edit) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.edits = append(b.edits, edits...)
	b.pieces = meter.Pieces(b.body, b.edits...)
}

// newHeldBody returns a body sending pieces, then rest (which may be nil),
// and holding reserved bytes of budget until the pieces are sent.
func newHeldBody(pieces [][]byte, rest io.Reader, budget *inspectBudget, reserved int64) *heldBody {
	return &heldBody{pieces: pieces, rest: rest, budget: budget, reserved: reserved}
}

// Read reads the pieces, then the rest.
func (b *heldBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.pieces) > 0 {
		if len(b.pieces[0]) == 0 {
			b.pieces = b.pieces[1:]
			continue
		}
		if len(p) == 0 {
			return 0, nil
		}
		n := copy(p, b.pieces[0])
		b.pieces[0] = b.pieces[0][n:]
		for len(b.pieces) > 0 && len(b.pieces[0]) == 0 {
			b.pieces = b.pieces[1:]
		}
		if len(b.pieces) == 0 {
			// All sent: let go now. A transport that knows the length
			// never reads on to EOF, and closes the body only later.
			b.releaseLocked()
		}
		return n, nil
	}
	b.releaseLocked()
	if b.rest == nil {
		return 0, io.EOF
	}
	return b.rest.Read(p)
}

// Close lets the body go. It does not close the rest: the server closes
// the client's body when the request ends.
func (b *heldBody) Close() error {
	b.release()
	return nil
}

// release drops the pieces and gives their bytes back to the budget; it is
// idempotent, and safe on a nil body.
func (b *heldBody) release() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked()
}

func (b *heldBody) releaseLocked() {
	b.pieces, b.body, b.edits = nil, nil, nil
	if b.budget != nil {
		b.budget.release(b.reserved)
		b.budget = nil
	}
}

// size returns the bytes the pieces hold.
func (b *heldBody) size() int64 {
	var n int64
	for _, p := range b.pieces {
		n += int64(len(p))
	}
	return n
}
