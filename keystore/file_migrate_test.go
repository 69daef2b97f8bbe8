package keystore

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestFileMigration opens a schema 1 file: users get IDs, usage moves to
// them, and a deleted user's usage to the former-user ID of its name.
func TestFileMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aiproxy.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := newTestUser("alice")
	err = db.Update(func(tx *bbolt.Tx) error {
		b := func(name string) *bbolt.Bucket {
			bk, err := tx.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				t.Fatal(err)
			}
			return bk
		}
		raw, _ := json.Marshal(alice)
		b("users").Put([]byte("alice"), raw)
		b("keys").Put([]byte(alice.KeyHash), []byte("alice"))
		b("hosts")
		counts, _ := json.Marshal(UsageCounts{Requests: 2})
		b("usage").Put([]byte("2030-01-01\x00alice\x00m"), counts)
		b("usage").Put([]byte("2030-01-01\x00gone\x00m\x00x"), counts) // model "m\x00x"
		b("usage_batches").Put([]byte("b1"), unixBytes(time.Now()))
		return b("meta").Put([]byte("version"), []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := &FileStore{Path: path}
	provision(t, s)
	ctx := context.Background()
	u, err := s.LookupKey(ctx, alice.KeyHash)
	if err != nil || !IsUserID(u.ID) {
		t.Fatalf("alice after migration: %+v, %v", u, err)
	}
	wantRows(t, "usage after migration", mustQueryUsage(t, s, UsageFilter{From: "2030-01-01", To: "2030-01-01"}),
		UsageRow{UsageKey: UsageKey{User: "alice", UserID: u.ID, Model: "m", Date: "2030-01-01"}, UsageCounts: UsageCounts{Requests: 2}},
		UsageRow{UsageKey: UsageKey{User: "gone", UserID: formerUserID("gone"), Model: "m\x00x", Date: "2030-01-01"}, UsageCounts: UsageCounts{Requests: 2}})
	if got, err := s.GetUser(ctx, "alice"); err != nil || got.ID != u.ID {
		t.Errorf("the stored record has ID %q, the key index %q (%v)", got.ID, u.ID, err)
	}
	s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("usage_batches")) != nil {
			t.Error("the schema 1 batch bucket is still there")
		}
		if v := tx.Bucket(bucketMeta).Get([]byte("version")); string(v) != fileSchemaVersion {
			t.Errorf("schema version %q after migration", v)
		}
		return nil
	})
}
