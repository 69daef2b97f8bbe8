package aiproxy

import (
	"context"
	"sync"
)

// inflight counts the proxied requests not yet recorded, so that Cleanup
// can wait for them before the last usage flush. A reload or a stop with a
// grace period lets requests run on after the old config is stopped; one
// that ended after the flush would be counted only by a late flush, which a
// process exiting does not wait for. WebSocket sessions are not counted:
// they may last far longer than anyone would wait.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; made by wait
}

func (f *inflight) start() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
	f.mu.Unlock()
}

// wait returns true once no request is in flight, or false when ctx ends first.
func (f *inflight) wait(ctx context.Context) bool {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return true
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}
