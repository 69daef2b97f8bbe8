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

	mu      sync.Mutex
	live    map[keystore.UsageKey]keystore.UsageCounts // counts since the last swap
	unsent  *batch                                     // swapped out, not yet known stored: in flight or failed
	seq     uint64                                     // the last batch number given
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
			cancel()
		}
	}
}

// Close stops the loop and flushes everything pending, within ctx and at
// most flushTimeout. Counts that could not be written are logged, with
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
	if err := a.Flush(ctx); err != nil {
		a.logger.Error("could not write usage on shutdown; these counts are retried only if more usage is recorded by this config",
			zap.Error(err), zap.Any("rows", pendingRows(a.Pending())))
		return err
	}
	return nil
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
}

// Flush writes the pending counts now: first a batch that failed before,
// as it was, then everything added since. On failure the batch stays
// pending, to be retried by the next flush.
func (a *Aggregator) Flush(ctx context.Context) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	for {
		b, retry := a.next()
		if b == nil {
			return nil
		}
		err := a.store.AddUsage(ctx, keystore.UsageBatch{Writer: a.writer, Seq: b.seq, Rows: b.rows, Retention: a.Retention})
		a.noteResult(b, err)
		if errors.Is(err, keystore.ErrUnavailable) {
			return err // keep the batch for the next attempt
		}
		// Written, or refused for good (a store that cannot ever take it):
		// either way resending cannot help.
		a.mu.Lock()
		a.unsent = nil
		a.mu.Unlock()
		if err != nil || !retry {
			return err
		}
	}
}

// next returns the batch to send: the unsent one (retry true), or else the
// live counts swapped out as a new batch, or nil when there is nothing to
// send. Only the swap happens under mu; the rows are built after it.
func (a *Aggregator) next() (b *batch, retry bool) {
	a.mu.Lock()
	if a.unsent != nil {
		b = a.unsent
		a.mu.Unlock()
		return b, true
	}
	if len(a.live) == 0 {
		a.mu.Unlock()
		return nil, false
	}
	a.seq++
	b = &batch{seq: a.seq, counts: a.live}
	a.unsent = b
	a.live = make(map[keystore.UsageKey]keystore.UsageCounts, len(b.counts))
	a.mu.Unlock()

	b.rows = pendingRows(b.counts)
	return b, false
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
// the unsent batch, if any, plus everything added since.
func (a *Aggregator) Pending() map[keystore.UsageKey]keystore.UsageCounts {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.live)
	if a.unsent != nil {
		n += len(a.unsent.counts)
	}
	out := make(map[keystore.UsageKey]keystore.UsageCounts, n)
	maps.Copy(out, a.live)
	if a.unsent != nil {
		for k, c := range a.unsent.counts {
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
