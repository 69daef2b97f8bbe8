package keystore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// lookupKeyScript reads a key's index entry and then its user's record in
// one round trip. The record's key is derived inside the script, which Redis
// allows outside Cluster only; a Cluster client does the two GETs itself.
//
// KEYS[1] is the index entry; ARGV[1] the key prefix.
var lookupKeyScript = redis.NewScript(`
local name = redis.call('GET', KEYS[1])
if not name then return false end
return redis.call('GET', ARGV[1] .. '{u:' .. name .. '}:user')
`)

// The steps of the user changes that touch several hash slots, in order.
// A change stopped after any of them (a crash, a lost connection) leaves
// the record deciding: never two working keys, never a working deleted one.
const (
	stepCreateEntry  = "create: key entry written"
	stepCreateSets   = "create: name sets written"
	stepResetEntry   = "reset: new key entry written"
	stepResetRecord  = "reset: record switched"
	stepDeleteRecord = "delete: record deleted"
	stepDeleteEntry  = "delete: key entry deleted"
)

// errCrashed is what crashPoint returns when a test stops a change there.
var errCrashed = unavailable(errors.New("stopped between steps"))

// crashPoint lets a test stop a multi-step change after step, as a crash
// would: nothing after it runs, no clean-up included.
func (s *RedisStore) crashPoint(step string) error {
	if s.crashAfter != nil && s.crashAfter(step) {
		return errCrashed
	}
	return nil
}

// getUserTx reads a user inside a watch.
func getUserTx(ctx context.Context, tx *redis.Tx, key string) (User, error) {
	raw, err := tx.Get(ctx, key).Bytes()
	if err != nil {
		return User{}, redisErr(err)
	}
	return decodeUser(raw)
}

// isCluster reports whether the client spreads keys over Cluster shards.
func (s *RedisStore) isCluster() bool {
	_, ok := s.client.(*redis.ClusterClient)
	return ok
}

// LookupKey implements Store: the key's index entry names the user, and the
// user's record, the authority, must still hold the key's hash. A key
// found once is served from memory until Redis reports its entry or record
// changed (redis_tracking.go).
func (s *RedisStore) LookupKey(ctx context.Context, keyHash string) (User, error) {
	// Entries exist only once the layout is checked: no need to ask.
	if u, ok := s.tracking.cache.get(keyEntry{s.keys.prefix, keyHash}); ok {
		lookupsFromMemory.Add(1)
		return u, nil
	}
	lookupsFromRedis.Add(1)
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.ensureLayout(ctx); err != nil {
		return User{}, err
	}
	if u, err := s.lookupTracked(ctx, keyHash); !errors.Is(err, errNotTracked) {
		return u, err
	}
	entry := s.keys.key(keyHash)
	var raw []byte
	var err error
	if s.isCluster() {
		var name string
		name, err = s.client.Get(ctx, entry).Result()
		if err == nil {
			raw, err = s.client.Get(ctx, s.keys.user(name)).Bytes()
		}
	} else {
		var text string
		text, err = lookupKeyScript.Run(ctx, s.client, []string{entry}, s.keys.prefix).Text()
		raw = []byte(text)
	}
	if err != nil {
		return User{}, redisErr(err)
	}
	return s.userOfKey(raw, keyHash)
}

// lookupTracked reads the key's index entry and its user's record on
// tracking connections, so that a change of either drops the key from the
// cache, and caches the user found. errNotTracked, before anything is
// read, when the entry's connection is not up; a record whose connection
// is not up is read the usual way, and not cached.
func (s *RedisStore) lookupTracked(ctx context.Context, keyHash string) (User, error) {
	epoch := s.tracking.cache.begin()
	entry := s.keys.key(keyHash)
	name, err := s.tracking.read(ctx, entry)
	if err != nil {
		return User{}, err
	}
	record := s.keys.user(string(name))
	raw, err := s.tracking.read(ctx, record)
	tracked := err == nil
	if errors.Is(err, errNotTracked) {
		raw, err = s.client.Get(ctx, record).Bytes()
		err = redisErr(err)
	}
	if err != nil {
		return User{}, err
	}
	u, err := s.userOfKey(raw, keyHash)
	if err == nil && tracked {
		s.tracking.cache.put(epoch, keyEntry{s.keys.prefix, keyHash}, entry, record, u)
	}
	return u, err
}

// userOfKey decodes a key's user record and checks it still holds the key.
func (s *RedisStore) userOfKey(raw []byte, keyHash string) (User, error) {
	u, err := decodeUser(raw)
	if err != nil {
		return User{}, err
	}
	if u.KeyHash != keyHash {
		// A stale entry: the key was reset or the user deleted (and maybe
		// created again) and the entry's removal has not happened yet.
		return User{}, ErrNotFound
	}
	return u, nil
}

// forgetUser drops the user's cached keys at once after a change through
// this store; other instances learn of it from Redis.
func (s *RedisStore) forgetUser(name string) {
	s.tracking.cache.forget(s.keys.user(name))
}

// CreateUser implements Store. The order of its steps keeps every failure
// harmless: the key entry first (useless without a record), then the name
// sets (a listing skips names without a record), then the record, which
// makes the user real.
func (s *RedisStore) CreateUser(ctx context.Context, u User) error {
	if err := s.ensureLayout(ctx); err != nil {
		return err
	}
	if err := validUser(u); err != nil {
		return err
	}
	normalizeTimes(&u)
	if u.ID == "" {
		u.ID = NewUserID()
	}
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	keyKey, userKey, owner := s.keys.key(u.KeyHash), s.keys.user(u.Name), u.Name+"/"+u.ID
	if ok, err := s.client.SetNX(ctx, keyKey, u.Name, 0).Result(); err != nil {
		return redisErr(err)
	} else if !ok {
		return errHashInUse
	}
	if err := s.crashPoint(stepCreateEntry); err != nil {
		return err
	}
	undoKey := func() { s.client.Del(context.WithoutCancel(ctx), keyKey) }
	if _, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, s.keys.users, u.Name)
		p.SAdd(ctx, s.keys.owners, owner)
		return nil
	}); err != nil {
		undoKey()
		return redisErr(err)
	}
	if err := s.crashPoint(stepCreateSets); err != nil {
		return err
	}
	err = s.watchIn(ctx, func(ctx context.Context, tx *redis.Tx) error {
		if n, err := tx.Exists(ctx, userKey).Result(); err != nil {
			return err
		} else if n > 0 {
			return ErrExists
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, userKey, raw, 0)
			p.SAdd(ctx, s.keys.userIDs(u.Name), u.ID)
			return nil
		})
		return err
	}, userKey)
	if err != nil {
		undoKey()
		if errors.Is(err, ErrExists) {
			s.client.SRem(context.WithoutCancel(ctx), s.keys.owners, owner)
		}
	}
	return err
}

// GetUser implements Store.
func (s *RedisStore) GetUser(ctx context.Context, name string) (User, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return User{}, err
	}
	return s.getUser(ctx, name)
}

// getUser reads a user record, whatever the layout check says: the
// migration reads with it.
func (s *RedisStore) getUser(ctx context.Context, name string) (User, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	raw, err := s.client.Get(ctx, s.keys.user(name)).Bytes()
	if err != nil {
		return User{}, redisErr(err)
	}
	return decodeUser(raw)
}

// ListUsers implements Store: the name set, then the records, read in one
// pipeline (split by shard on a Cluster). Names without a record (a delete
// or create that stopped half way) are skipped.
func (s *RedisStore) ListUsers(ctx context.Context) ([]User, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	names, err := s.client.SMembers(ctx, s.keys.users).Result()
	if err != nil || len(names) == 0 {
		return []User{}, redisErr(err)
	}
	cmds := make([]*redis.StringCmd, len(names))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.Get(ctx, s.keys.user(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr(err)
	}
	users := make([]User, 0, len(names))
	for _, c := range cmds {
		raw, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			return nil, redisErr(err)
		}
		u, err := decodeUser(raw)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	slices.SortFunc(users, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return users, nil
}

// ResetKey implements Store: the new key's entry, then the record (watched,
// so concurrent resets serialize: each replaces the key the previous one
// wrote), then the old entry's removal. The old key is refused from the
// moment the record changes, whether or not that removal happens.
func (s *RedisStore) ResetKey(ctx context.Context, name, keyHash, keyHint string) (User, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return User{}, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	newKey := s.keys.key(keyHash)
	created, err := s.client.SetNX(ctx, newKey, name, 0).Result()
	if err != nil {
		return User{}, redisErr(err)
	}
	if !created {
		// Taken: fine only if it is this user's current key already.
		if owner, err := s.client.Get(ctx, newKey).Result(); err != nil {
			return User{}, redisErr(err)
		} else if owner != name {
			return User{}, errHashInUse
		}
	}
	if err := s.crashPoint(stepResetEntry); err != nil {
		return User{}, err
	}
	var oldHash string
	out, err := s.changeUser(ctx, name, func(u *User) error {
		oldHash = u.KeyHash
		u.KeyHash, u.KeyHint = keyHash, keyHint
		return nil
	})
	if err != nil {
		// The switch may have happened without its reply arriving: the
		// new entry goes only if the record does not hold it.
		if u, gerr := s.getUser(context.WithoutCancel(ctx), name); created && (gerr != nil || u.KeyHash != keyHash) {
			s.client.Del(context.WithoutCancel(ctx), newKey)
		}
		return User{}, err
	}
	if err := s.crashPoint(stepResetRecord); err != nil {
		return User{}, err
	}
	if oldHash != keyHash {
		// Refused already; removing the entry only saves the memory, so a
		// failure here is not the caller's.
		s.client.Del(ctx, s.keys.key(oldHash))
	}
	return out, nil
}

// SetExpiry implements Store: the record alone holds the expiry.
func (s *RedisStore) SetExpiry(ctx context.Context, name string, expiresAt time.Time) (User, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return User{}, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.changeUser(ctx, name, func(u *User) error {
		u.ExpiresAt = expiresAt
		normalizeTimes(u)
		return nil
	})
}

// UpdatePolicy implements Store: the record alone holds the policy.
func (s *RedisStore) UpdatePolicy(ctx context.Context, name string, change func(*Policy) error) (User, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return User{}, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	var changeErr error
	u, err := s.changeUser(ctx, name, func(u *User) error {
		changeErr = change(&u.Policy)
		return changeErr
	})
	if changeErr != nil {
		return User{}, changeErr // the caller's, not the store's
	}
	return u, err
}

// changeUser applies change to a user's record in a watched transaction,
// so concurrent changes serialize, and returns the user as written.
// An error from change aborts the transaction and is returned as it is.
func (s *RedisStore) changeUser(ctx context.Context, name string, change func(*User) error) (User, error) {
	defer s.forgetUser(name)
	userKey := s.keys.user(name)
	var out User
	err := s.watchIn(ctx, func(ctx context.Context, tx *redis.Tx) error {
		u, err := getUserTx(ctx, tx, userKey)
		if err != nil {
			return err
		}
		if err := change(&u); err != nil {
			return err
		}
		raw, err := json.Marshal(u)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, userKey, raw, 0)
			return nil
		})
		out = u
		return err
	}, userKey)
	if err != nil {
		return User{}, err
	}
	return out, nil
}

// DeleteUser implements Store: the record goes first, and with it the key;
// the index entry and the name are tidied after. The user's usage and ID
// history stay, for the admin's reports.
func (s *RedisStore) DeleteUser(ctx context.Context, name string) error {
	if err := s.ensureLayout(ctx); err != nil {
		return err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	defer s.forgetUser(name)
	userKey := s.keys.user(name)
	var u User
	err := s.watchIn(ctx, func(ctx context.Context, tx *redis.Tx) error {
		var err error
		if u, err = getUserTx(ctx, tx, userKey); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, userKey)
			return nil
		})
		return err
	}, userKey)
	if err != nil {
		return err
	}
	// Both are harmless if left behind: the entry is refused without its
	// record, and listings skip names without one.
	if err := s.crashPoint(stepDeleteRecord); err != nil {
		return err
	}
	s.client.Del(ctx, s.keys.key(u.KeyHash))
	if err := s.crashPoint(stepDeleteEntry); err != nil {
		return err
	}
	s.client.SRem(ctx, s.keys.users, name)
	// A user created under the name meanwhile would now be missing from
	// listings: its record says it exists, so the name goes back.
	if n, err := s.client.Exists(ctx, userKey).Result(); err == nil && n > 0 {
		s.client.SAdd(ctx, s.keys.users, name)
	}
	return nil
}
