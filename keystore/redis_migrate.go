package keystore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// redisLayout is the version of the key layout this build writes (see
// RedisStore). Layout 1 kept everything under the global hash tag:
//
//	{aiproxy}:user:<name>      JSON User (no ID)
//	{aiproxy}:key:<sha256hex>  JSON User, a copy
//	{aiproxy}:usage:<date>     hash "<user>|<model>|<counter>" of one day, all users
//	{aiproxy}:usage:batch:<id> batch markers, expiring after a day
const redisLayout = "2"

// migrationLockTTL bounds how long a crashed migration keeps others waiting.
const migrationLockTTL = 30 * time.Second

// migrationMarkerTTL is how long a user's part of a migrated usage day is
// remembered, so that a migration resumed after a crash does not add it
// twice.
const migrationMarkerTTL = 7 * 24 * time.Hour

// migrateUsageDayScript adds one user's counts of one layout 1 usage day,
// once: KEYS[1] is the marker of this day's migration pass for the user,
// KEYS[2] the user's ID set, KEYS[3] the month hash. ARGV: the marker TTL
// in seconds, the user ID, then field/increment pairs.
var migrateUsageDayScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
	return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
for i = 3, #ARGV, 2 do
	redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
end
return 1
`)

// migrate upgrades layout 1 data to this layout, once per data set: one
// instance migrates under a lock while others wait for it (up to the lock's
// TTL). Every step can be repeated, so a migration cut short resumes where
// it stopped the next time a store starts. Usage that a layout 1 instance
// still writes after the upgrade is migrated at the next start.
func (s *RedisStore) migrate(ctx context.Context) error {
	layout, err := s.client.Get(ctx, s.keys.layout).Result()
	if err == nil && layout == redisLayout && !s.hasLegacyUsage(ctx) {
		return nil
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return redisErr(err)
	}
	lock := migrationLock{key: s.keys.global + "migrating", token: rand.Text()}
	got, err := s.client.SetNX(ctx, lock.key, lock.token, migrationLockTTL).Result()
	if err != nil {
		return redisErr(err)
	}
	if !got {
		return s.awaitMigration(ctx)
	}
	defer lockScript.Run(context.WithoutCancel(ctx), s.client, []string{lock.key}, lock.token, 0)
	start := time.Now()
	ids, err := s.migrateUsers(ctx, lock)
	if err != nil {
		return err
	}
	users := len(ids)
	days, err := s.migrateUsage(ctx, ids, lock)
	if err != nil {
		return err
	}
	if err := s.client.Set(ctx, s.keys.layout, redisLayout, 0).Err(); err != nil {
		return redisErr(err)
	}
	if users > 0 || days > 0 {
		s.logger.Info("migrated the Redis data to the new key layout",
			zap.String("key_prefix", s.keys.prefix), zap.Int("users", users),
			zap.Int("usage_days", days), zap.Duration("took", time.Since(start)))
	}
	return nil
}

// awaitMigration waits for another instance's migration to finish.
func (s *RedisStore) awaitMigration(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, migrationLockTTL)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if v, err := s.client.Get(ctx, s.keys.layout).Result(); err == nil && v == redisLayout {
			return nil
		}
		select {
		case <-ctx.Done():
			return unavailable(fmt.Errorf("waiting for another instance's layout migration: %w", ctx.Err()))
		case <-tick.C:
		}
	}
}

// legacyKey returns the layout 1 key of the given kind ("user:", "key:",
// "usage:") and name.
func (s *RedisStore) legacyKey(kind, name string) string { return s.keys.global + kind + name }

// migrationLock is the lock one migrating instance holds.
type migrationLock struct{ key, token string }

// lockScript extends (ARGV[2] > 0: to that many milliseconds) or releases
// (0) the lock KEYS[1], if it still holds this instance's token ARGV[1]: a
// migration that outlived its lock must not release another's.
var lockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
if tonumber(ARGV[2]) > 0 then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('DEL', KEYS[1])
`)

// extend gives the lock its whole TTL again; false when it was lost.
func (l migrationLock) extend(ctx context.Context, s *RedisStore) (bool, error) {
	n, err := lockScript.Run(ctx, s.client, []string{l.key}, l.token, migrationLockTTL.Milliseconds()).Int()
	return n == 1, redisErr(err)
}

// migrateUsers moves every layout 1 user record to its own hash tag, with a
// new ID, and its key to the spread index. It returns the ID of every user
// there is now, moved or not.
func (s *RedisStore) migrateUsers(ctx context.Context, lock migrationLock) (map[string]string, error) {
	names, err := s.client.SMembers(ctx, s.keys.users).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	ids := make(map[string]string, len(names))
	for i, name := range names {
		if i%200 == 199 {
			if held, err := lock.extend(ctx, s); err != nil {
				return nil, err
			} else if !held {
				return nil, unavailable(errors.New("lost the migration lock while moving users"))
			}
		}
		raw, err := s.client.Get(ctx, s.legacyKey("user:", name)).Bytes()
		if errors.Is(err, redis.Nil) {
			if u, err := s.getUser(ctx, name); err == nil {
				ids[name] = u.ID // moved already
			}
			continue
		} else if err != nil {
			return nil, redisErr(err)
		}
		var u User
		if err := json.Unmarshal(raw, &u); err != nil {
			return nil, unavailable(fmt.Errorf("decoding layout 1 user %q: %w", name, err))
		}
		if cur, err := s.getUser(ctx, name); err == nil {
			u = cur // moved before a crash: keep the ID it got
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		} else {
			u.ID = NewUserID()
		}
		if raw, err = json.Marshal(u); err != nil {
			return nil, err
		}
		if err := s.client.SetNX(ctx, s.keys.key(u.KeyHash), u.Name, 0).Err(); err != nil {
			return nil, redisErr(err)
		}
		if err := s.client.SAdd(ctx, s.keys.owners, u.Name+"/"+u.ID).Err(); err != nil {
			return nil, redisErr(err)
		}
		if _, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SetNX(ctx, s.keys.user(name), raw, 0)
			p.SAdd(ctx, s.keys.userIDs(name), u.ID)
			return nil
		}); err != nil {
			return nil, redisErr(err)
		}
		// Another migration may have moved the user first: its ID is the one.
		stored, err := s.getUser(ctx, name)
		if err != nil {
			return nil, err
		}
		u.ID = stored.ID
		// The old copies go last: until then a restart finds them again.
		if err := s.client.Del(ctx, s.legacyKey("user:", name), s.legacyKey("key:", u.KeyHash)).Err(); err != nil {
			return nil, redisErr(err)
		}
		ids[name] = u.ID
	}
	return ids, nil
}

// globalNode returns the client that owns the global hash tag's slot, for
// scanning the layout 1 keys that all sit there.
func (s *RedisStore) globalNode(ctx context.Context) (redis.UniversalClient, error) {
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, s.keys.users)
		if err != nil {
			return nil, redisErr(err)
		}
		return node, nil
	}
	return s.client, nil
}

// hasLegacyUsage reports whether a layout 1 usage day (or a migration pass
// of one) is left; errors count as no, the next start looks again.
func (s *RedisStore) hasLegacyUsage(ctx context.Context) bool {
	keys, err := s.legacyUsageKeys(ctx, 1)
	return err == nil && len(keys) > 0
}

// legacyUsageKeys lists up to limit (0: all) layout 1 usage days and
// migration passes.
func (s *RedisStore) legacyUsageKeys(ctx context.Context, limit int) ([]string, error) {
	node, err := s.globalNode(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, pattern := range []string{s.legacyKey("usage:", "????-??-??"), s.legacyKey("usage-migrating:", "*")} {
		iter := node.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if limit > 0 && len(keys) >= limit {
				return keys, nil
			}
		}
		if err := iter.Err(); err != nil {
			return nil, redisErr(err)
		}
	}
	return keys, nil
}

// migrateUsage moves every layout 1 usage day to the users' month hashes.
// A day is first renamed to a pass of its own, so that a layout 1 instance
// still writing it starts a new day hash (migrated at a later start); each
// user's part of a pass is added once, under a marker, and the pass is
// deleted when all are in. ids are the users' IDs by name; usage of a name
// without a user goes to formerUserID. The lock is extended after each day.
func (s *RedisStore) migrateUsage(ctx context.Context, ids map[string]string, lock migrationLock) (int, error) {
	keys, err := s.legacyUsageKeys(ctx, 0)
	if err != nil {
		return 0, err
	}
	for i, key := range keys {
		if date, ok := strings.CutPrefix(key, s.legacyKey("usage:", "")); ok {
			pass := s.legacyKey("usage-migrating:", date+":"+rand.Text()[:8])
			if err := s.client.Rename(ctx, key, pass).Err(); err != nil {
				return i, redisErr(err)
			}
			keys[i] = pass
		}
	}
	for i, pass := range keys {
		if err := s.migrateUsagePass(ctx, pass, ids); err != nil {
			return i, err
		}
		if held, err := lock.extend(ctx, s); err != nil {
			return i, err
		} else if !held {
			return i, unavailable(errors.New("lost the migration lock: a day took longer than its TTL"))
		}
	}
	return len(keys), nil
}

// migrateUsagePass adds one renamed layout 1 usage day to the new layout:
// one pipeline of a script run per user (split by shard on a Cluster).
func (s *RedisStore) migrateUsagePass(ctx context.Context, pass string, ids map[string]string) error {
	id := strings.TrimPrefix(pass, s.legacyKey("usage-migrating:", "")) // "<date>:<pass>"
	date, _, _ := strings.Cut(id, ":")
	if _, err := time.Parse(UsageDateLayout, date); err != nil {
		return unavailable(fmt.Errorf("malformed layout 1 usage key %q", pass))
	}
	fields, err := s.client.HGetAll(ctx, pass).Result()
	if err != nil {
		return redisErr(err)
	}
	byUser := make(map[string][]any) // name -> new field, increment, ...
	for field, val := range fields {
		first, last := strings.IndexByte(field, '|'), strings.LastIndexByte(field, '|')
		if first <= 0 || first == last {
			return unavailable(fmt.Errorf("malformed layout 1 usage field %q on %s", field, date))
		}
		if _, err := strconv.ParseInt(val, 10, 64); err != nil {
			return unavailable(fmt.Errorf("layout 1 usage field %q on %s holds %q", field, date, val))
		}
		name := field[:first]
		byUser[name] = append(byUser[name], date[8:10]+field[first:], val)
	}
	owners := make([]any, 0, len(byUser))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for name, incr := range byUser {
			uid, ok := ids[name]
			if !ok {
				uid = formerUserID(name)
			}
			owners = append(owners, name+"/"+uid)
			keys := []string{s.keys.userTag(name) + "migrated:" + id, s.keys.userIDs(name), s.keys.usageMonth(name, uid, monthOf(date))}
			args := append([]any{int64(migrationMarkerTTL / time.Second), uid}, incr...)
			migrateUsageDayScript.Eval(ctx, p, keys, args...)
		}
		if len(owners) > 0 {
			p.SAdd(ctx, s.keys.owners, owners...)
		}
		return nil
	})
	if err != nil {
		return redisErr(err)
	}
	return redisErr(s.client.Del(ctx, pass).Err())
}

// layoutGate makes sure the data is in this build's layout before a store
// reads or writes it: checked (and migrated) once, at provision or, when
// Redis was down then, at the first call. The check runs on its own, bounded
// by migrationTimeout rather than by the deadline of the call that started
// it, so a large migration finishes even while every request gives up on
// it; callers wait for it within their own deadlines.
type layoutGate struct {
	ready atomic.Bool
	mu    sync.Mutex
	run   chan struct{} // closed when the running check ends; nil when none runs
	err   error         // the last check's failure, under mu
}

// migrationTimeout bounds one layout check and migration.
const migrationTimeout = 10 * time.Minute

// ensureLayout checks the layout, migrating if need be, unless that is done.
func (s *RedisStore) ensureLayout(ctx context.Context) error {
	if s.layout.ready.Load() {
		return nil
	}
	g := s.layout
	g.mu.Lock()
	if g.run == nil {
		done := make(chan struct{})
		g.run = done
		go func() {
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), migrationTimeout)
			err := s.migrate(mctx)
			cancel()
			g.mu.Lock()
			g.err, g.run = err, nil
			if err == nil {
				g.ready.Store(true)
			}
			g.mu.Unlock()
			close(done)
		}()
	}
	run := g.run
	g.mu.Unlock()
	select {
	case <-run:
	case <-ctx.Done():
		return unavailable(fmt.Errorf("the key layout is being checked or migrated: %w", ctx.Err()))
	}
	if s.layout.ready.Load() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
