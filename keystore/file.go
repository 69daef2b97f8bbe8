package keystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(FileStore{})
}

// Bucket names of the bbolt file. Records are JSON so that they can gain
// fields without a migration; file_usage.go describes the usage buckets.
var (
	bucketUsers        = []byte("users")         // user name -> JSON User
	bucketKeys         = []byte("keys")          // key hash (hex SHA-256) -> user name
	bucketHosts        = []byte("hosts")         // host name -> JSON Host
	bucketUsage        = []byte("usage")         // "date\x00user\x00id\x00model" -> JSON UsageCounts
	bucketUsageWriters = []byte("usage_writers") // usage writer and user -> last batch applied and when
	bucketMeta         = []byte("meta")          // "version" -> schema version; see also metaUsagePruned
	bucketSpend        = []byte("spend")         // "<user ID>\x00<period key>" -> JSON spendRecord (file_spend.go)
	bucketRequests     = []byte("requests")      // sequence number -> JSON RequestRecord (file_requestlog.go)
)

// fileSchemaVersion is written to the meta bucket so a later release can
// tell which layout a file has; file_migrate.go upgrades older ones.
const fileSchemaVersion = "2"

// openTimeout bounds the wait for bbolt's file lock, held by another process
// that has the same file open: fail the config load rather than hang.
const openTimeout = time.Second

// FileStore keeps users and hosts in an embedded bbolt database file. It is
// the default store: no server to run, and lookups are a single read
// transaction on a memory-mapped file. Only one process can open the file at
// a time; config reloads within one process share it.
type FileStore struct {
	// Path of the database file. Placeholders such as {env.AIPROXY_DB} are
	// expanded. Missing directories are created (mode 0700), the file with
	// mode 0600. Default: aiproxy/aiproxy.db in Caddy's data directory.
	Path string `json:"path,omitempty"`

	db      *bbolt.DB
	keys    *keyIndex   // shared with db's other users, like db
	spend   *fileSpend  // shared too
	file    *openFile   // shared too
	poolKey boltPoolKey // set while this instance holds a reference
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (FileStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "aiproxy.stores.file",
		New: func() caddy.Module { return new(FileStore) },
	}
}

// Provision opens the database file, or takes another reference to it when a
// config that is still running has it open already.
func (s *FileStore) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()

	path := caddy.NewReplacer().ReplaceKnown(s.Path, "")
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "aiproxy", "aiproxy.db")
	}
	path, err := canonicalPath(path)
	if err != nil {
		return fmt.Errorf("key store file: %v", err)
	}

	key := boltPoolKey(path)
	val, _, err := handles.LoadOrNew(key, func() (caddy.Destructor, error) {
		db, err := openBolt(path)
		if err != nil {
			return nil, err
		}
		keys, err := loadKeyIndex(db)
		if err != nil {
			db.Close()
			return nil, err
		}
		file, err := statOpenFile(path)
		if err != nil {
			db.Close()
			return nil, err
		}
		s.logger.Debug("opened key store file", zap.String("path", path))
		return boltHandle{db: db, keys: keys, file: file, spend: startFileSpend(db, s.logger)}, nil
	})
	if err != nil {
		return fmt.Errorf("key store file %s: %v", path, err)
	}
	s.db = val.(boltHandle).db
	s.keys = val.(boltHandle).keys
	s.file = val.(boltHandle).file
	s.spend = val.(boltHandle).spend
	s.poolKey = key
	// The context ends when this config is unloaded.
	go s.watchFile(ctx, fileCheckInterval)
	return nil
}

// Cleanup releases this instance's reference to the database; the file is
// closed when no config uses it any more. Calling it again does nothing.
func (s *FileStore) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	key := s.poolKey
	s.poolKey = ""
	_, err := handles.Delete(key)
	return err
}

// canonicalPath makes path absolute and resolves symlinks in its directory,
// which it creates if needed, so that one file always gets one pool key.
func canonicalPath(path string) (string, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	dir, err = filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(path)), nil
}

// openBolt opens (creating if needed) the database and its buckets.
func openBolt(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: openTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%v: the file is locked, probably by another Caddy process", err)
	}
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		// New buckets join this list: a file written by an older build
		// simply gains them, so the schema version stays.
		for _, name := range [][]byte{bucketUsers, bucketKeys, bucketHosts, bucketUsage, bucketUsageWriters, bucketSpend, bucketRequests} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get([]byte("version")); {
		case v == nil:
			return meta.Put([]byte("version"), []byte(fileSchemaVersion))
		case string(v) == "1":
			return migrateFileV1(tx)
		case string(v) != fileSchemaVersion:
			return fmt.Errorf("unsupported schema version %q (this build knows %q)", v, fileSchemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// view runs fn in a read transaction, mapping failures onto the package's errors.
func (s *FileStore) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return unavailable(err)
	}
	return fileErr(s.db.View(fn))
}

// update runs fn in a write transaction, mapping failures onto the package's errors.
func (s *FileStore) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return unavailable(err)
	}
	return fileErr(s.db.Update(fn))
}

// fileErr passes the package's own errors through and wraps the rest (I/O,
// a closed database, a corrupt record) in ErrUnavailable.
func fileErr(err error) error {
	if err == nil || isOwnError(err) {
		return err
	}
	return unavailable(err)
}

// getUser reads and decodes a user within tx.
func getUser(tx *bbolt.Tx, name string) (User, error) {
	var u User
	raw := tx.Bucket(bucketUsers).Get([]byte(name))
	if raw == nil {
		return u, ErrNotFound
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, fmt.Errorf("decoding user record: %w", err)
	}
	return u, nil
}

// putUser encodes and writes a user within tx.
func putUser(tx *bbolt.Tx, u User) error {
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketUsers).Put([]byte(u.Name), raw)
}

// getHost reads and decodes a host within tx.
func getHost(tx *bbolt.Tx, name string) (Host, error) {
	var h Host
	raw := tx.Bucket(bucketHosts).Get([]byte(name))
	if raw == nil {
		return h, ErrNotFound
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, fmt.Errorf("decoding host record: %w", err)
	}
	return h, nil
}

// putHost encodes and writes a host within tx.
func putHost(tx *bbolt.Tx, h Host) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketHosts).Put([]byte(h.Name), raw)
}

// LookupKey implements Store: a read of the in-memory key index.
func (s *FileStore) LookupKey(ctx context.Context, keyHash string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, unavailable(err)
	}
	u, found, open := s.keys.lookup(keyHash)
	switch {
	case !open:
		return User{}, unavailable(bolterrors.ErrDatabaseNotOpen)
	case !found:
		return User{}, ErrNotFound
	}
	return u, nil
}

// updateUser runs a user change and applies it to the key index once
// committed. fn reports the key hash it removed and the user as it is now
// (nil when deleted).
func (s *FileStore) updateUser(ctx context.Context, fn func(tx *bbolt.Tx) (removedHash string, current *User, err error)) error {
	s.keys.writes.Lock()
	defer s.keys.writes.Unlock()
	var removed string
	var current *User
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		removed, current, err = fn(tx)
		return err
	})
	if err == nil {
		s.keys.apply(removed, current)
	}
	return err
}

// CreateUser implements Store.
func (s *FileStore) CreateUser(ctx context.Context, u User) error {
	if err := validUser(u); err != nil {
		return err
	}
	normalizeTimes(&u)
	if u.ID == "" {
		u.ID = NewUserID()
	}
	return s.updateUser(ctx, func(tx *bbolt.Tx) (string, *User, error) {
		if tx.Bucket(bucketUsers).Get([]byte(u.Name)) != nil {
			return "", nil, ErrExists
		}
		keys := tx.Bucket(bucketKeys)
		if keys.Get([]byte(u.KeyHash)) != nil {
			return "", nil, errHashInUse
		}
		if err := keys.Put([]byte(u.KeyHash), []byte(u.Name)); err != nil {
			return "", nil, err
		}
		return "", &u, putUser(tx, u)
	})
}

// GetUser implements Store.
func (s *FileStore) GetUser(ctx context.Context, name string) (User, error) {
	var u User
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		u, err = getUser(tx, name)
		return err
	})
	return u, err
}

// ListUsers implements Store. bbolt iterates in byte order, which is the
// sort order the interface promises.
func (s *FileStore) ListUsers(ctx context.Context) ([]User, error) {
	return listRecords[User](ctx, s, bucketUsers, "user")
}

// ResetKey implements Store.
func (s *FileStore) ResetKey(ctx context.Context, name, keyHash, keyHint string) (User, error) {
	var u User
	err := s.updateUser(ctx, func(tx *bbolt.Tx) (string, *User, error) {
		var err error
		u, err = getUser(tx, name)
		if err != nil {
			return "", nil, err
		}
		keys := tx.Bucket(bucketKeys)
		if keyHash == u.KeyHash {
			u.KeyHint = keyHint
			return "", &u, putUser(tx, u)
		}
		if keys.Get([]byte(keyHash)) != nil {
			return "", nil, errHashInUse
		}
		oldHash := u.KeyHash
		if err := keys.Delete([]byte(oldHash)); err != nil {
			return "", nil, err
		}
		if err := keys.Put([]byte(keyHash), []byte(name)); err != nil {
			return "", nil, err
		}
		u.KeyHash, u.KeyHint = keyHash, keyHint
		return oldHash, &u, putUser(tx, u)
	})
	return u, err
}

// SetExpiry implements Store.
func (s *FileStore) SetExpiry(ctx context.Context, name string, expiresAt time.Time) (User, error) {
	var u User
	err := s.updateUser(ctx, func(tx *bbolt.Tx) (string, *User, error) {
		var err error
		u, err = getUser(tx, name)
		if err != nil {
			return "", nil, err
		}
		u.ExpiresAt = expiresAt
		normalizeTimes(&u)
		return "", &u, putUser(tx, u)
	})
	return u, err
}

// UpdatePolicy implements Store.
func (s *FileStore) UpdatePolicy(ctx context.Context, name string, change func(*Policy) error) (User, error) {
	var u User
	var changeErr error
	err := s.updateUser(ctx, func(tx *bbolt.Tx) (string, *User, error) {
		var err error
		u, err = getUser(tx, name)
		if err != nil {
			return "", nil, err
		}
		if changeErr = change(&u.Policy); changeErr != nil {
			return "", nil, changeErr
		}
		return "", &u, putUser(tx, u)
	})
	if changeErr != nil {
		return User{}, changeErr // the caller's, not the store's
	}
	return u, err
}

// DeleteUser implements Store.
func (s *FileStore) DeleteUser(ctx context.Context, name string) error {
	return s.updateUser(ctx, func(tx *bbolt.Tx) (string, *User, error) {
		u, err := getUser(tx, name)
		if err != nil {
			return "", nil, err
		}
		if err := tx.Bucket(bucketKeys).Delete([]byte(u.KeyHash)); err != nil {
			return "", nil, err
		}
		return u.KeyHash, nil, tx.Bucket(bucketUsers).Delete([]byte(name))
	})
}

// AddHostKey implements Store.
func (s *FileStore) AddHostKey(ctx context.Context, host, baseURL, key string) (string, error) {
	var id string
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		h, err := getHost(tx, host)
		if errors.Is(err, ErrNotFound) {
			h, err = Host{Name: host}, nil
		}
		if err != nil {
			return err
		}
		id = addHostKey(&h, baseURL, key)
		return putHost(tx, h)
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// SetHostModels implements Store.
func (s *FileStore) SetHostModels(ctx context.Context, host string, models []string) (Host, error) {
	var h Host
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		if h, err = getHost(tx, host); err != nil {
			return err
		}
		h.Models = models
		return putHost(tx, h)
	})
	if err != nil {
		return Host{}, err
	}
	return h, nil
}

// ListHosts implements Store. bbolt iterates in byte order, which is the
// sort order the interface promises.
func (s *FileStore) ListHosts(ctx context.Context) ([]Host, error) {
	return listRecords[Host](ctx, s, bucketHosts, "host")
}

// listRecords decodes every JSON record of a bucket, in key order.
func listRecords[T any](ctx context.Context, s *FileStore, bucket []byte, what string) ([]T, error) {
	records := []T{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, raw []byte) error {
			var rec T
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("decoding %s record: %w", what, err)
			}
			records = append(records, rec)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return records, nil
}

// DeleteHostKey implements Store.
func (s *FileStore) DeleteHostKey(ctx context.Context, host, id string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		h, err := getHost(tx, host)
		if err != nil {
			return err
		}
		if !removeHostKey(&h, id) {
			return ErrNotFound
		}
		if len(h.Keys) == 0 {
			return tx.Bucket(bucketHosts).Delete([]byte(host))
		}
		return putHost(tx, h)
	})
}

// DeleteHost implements Store.
func (s *FileStore) DeleteHost(ctx context.Context, host string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketHosts)
		if b.Get([]byte(host)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(host))
	})
}

// Interface guards
var (
	_ Store                 = (*FileStore)(nil)
	_ caddy.Provisioner     = (*FileStore)(nil)
	_ caddy.CleanerUpper    = (*FileStore)(nil)
	_ caddyfile.Unmarshaler = (*FileStore)(nil)
)
