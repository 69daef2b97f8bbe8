package keystore

// file_spend.go: the file store's spend ledger. Admissions and settlements
// happen in memory (one process owns the file); budget periods are written
// to the spend bucket every second and when the file closes, so a restart
// keeps what was spent. A crash loses at most the last second's changes,
// as it does for usage.

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// spendFlushInterval is how often changed budget periods are written.
const spendFlushInterval = time.Second

// spendPruneInterval is how often ended periods are looked for on disk.
const spendPruneInterval = time.Hour

// spendKeep is how long a period's record stays on disk after it ended,
// for reports of what was left; then it goes.
const spendKeep = 7 * 24 * time.Hour

// spendRecord is a period's spending as stored.
type spendRecord struct {
	Amounts
	End time.Time `json:"end,omitzero"` // zero for total
}

// fileSpend is the ledger of one open bbolt file and its writer.
type fileSpend struct {
	ledger *spendLedger
	db     *bbolt.DB
	logger *zap.Logger
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	now    func() time.Time

	// flushMu makes flushes take turns, whoever calls them: takeDirty
	// forgets a user whose periods an earlier flush took only once that
	// flush's write is done.
	flushMu sync.Mutex
	pruned  time.Time // when ended periods were last dropped; under flushMu
}

// startFileSpend starts the ledger of db and its writer.
func startFileSpend(db *bbolt.DB, logger *zap.Logger) *fileSpend {
	f := &fileSpend{db: db, logger: logger, done: make(chan struct{}), now: time.Now}
	f.ledger = newSpendLedger(f.load)
	f.wg.Add(1)
	go f.run()
	return f
}

func spendKey(userID, period string) []byte {
	return []byte(userID + "\x00" + period)
}

// load reads a period's spending from disk.
func (f *fileSpend) load(userID, period string) (Amounts, bool) {
	var rec spendRecord
	found := false
	_ = f.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketSpend).Get(spendKey(userID, period)); v != nil {
			found = json.Unmarshal(v, &rec) == nil
		}
		return nil
	})
	return rec.Amounts, found
}

func (f *fileSpend) run() {
	defer f.wg.Done()
	t := time.NewTicker(spendFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f.flush()
		case <-f.done:
			return
		}
	}
}

// flush writes the changed periods in one transaction, and drops periods
// that ended more than spendKeep ago.
func (f *fileSpend) flush() {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	now := f.now()
	dirty := f.ledger.takeDirty(now)
	err := f.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSpend)
		for _, d := range dirty {
			raw, err := json.Marshal(spendRecord{Amounts: d.Amounts, End: d.end})
			if err != nil {
				return err
			}
			if err := b.Put(spendKey(d.userID, d.period), raw); err != nil {
				return err
			}
		}
		if now.Sub(f.pruned) < spendPruneInterval {
			return nil
		}
		f.pruned = now
		return pruneSpend(b, now)
	})
	if err != nil {
		f.ledger.markDirty(dirty)
		f.logger.Error("writing budget spending to the key store file failed; will retry", zap.Error(err))
	}
}

// pruneSpend deletes the records of periods that ended before now-spendKeep.
func pruneSpend(b *bbolt.Bucket, now time.Time) error {
	var old [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var rec spendRecord
		if json.Unmarshal(v, &rec) == nil && !rec.End.IsZero() && rec.End.Add(spendKeep).Before(now) {
			old = append(old, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// stop ends the writer after a last flush. Calling it again does nothing.
func (f *fileSpend) stop() {
	f.once.Do(func() {
		close(f.done)
		f.wg.Wait()
		f.flush()
	})
}

// Admit implements Store.
func (s *FileStore) Admit(ctx context.Context, a Admission) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return Verdict{}, fileErr(err)
	}
	return s.spend.ledger.admit(a), nil
}

// Settle implements Store.
func (s *FileStore) Settle(ctx context.Context, settlements ...Settlement) error {
	for _, st := range settlements {
		s.spend.ledger.settle(st)
	}
	return nil
}

// RenewLease implements Store.
func (s *FileStore) RenewLease(ctx context.Context, user, userID, lease string, now time.Time) error {
	s.spend.ledger.renew(userID, lease, now)
	return nil
}

// Spending implements Store.
func (s *FileStore) Spending(ctx context.Context, q SpendQuery) (Spending, error) {
	if err := ctx.Err(); err != nil {
		return Spending{}, fileErr(err)
	}
	return s.spend.ledger.spending(q), nil
}
