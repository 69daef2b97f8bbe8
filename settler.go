package aiproxy

// settler.go: settlements sent to the store off the request path, many in
// one round trip. A reservation settled a moment later only holds its user
// to more than it used for that moment, never less; requests in flight
// (leases) are settled by the request itself, so that a client's next
// request finds its place free.

import (
	"context"
	"sync"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/keystore"
)

// settleQueueLen bounds the settlements waiting; a request that finds the
// queue full settles its own.
const settleQueueLen = 4096

// maxSettleBatch bounds the settlements sent in one round trip.
const maxSettleBatch = 256

// settler sends queued settlements to the store, a batch at a time.
type settler struct {
	store  keystore.Store
	logger *zap.Logger
	queue  chan keystore.Settlement
	wg     sync.WaitGroup

	mu     sync.RWMutex // add holds it to read, close to write
	closed bool
}

func newSettler(store keystore.Store, logger *zap.Logger) *settler {
	q := &settler{store: store, logger: logger, queue: make(chan keystore.Settlement, settleQueueLen)}
	q.wg.Add(1)
	go q.run()
	return q
}

// add queues st, or settles it at once when the queue is full or closed
// (a request that outlived its config).
func (q *settler) add(st keystore.Settlement) {
	q.mu.RLock()
	if !q.closed {
		select {
		case q.queue <- st:
			q.mu.RUnlock()
			return
		default:
		}
	}
	q.mu.RUnlock()
	q.send([]keystore.Settlement{st})
}

func (q *settler) run() {
	defer q.wg.Done()
	batch := make([]keystore.Settlement, 0, maxSettleBatch)
	for st := range q.queue {
		batch = append(batch[:0], st)
		// Take what else is waiting, without waiting for more: under load
		// batches grow by themselves, and alone a settlement goes at once.
	more:
		for len(batch) < maxSettleBatch {
			select {
			case st, ok := <-q.queue:
				if !ok {
					break more
				}
				batch = append(batch, st)
			default:
				break more
			}
		}
		q.send(batch)
	}
}

// send settles a batch on its own deadline.
func (q *settler) send(batch []keystore.Settlement) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := q.store.Settle(ctx, batch...); err != nil {
		// The reservations stay: users are held to more than they used,
		// never less.
		q.logger.Warn("settling requests' spending failed; their reservations stay counted",
			zap.Int("requests", len(batch)), zap.Error(err))
	}
}

// close settles what is queued and stops. Calling it again does nothing.
func (q *settler) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	close(q.queue)
	q.mu.Unlock()
	q.wg.Wait()
}
