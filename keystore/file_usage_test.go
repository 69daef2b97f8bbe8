package keystore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestFileUsageLayout pins the usage bucket's keys and values.
func TestFileUsageLayout(t *testing.T) {
	s := newFileStore(t)
	r := row("kim", "org/m:1|x", "2030-01-02", 1)
	mustAddUsage(t, s, ub(5, r))
	err := s.db.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketUsage).Get([]byte("2030-01-02\x00kim\x00" + idOf("kim") + "\x00org/m:1|x"))
		var c UsageCounts
		if err := json.Unmarshal(raw, &c); err != nil || c != r.UsageCounts {
			t.Errorf("usage record %s: %+v, %v", raw, c, err)
		}
		if seq, at, ok := writerState(tx.Bucket(bucketUsageWriters).Get([]byte("suite\x00kim"))); !ok || seq != 5 || time.Since(at) > time.Minute {
			t.Errorf("writer suite, user kim: batch %d at %v, %v", seq, at, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFileUsagePrune checks that AddUsage forgets writers idle for longer
// than UsageBatchTTL and rows past the retention, scanning at most once
// every usagePruneEvery.
func TestFileUsagePrune(t *testing.T) {
	s := newFileStore(t)
	now := time.Now()
	put := func(bucket, key, val []byte) {
		t.Helper()
		if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, val) }); err != nil {
			t.Fatal(err)
		}
	}
	writer := func(at time.Time) []byte {
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 1), uint64(at.Unix()))
	}
	has := func(name string) bool {
		var ok bool
		s.db.View(func(tx *bbolt.Tx) error {
			ok = tx.Bucket(bucketUsageWriters).Get([]byte(name)) != nil
			return nil
		})
		return ok
	}

	put(bucketUsageWriters, []byte("old"), writer(now.Add(-UsageBatchTTL-time.Minute)))
	put(bucketUsageWriters, []byte("recent"), writer(now.Add(-UsageBatchTTL+time.Minute)))
	put(bucketUsageWriters, []byte("junk"), []byte("x"))
	put(bucketMeta, metaUsagePruned, unixBytes(now.Add(-usagePruneEvery-time.Minute)))
	today := UsageDate(now)
	lastKept := UsageDate(now.Add(-72 * time.Hour))
	firstGone := UsageDate(now.Add(-96 * time.Hour))
	mustAddUsage(t, s, ub(1, row("lou", "m", firstGone, 1), row("lou", "m", lastKept, 1)))
	put(bucketMeta, metaUsagePruned, unixBytes(now.Add(-usagePruneEvery-time.Minute)))
	b := ub(2, row("lou", "m", today, 1))
	b.Retention = 72 * time.Hour
	mustAddUsage(t, s, b)
	for name, want := range map[string]bool{"old": false, "recent": true, "junk": false, "suite\x00lou": true} {
		if has(name) != want {
			t.Errorf("after a prune, writer %q kept = %v, want %v", name, !want, want)
		}
	}
	wantRows(t, "after a prune with a retention of 3 days",
		mustQueryUsage(t, s, UsageFilter{From: firstGone, To: today}),
		row("lou", "m", lastKept, 1), row("lou", "m", today, 1))

	// Pruned just now: the next batches do not scan again.
	put(bucketUsageWriters, []byte("old2"), writer(now.Add(-UsageBatchTTL-time.Minute)))
	mustAddUsage(t, s, ub(3, row("lou", "m", "2030-01-01", 1)))
	if !has("old2") {
		t.Error("AddUsage pruned again within usagePruneEvery")
	}
	// A retried batch is not counted again.
	mustAddUsage(t, s, ub(3, row("lou", "m", "2030-01-01", 1)))
	wantRows(t, "usage", mustQueryUsage(t, s, UsageFilter{From: "2030-01-01", To: "2030-01-01"}),
		row("lou", "m", "2030-01-01", 1))
}

// TestFileUsagePersistence reopens the file: counts and writers survive.
func TestFileUsagePersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aiproxy.db")
	first := &FileStore{Path: path}
	if err := provisionErr(t, first); err != nil {
		t.Fatal(err)
	}
	r := row("max", "m", "2030-01-01", 3)
	mustAddUsage(t, first, ub(4, r))
	if err := first.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := first.AddUsage(context.Background(), ub(5, r)); err == nil {
		t.Error("AddUsage on a closed store succeeded")
	}

	second := &FileStore{Path: path}
	provision(t, second)
	mustAddUsage(t, second, ub(4, r)) // still remembered
	wantRows(t, "after reopen", mustQueryUsage(t, second, UsageFilter{From: "2030-01-01", To: "2030-01-01"}), r)
}
