package keystore

import (
	"encoding/json"
	"fmt"
	"sync"

	"go.etcd.io/bbolt"
)

// keyIndex is the file store's in-memory copy of its users by key hash, so
// a proxied request checks its key with a map read instead of a bbolt
// transaction and a JSON decode. It is exact because bbolt's file lock lets
// only this process write the file, and every user change goes through the
// FileStore that owns the index: the change is applied here after its
// transaction commits and before the call returns.
type keyIndex struct {
	// writes serialises user changes (transaction, then index update), so
	// the index sees them in commit order.
	writes sync.Mutex

	mu     sync.RWMutex
	byHash map[string]User // nil once the database is closed
}

// loadKeyIndex reads every user of db.
func loadKeyIndex(db *bbolt.DB) (*keyIndex, error) {
	idx := &keyIndex{byHash: make(map[string]User)}
	err := db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(_, raw []byte) error {
			var u User
			if err := json.Unmarshal(raw, &u); err != nil {
				return fmt.Errorf("decoding user record: %w", err)
			}
			idx.byHash[u.KeyHash] = u
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return idx, nil
}

// lookup returns the user whose key hashes to keyHash; open is false once
// the database has been closed.
func (idx *keyIndex) lookup(keyHash string) (u User, found, open bool) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	u, found = idx.byHash[keyHash]
	return u, found, idx.byHash != nil
}

// close empties the index when its database closes, so lookups fail as
// reads of the closed file would.
func (idx *keyIndex) close() {
	idx.mu.Lock()
	idx.byHash = nil
	idx.mu.Unlock()
}

// apply records a committed change: the key hash removed (if any) and the
// user as it now is (if not deleted).
func (idx *keyIndex) apply(removedHash string, current *User) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if idx.byHash == nil {
		return
	}
	if removedHash != "" {
		delete(idx.byHash, removedHash)
	}
	if current != nil {
		idx.byHash[current.KeyHash] = *current
	}
}
