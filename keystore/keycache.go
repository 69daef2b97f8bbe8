package keystore

import (
	"sync"
	"sync/atomic"
)

// maxCachedKeys bounds the key cache; past it, an arbitrary entry makes
// room. Each entry is a user record, a few hundred bytes.
const maxCachedKeys = 65536

// keyCache keeps the users that key lookups found, so that a lookup is
// answered from memory. An entry is only as good as the invalidations
// Redis sends for its record: the tracker that read the record drops the
// entry when the record changes, and drops everything when it loses its
// connection (it cannot know what it missed).
//
// Fills race with invalidations: a record read before a change may be
// delivered after that change's invalidation. So every invalidation moves
// the epoch on, and a fill whose read began in an earlier epoch is not
// kept.
type keyCache struct {
	epoch atomic.Uint64

	mu       sync.RWMutex
	byEntry  map[keyEntry]cachedKey // what each key resolved to
	byRecord map[string]keyEntry    // user record key -> its key in byEntry
}

// keyEntry names a key of one deployment: stores with different key
// prefixes share a cache when they share a client.
type keyEntry struct{ prefix, hash string }

// cachedKey is a user found by a key, and the record that decided it.
type cachedKey struct {
	record string
	user   User
}

func newKeyCache() *keyCache {
	return &keyCache{byEntry: make(map[keyEntry]cachedKey), byRecord: make(map[string]keyEntry)}
}

// get returns the user the key resolved to, when cached.
func (c *keyCache) get(entry keyEntry) (User, bool) {
	c.mu.RLock()
	k, ok := c.byEntry[entry]
	c.mu.RUnlock()
	return k.user, ok
}

// begin returns the epoch to pass to put, taken before the record is read.
func (c *keyCache) begin() uint64 { return c.epoch.Load() }

// put keeps what a lookup read, unless an invalidation came since begin.
func (c *keyCache) put(epoch uint64, entry keyEntry, record string, u User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Checked under the lock: invalidations move the epoch on under it too,
	// so none can slip between this check and the write.
	if c.epoch.Load() != epoch {
		return
	}
	if old, ok := c.byRecord[record]; ok {
		delete(c.byEntry, old)
	}
	if len(c.byEntry) >= maxCachedKeys {
		for e, k := range c.byEntry {
			delete(c.byEntry, e)
			delete(c.byRecord, k.record)
			break
		}
	}
	c.byEntry[entry] = cachedKey{record: record, user: u}
	c.byRecord[record] = entry
}

// forget drops what was read from these user records.
func (c *keyCache) forget(records ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	for _, r := range records {
		if e, ok := c.byRecord[r]; ok {
			delete(c.byEntry, e)
			delete(c.byRecord, r)
		}
	}
}

// clear drops everything.
func (c *keyCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	clear(c.byEntry)
	clear(c.byRecord)
}

// len returns the number of cached keys.
func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byEntry)
}
