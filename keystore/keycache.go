package keystore

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxCachedKeys bounds the key cache; past it, an arbitrary entry makes
// room. Each entry is a user record, a few hundred bytes.
const maxCachedKeys = 65536

// maxKeyAge bounds how long a key is served from memory without reading
// Redis again: a backstop for the changes Redis sends no invalidation
// for (SWAPDB, a TTL set on a record by hand, a master cut off from its
// peers but not from this instance).
const maxKeyAge = 30 * time.Second

// Key lookups of every Redis store of the process, by where they were
// answered: for the metrics, which show whether the cache works.
var lookupsFromMemory, lookupsFromRedis atomic.Uint64

// RedisKeyLookups returns how many key lookups of the process's Redis
// stores were answered from memory and how many read Redis.
func RedisKeyLookups() (memory, redis uint64) {
	return lookupsFromMemory.Load(), lookupsFromRedis.Load()
}

// keyCache keeps the users that key lookups found, so that a lookup is
// answered from memory. An entry is only as good as the invalidations
// Redis sends for what it was read from, the key's index entry and its
// user's record: either changing drops it, and a tracking connection lost
// drops everything (it cannot know what it missed).
//
// Fills race with invalidations: a record read before a change may be
// delivered after that change's invalidation. So every invalidation moves
// the epoch on, and a fill whose read began in an earlier epoch is not
// kept.
type keyCache struct {
	epoch atomic.Uint64

	now func() time.Time // time.Now; tests move it on

	mu      sync.RWMutex
	byEntry map[keyEntry]cachedKey // what each key resolved to
	byRead  map[string]keyEntry    // Redis key read -> the key in byEntry it fed
}

// keyEntry names a key of one deployment: stores with different key
// prefixes share a cache when they share a client.
type keyEntry struct{ prefix, hash string }

// cachedKey is a user found by a key, the Redis keys it was read from,
// and when it goes stale.
type cachedKey struct {
	reads   [2]string // the index entry and the user record
	user    User
	expires time.Time
}

func newKeyCache() *keyCache {
	return &keyCache{now: time.Now, byEntry: make(map[keyEntry]cachedKey), byRead: make(map[string]keyEntry)}
}

// get returns the user the key resolved to, when cached and fresh.
func (c *keyCache) get(entry keyEntry) (User, bool) {
	c.mu.RLock()
	k, ok := c.byEntry[entry]
	c.mu.RUnlock()
	if !ok || !c.now().Before(k.expires) {
		return User{}, false
	}
	return k.user, true
}

// begin returns the epoch to pass to put, taken before the record is read.
func (c *keyCache) begin() uint64 { return c.epoch.Load() }

// put keeps what a lookup read from the key's index entry and its user's
// record, unless an invalidation came since begin.
func (c *keyCache) put(epoch uint64, entry keyEntry, index, record string, u User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Checked under the lock: invalidations move the epoch on under it too,
	// so none can slip between this check and the write.
	if c.epoch.Load() != epoch {
		return
	}
	c.drop(entry)
	for _, r := range [2]string{index, record} {
		if old, ok := c.byRead[r]; ok {
			c.drop(old)
		}
	}
	if len(c.byEntry) >= maxCachedKeys {
		for e := range c.byEntry {
			c.drop(e)
			break
		}
	}
	c.byEntry[entry] = cachedKey{reads: [2]string{index, record}, user: u, expires: c.now().Add(maxKeyAge)}
	c.byRead[index] = entry
	c.byRead[record] = entry
}

// drop removes one key and what points to it; the caller holds mu.
func (c *keyCache) drop(entry keyEntry) {
	k, ok := c.byEntry[entry]
	if !ok {
		return
	}
	delete(c.byEntry, entry)
	for _, r := range k.reads {
		if c.byRead[r] == entry {
			delete(c.byRead, r)
		}
	}
}

// forget drops the keys read from these Redis keys.
func (c *keyCache) forget(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	for _, r := range keys {
		if e, ok := c.byRead[r]; ok {
			c.drop(e)
		}
	}
}

// clear drops everything.
func (c *keyCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	clear(c.byEntry)
	clear(c.byRead)
}

// len returns the number of cached keys.
func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byEntry)
}
