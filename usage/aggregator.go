// Package usage counts requests and tokens per user, model and UTC day in
// memory and writes the counts to a keystore.Store in batches, away from the
// request path.
//
// Counts are never dropped silently: a batch the store did not take stays
// in memory and is retried, unchanged and under the same batch ID, so that a
// retry after an ambiguous failure cannot count anything twice.
package usage

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/keystore"
)

// DefaultInterval is how often Start's loop flushes when NewAggregator is
// given no interval.
const DefaultInterval = time.Second

// flushTimeout bounds each flush of the loop, of Close and of records that
// arrive after Close.
const flushTimeout = 5 * time.Second

// warnEvery spaces the warnings repeated during a store outage.
const warnEvery = time.Minute

// batch is a set of counts swapped out of the live map, on its way to the
// store. Its number and counts never change, so that resending it is
// idempotent.
type batch struct {
	seq    uint64
	counts map[keystore.UsageKey]keystore.UsageCounts // read-only once swapped out
	rows   []keystore.UsageRow                        // counts as rows; built and read under flushMu
}

// Aggregator sums usage in memory and flushes it to a store in batches: at
// every interval once started, on demand with Flush, and on Close. Its
// methods are safe for concurrent use; Add never waits for the store.
type Aggregator struct {
	store    keystore.Store
	logger   *zap.Logger
	interval time.Duration
	writer   string // this aggregator's keystore.UsageBatch.Writer

	// Retention is passed on with every batch (keystore.UsageBatch):
	// rows of days older than this may go. Set it before Start.
	Retention time.Duration

	// Siblings are flushed after the counts, on their schedule: at every
	// interval, at Close, and after counts added after Close (add to a
	// sibling before Add, so that this flush takes it). Set it before Start.
	Siblings []Flusher

	mu   sync.Mutex
	live map[keystore.UsageKey]keystore.UsageCounts // counts since the last swap
	// unsent are batches swapped out and not yet known stored: in flight
	// or failed. Their users are disjoint: a user with counts in one is
	// held, its later counts staying in live until that batch is written,
	// so that each user's batches reach the store in order. A store that
	// writes some users' rows only (a Redis Cluster shard down) leaves
	// those users' part unsent, and the others' counts flow.
	unsent  []*batch
	seq     uint64 // the last batch number given
	started bool
	closed  bool
	stop    chan struct{} // closed by Close to end the loop
	done    chan struct{} // closed when the loop has ended

	// flushMu makes flushes take turns, so that a failed batch is always
	// retried before a newer one is sent.
	flushMu      sync.Mutex
	failures     int       // consecutive failed attempts; under flushMu
	failingSince time.Time // first failure of the current outage; under flushMu
	lastWarn     time.Time // under flushMu

	lateQueued atomic.Bool    // a flush of late records is scheduled but has not swapped yet
	late       sync.WaitGroup // flushes of late records in progress
}

// Flusher is written to the store on an aggregator's schedule (see
// Aggregator.Siblings).
type Flusher interface {
	// Flush writes what is pending, within ctx. It logs its own failures.
	Flush(ctx context.Context) error
}

// flushSiblings flushes the siblings and returns their first error.
func (a *Aggregator) flushSiblings(ctx context.Context) error {
	var first error
	for _, s := range a.Siblings {
		if err := s.Flush(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// NewAggregator returns an aggregator that writes to store. A nil logger
// discards logs; an interval of zero or less means DefaultInterval. Call
// Start to flush periodically and Close when done.
func NewAggregator(store keystore.Store, logger *zap.Logger, interval time.Duration) *Aggregator {
	if logger == nil {
		logger = zap.NewNop()
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Aggregator{
		store:    store,
		logger:   logger,
		interval: interval,
		writer:   keystore.NewUsageWriter(),
		live:     make(map[keystore.UsageKey]keystore.UsageCounts),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// Add adds c to the counts of key: a map update under a mutex, never a
// store call. After Close, it also schedules a flush of its own, so that
// requests finishing after their config was unloaded are still counted. A
// key the store could not keep (see keystore.UsageKey.Validate) is logged
// and dropped: it would otherwise block every later batch.
func (a *Aggregator) Add(key keystore.UsageKey, c keystore.UsageCounts) {
	if c == (keystore.UsageCounts{}) {
		return
	}
	if err := key.Validate(); err != nil {
		a.logger.Error("dropping usage with an invalid key",
			zap.String("user", key.User), zap.String("model", key.Model), zap.String("date", key.Date),
			zap.Any("counts", c), zap.Error(err))
		return
	}
	a.mu.Lock()
	sum := a.live[key]
	sum.Add(c)
	a.live[key] = sum
	closed := a.closed
	a.mu.Unlock()

	// One scheduled flush takes every record added before its swap; a
	// record added after that finds the flag cleared and schedules another.
	if closed && a.lateQueued.CompareAndSwap(false, true) {
		a.late.Add(1)
		go a.flushLate()
	}
}

// Start starts flushing every interval. It does nothing if the loop runs
// already or the aggregator is closed.
func (a *Aggregator) Start() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.closed {
		return
	}
	a.started = true
	go a.loop()
}

// loop flushes every interval until Close. Flush logs its own failures.
func (a *Aggregator) loop() {
	defer close(a.done)
	ticker := time.NewTicker(a.interval)
	defer ticker.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-ticker.C:
			ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
			_ = a.Flush(ctx)
			_ = a.flushSiblings(ctx)
			cancel()
		}
	}
}

// Close stops the loop and flushes everything pending, the siblings too,
// within ctx and at most flushTimeout. Counts that could not be written are logged, with
// their values, and kept: the flush of the next record added after Close
// retries them. Calling Close again does nothing.
func (a *Aggregator) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	started := a.started
	a.mu.Unlock()

	if started {
		close(a.stop)
		<-a.done
	}
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	err := a.Flush(ctx)
	if err != nil {
		a.logger.Error("could not write usage on shutdown; these counts are retried only if more usage is recorded by this config",
			zap.Error(err), zap.Any("rows", pendingRows(a.Pending())))
	}
	return errors.Join(err, a.flushSiblings(ctx))
}

// flushLate writes records added after Close.
func (a *Aggregator) flushLate() {
	defer a.late.Done()
	a.lateQueued.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := a.Flush(ctx); err != nil {
		a.logger.Error("could not write usage recorded after shutdown; these counts are retried only if more usage is recorded by this config",
			zap.Error(err), zap.Any("rows", pendingRows(a.Pending())))
	}
	_ = a.flushSiblings(ctx)
}

// Flush writes the pending counts now: first the batches that failed
// before, as they were (but for the users a store did write), then
// everything added since by users not held back by them. On failure a
// batch stays pending, to be retried by the next flush. When a store
// writes some users' rows only, the others' new counts are still sent.
func (a *Aggregator) Flush(ctx context.Context) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	retries := slices.Clone(a.unsent)
	a.mu.Unlock()
	var firstErr error
	for _, b := range retries {
		err := a.send(ctx, b)
		if err == nil {
			continue
		}
		if firstErr == nil {
			firstErr = err
		}
		var some *keystore.UsageUsersError
		if !errors.As(err, &some) {
			return err // the store is down: nothing newer goes either
		}
	}
	b := a.swap()
	if b == nil {
		return firstErr
	}
	if err := a.send(ctx, b); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// send writes one batch and settles its fate: written, or refused for good
// (resending cannot help), it leaves unsent; not written for some users, it
// stays for them only; not written at all, it stays whole.
func (a *Aggregator) send(ctx context.Context, b *batch) error {
	err := a.store.AddUsage(ctx, keystore.UsageBatch{Writer: a.writer, Seq: b.seq, Rows: b.rows, Retention: a.Retention})
	a.noteResult(b, err)
	var some *keystore.UsageUsersError
	switch {
	case errors.As(err, &some):
		keep := make(map[string]bool, len(some.Users))
		for _, u := range some.Users {
			keep[u] = true
		}
		narrowed := make(map[keystore.UsageKey]keystore.UsageCounts)
		for k, c := range b.counts {
			if keep[k.User] {
				narrowed[k] = c
			}
		}
		a.mu.Lock()
		b.counts = narrowed // the same batch number: resending it is idempotent
		a.mu.Unlock()
		b.rows = pendingRows(narrowed)
	case errors.Is(err, keystore.ErrUnavailable):
	default:
		a.mu.Lock()
		a.unsent = slices.DeleteFunc(a.unsent, func(u *batch) bool { return u == b })
		a.mu.Unlock()
	}
	return err
}

// swap takes the live counts of the users no unsent batch holds as a new,
// unsent batch, or returns nil when there are none. Only the swap happens
// under mu; the rows are built after it.
func (a *Aggregator) swap() *batch {
	a.mu.Lock()
	if len(a.live) == 0 {
		a.mu.Unlock()
		return nil
	}
	held := make(map[string]bool)
	for _, u := range a.unsent {
		for k := range u.counts {
			held[k.User] = true
		}
	}
	b := &batch{counts: a.live}
	if len(held) > 0 {
		b.counts = make(map[keystore.UsageKey]keystore.UsageCounts)
		rest := make(map[keystore.UsageKey]keystore.UsageCounts)
		for k, c := range a.live {
			if held[k.User] {
				rest[k] = c
			} else {
				b.counts[k] = c
			}
		}
		a.live = rest
		if len(b.counts) == 0 {
			a.mu.Unlock()
			return nil
		}
	} else {
		a.live = make(map[keystore.UsageKey]keystore.UsageCounts, len(b.counts))
	}
	a.seq++
	b.seq = a.seq
	a.unsent = append(a.unsent, b)
	a.mu.Unlock()

	b.rows = pendingRows(b.counts)
	return b
}

// noteResult logs the outcome of a store call: the first failure of an
// outage and then one every warnEvery, and the recovery. Called under flushMu.
func (a *Aggregator) noteResult(b *batch, err error) {
	now := time.Now()
	switch {
	case err == nil:
		if a.failures > 0 {
			a.logger.Info("usage store reachable again; pending usage written",
				zap.Int("failed_attempts", a.failures), zap.Duration("outage", now.Sub(a.failingSince)))
			a.failures = 0
		}
	case !errors.Is(err, keystore.ErrUnavailable):
		a.logger.Error("usage store refused a batch; its counts are lost",
			zap.Uint64("batch", b.seq), zap.Error(err), zap.Any("rows", b.rows))
	default:
		a.failures++
		if a.failures == 1 {
			a.failingSince = now
		}
		if a.failures == 1 || now.Sub(a.lastWarn) >= warnEvery {
			a.lastWarn = now
			a.logger.Warn("cannot write usage to the store; keeping the counts in memory and retrying",
				zap.Error(err), zap.Int("failed_attempts", a.failures),
				zap.Duration("failing_for", now.Sub(a.failingSince)), zap.Int("batch_rows", len(b.rows)))
		}
	}
}

// Pending returns a snapshot of the counts not yet written to the store:
// the unsent batches, plus everything added since.
func (a *Aggregator) Pending() map[keystore.UsageKey]keystore.UsageCounts {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.live)
	for _, b := range a.unsent {
		n += len(b.counts)
	}
	out := make(map[keystore.UsageKey]keystore.UsageCounts, n)
	maps.Copy(out, a.live)
	for _, b := range a.unsent {
		for k, c := range b.counts {
			sum := out[k]
			sum.Add(c)
			out[k] = sum
		}
	}
	return out
}

// pendingRows turns counts into rows, in no particular order.
func pendingRows(counts map[keystore.UsageKey]keystore.UsageCounts) []keystore.UsageRow {
	rows := make([]keystore.UsageRow, 0, len(counts))
	for k, c := range counts {
		rows = append(rows, keystore.UsageRow{UsageKey: k, UsageCounts: c})
	}
	return rows
}
