package aiproxy

// requestlog.go: the request log's queue. A finished request's record
// waits in memory, in a bounded queue, and goes to the store in batches on
// the usage flush's tick, so that logging a request costs the request path
// a copy under a mutex, never a store call.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/aiproxy/aiproxy/keystore"
)

// defaultRequestLogSize is how many records the request log keeps when
// the config does not say.
const defaultRequestLogSize = 10_000

// maxRequestQueue bounds the records waiting to be written, whatever the
// log's size: at about 150 bytes each, a few MiB at most. When it is full
// (the store slow or down) the oldest go first, and are counted.
const maxRequestQueue = 1 << 14

// maxRequestBatch bounds the records one store call writes.
const maxRequestBatch = 1000

// checkRequestLogSize checks a configured size; 0 stands for the default.
func checkRequestLogSize(n int) error {
	if n < 0 || n > keystore.MaxRequestLog {
		return fmt.Errorf("request_log: %d records is out of range; want 1 to %d, or off", n, keystore.MaxRequestLog)
	}
	return nil
}

// requestLog queues records and writes them to the store. Its methods are
// safe for concurrent use.
type requestLog struct {
	store   keystore.Store
	keep    int         // the log's size
	limit   int         // the most records queued: keep, up to maxRequestQueue
	writer  string      // prefix of the IDs of this queue's records
	dropped func(n int) // counts records dropped; nil: not counted
	outage  *outageLog  // a store that fails every flush is logged once
	logger  *zap.Logger // for records the store refused

	mu   sync.Mutex
	ring []keystore.RequestRecord // the queue, oldest at head; grows up to limit
	head int
	n    int

	// flushMu makes flushes and queries take turns, so that a query sees
	// each record once: queued or stored, never in between.
	flushMu sync.Mutex
	seq     uint64 // the last ID number given; under flushMu
}

func newRequestLog(store keystore.Store, keep int, logger *zap.Logger, dropped func(int)) *requestLog {
	return &requestLog{
		store:   store,
		keep:    keep,
		limit:   min(keep, maxRequestQueue),
		writer:  keystore.NewUsageWriter(),
		dropped: dropped,
		logger:  logger,
		outage: newOutageLog(logger, zapcore.WarnLevel,
			"cannot write the request log to the store; keeping the newest records in memory and retrying",
			"request log written to the store again"),
	}
}

// add queues r, dropping the oldest record queued when the queue is full.
func (l *requestLog) add(r keystore.RequestRecord) {
	l.mu.Lock()
	if l.n == len(l.ring) && len(l.ring) < l.limit {
		l.resize(min(max(2*len(l.ring), 64), l.limit))
	}
	if l.n == len(l.ring) {
		// Full: the newest record takes the oldest one's place.
		l.ring[l.head] = r
		l.head = (l.head + 1) % len(l.ring)
		l.mu.Unlock()
		l.drop(1)
		return
	}
	l.ring[(l.head+l.n)%len(l.ring)] = r
	l.n++
	l.mu.Unlock()
}

// resize gives the ring c places, the queue from the first on. Under mu.
func (l *requestLog) resize(c int) {
	ring := make([]keystore.RequestRecord, c)
	l.copyOut(ring)
	l.ring, l.head = ring, 0
}

// copyOut copies the queue, oldest first, to dst, as much as it holds;
// under mu.
func (l *requestLog) copyOut(dst []keystore.RequestRecord) int {
	k := min(l.n, len(dst))
	if k == 0 {
		return 0
	}
	first := copy(dst[:k], l.ring[l.head:min(l.head+k, len(l.ring))])
	copy(dst[first:k], l.ring[:k-first])
	return k
}

// take removes up to n of the oldest records from the queue.
func (l *requestLog) take(n int) []keystore.RequestRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]keystore.RequestRecord, min(n, l.n))
	k := l.copyOut(out)
	for i := range k {
		l.ring[(l.head+i)%len(l.ring)] = keystore.RequestRecord{} // let its strings go
	}
	if k > 0 {
		l.head = (l.head + k) % len(l.ring)
	}
	l.n -= k
	return out
}

// putBack returns a batch the store did not take to the front of the
// queue, as far as there is room: records queued since then are newer,
// and the log keeps the newest.
func (l *requestLog) putBack(batch []keystore.RequestRecord) {
	l.mu.Lock()
	lost := max(0, len(batch)+l.n-l.limit)
	batch = batch[lost:]
	ring := make([]keystore.RequestRecord, max(len(l.ring), len(batch)+l.n))
	copy(ring, batch)
	l.copyOut(ring[len(batch):])
	l.ring, l.head, l.n = ring, 0, len(batch)+l.n
	l.mu.Unlock()
	l.drop(lost)
}

func (l *requestLog) drop(n int) {
	if n > 0 && l.dropped != nil {
		l.dropped(n)
	}
}

// Flush writes the queued records, a batch at a time. A batch the store
// could not write goes back into the queue for the next flush; one it
// refused (it cannot keep such records) is logged and dropped.
func (l *requestLog) Flush(ctx context.Context) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	for {
		batch := l.take(maxRequestBatch)
		if len(batch) == 0 {
			return nil
		}
		var id []byte
		for i := range batch {
			if batch[i].ID == "" {
				l.seq++
				batch[i].ID = string(strconv.AppendUint(append(append(id[:0], l.writer...), '.'), l.seq, 36))
			}
		}
		err := l.store.AppendRequests(ctx, l.keep, batch)
		switch {
		case err == nil:
			l.outage.ok()
		case errors.Is(err, keystore.ErrUnavailable):
			l.outage.fail(err, zap.Int("queued", len(batch)+l.queued()))
			l.putBack(batch)
			return err
		default:
			l.logger.Error("the store refused a batch of the request log; its records are lost",
				zap.Int("records", len(batch)), zap.Error(err))
			l.drop(len(batch))
		}
	}
}

// queued returns how many records wait.
func (l *requestLog) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// recent returns the newest records, of user only when set, at most limit
// of them (1 to the log's size): those stored and those still queued,
// newest first.
func (l *requestLog) recent(ctx context.Context, user string, limit int) ([]keystore.RequestRecord, error) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	recs, err := l.store.RecentRequests(ctx, keystore.RequestQuery{User: user, Limit: limit, Scan: l.keep})
	if err != nil {
		return nil, err
	}
	var stored map[string]bool // the IDs read, once a queued record has one
	taken := 0
	l.mu.Lock()
	for i := l.n - 1; i >= 0 && taken < limit; i-- {
		r := l.ring[(l.head+i)%len(l.ring)]
		if user != "" && r.User != user {
			continue
		}
		taken++
		if r.ID != "" {
			// Put back after an ambiguous failure: it may be stored too.
			if stored == nil {
				stored = make(map[string]bool, len(recs))
				for _, s := range recs {
					stored[s.ID] = true
				}
			}
			if stored[r.ID] {
				continue
			}
		}
		recs = append(recs, r)
	}
	l.mu.Unlock()
	// Instances append to one log a tick at a time: their records meet
	// out of order by a second or so.
	slices.SortStableFunc(recs, func(a, b keystore.RequestRecord) int { return b.Time.Compare(a.Time) })
	return recs[:min(len(recs), limit)], nil
}
