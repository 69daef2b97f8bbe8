package keystore

import (
	"context"
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
	mustAddUsage(t, s, "b-1", r)
	err := s.db.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketUsage).Get([]byte("2030-01-02\x00kim\x00org/m:1|x"))
		var c UsageCounts
		if err := json.Unmarshal(raw, &c); err != nil || c != r.UsageCounts {
			t.Errorf("usage record %s: %+v, %v", raw, c, err)
		}
		if at, ok := unixTime(tx.Bucket(bucketUsageBatches).Get([]byte("b-1"))); !ok || time.Since(at) > time.Minute {
			t.Errorf("batch b-1 recorded at %v, %v", at, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFileUsagePrune checks that AddUsage forgets batch IDs older than
// UsageBatchTTL, scanning at most once every usagePruneEvery.
func TestFileUsagePrune(t *testing.T) {
	s := newFileStore(t)
	now := time.Now()
	put := func(bucket, key []byte, at time.Time) {
		t.Helper()
		err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, unixBytes(at)) })
		if err != nil {
			t.Fatal(err)
		}
	}
	has := func(id string) bool {
		var ok bool
		s.db.View(func(tx *bbolt.Tx) error {
			ok = tx.Bucket(bucketUsageBatches).Get([]byte(id)) != nil
			return nil
		})
		return ok
	}

	put(bucketUsageBatches, []byte("old"), now.Add(-UsageBatchTTL-time.Minute))
	put(bucketUsageBatches, []byte("recent"), now.Add(-UsageBatchTTL+time.Minute))
	err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketUsageBatches).Put([]byte("junk"), []byte("x")) })
	if err != nil {
		t.Fatal(err)
	}
	put(bucketMeta, metaUsagePruned, now.Add(-usagePruneEvery-time.Minute))
	mustAddUsage(t, s, "new", row("lou", "m", "2030-01-01", 1))
	for id, want := range map[string]bool{"old": false, "recent": true, "junk": false, "new": true} {
		if has(id) != want {
			t.Errorf("after a prune, batch %q kept = %v, want %v", id, !want, want)
		}
	}

	// Pruned just now: the next batches do not scan again.
	put(bucketUsageBatches, []byte("old2"), now.Add(-UsageBatchTTL-time.Minute))
	mustAddUsage(t, s, "new2", row("lou", "m", "2030-01-01", 1))
	if !has("old2") {
		t.Error("AddUsage pruned again within usagePruneEvery")
	}
	// A retried batch is neither counted nor a reason to prune.
	mustAddUsage(t, s, "new", row("lou", "m", "2030-01-01", 1))
	wantRows(t, "usage", mustQueryUsage(t, s, UsageFilter{From: "2030-01-01", To: "2030-01-01"}),
		row("lou", "m", "2030-01-01", 2))
}

// TestFileUsagePersistence reopens the file: counts and batch IDs survive.
func TestFileUsagePersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aiproxy.db")
	first := &FileStore{Path: path}
	if err := provisionErr(t, first); err != nil {
		t.Fatal(err)
	}
	r := row("max", "m", "2030-01-01", 3)
	mustAddUsage(t, first, "b1", r)
	if err := first.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := first.AddUsage(context.Background(), "b2", []UsageRow{r}); err == nil {
		t.Error("AddUsage on a closed store succeeded")
	}

	second := &FileStore{Path: path}
	provision(t, second)
	mustAddUsage(t, second, "b1", r) // still remembered
	wantRows(t, "after reopen", mustQueryUsage(t, second, UsageFilter{From: "2030-01-01", To: "2030-01-01"}), r)
}
