package keystore

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.etcd.io/bbolt"
)

// handles shares open databases and Redis clients between the module
// instances of consecutive configs. Caddy provisions a new config before it
// cleans up the old one, so without sharing a reload would open the same bbolt
// file twice (and block on its lock) or churn Redis connections.
var handles = caddy.NewUsagePool()

// Distinct key types keep the two kinds of handles apart in one pool.
type (
	boltPoolKey  string // absolute path of the database file
	redisPoolKey string // digest of the connection settings
)

// boltHandle is a pooled bbolt database and the index of its users' keys,
// closed when its last user is cleaned up.
type boltHandle struct {
	db    *bbolt.DB
	keys  *keyIndex
	file  *openFile
	spend *fileSpend
}

// Destruct implements caddy.Destructor.
func (h boltHandle) Destruct() error {
	h.keys.close()
	h.spend.stop() // its last write goes before the file closes
	return h.db.Close()
}

// redisHandle is a pooled Redis client and the key cache kept up to date
// through it, closed when its last user is cleaned up.
type redisHandle struct {
	client   redis.UniversalClient
	tracking *keyTracking
}

// Destruct implements caddy.Destructor.
func (h redisHandle) Destruct() error {
	h.tracking.stop()
	return h.client.Close()
}

// Interface guards
var (
	_ caddy.Destructor = boltHandle{}
	_ caddy.Destructor = redisHandle{}
)
