package keystore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/aiproxy/aiproxy/internal/redistest"
)

// otherGateway returns a second store on s's Redis and prefix with
// connection settings of its own, so that it shares neither client nor
// key cache with s: another gateway, as far as s can tell.
func otherGateway(t *testing.T, s *RedisStore) *RedisStore {
	t.Helper()
	o := &RedisStore{Addresses: s.Addresses, MasterName: s.MasterName, KeyPrefix: s.KeyPrefix,
		Timeout: caddy.Duration(time.Second + time.Millisecond)}
	provision(t, o)
	if o.tracking == s.tracking {
		t.Fatal("the two stores share a key cache")
	}
	return o
}

// cachedUser creates a user and looks its key up until the answer comes
// from memory.
func cachedUser(t *testing.T, s *RedisStore, name string) (hash string) {
	t.Helper()
	ctx := context.Background()
	hash = fmt.Sprintf("%x", sha256.Sum256([]byte(name)))
	if err := s.CreateUser(ctx, User{Name: name, KeyHash: hash, KeyHint: "sk-cfw...abcd", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the key to be cached", func() bool {
		if _, err := s.LookupKey(ctx, hash); err != nil {
			t.Fatalf("lookup: %v", err)
		}
		_, ok := s.tracking.cache.get(keyEntry{s.keys.prefix, hash})
		return ok
	})
	return hash
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRedisKeyCacheInvalidated: on every kind of deployment, a cached key
// is refused once another gateway resets it, deletes its user or expires
// it, and once anyone changes its record by hand, as redis-cli would; the
// gateway that made a change refuses the old key at once.
func TestRedisKeyCacheInvalidated(t *testing.T) {
	ctx := context.Background()
	for name, newStore := range map[string]func(testing.TB) *RedisStore{
		"single": newRedisStore, "cluster": newRedisClusterStore, "sentinel": newRedisSentinelStore,
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			o := otherGateway(t, s)
			refusedBy := func(st *RedisStore, hash string) func() bool {
				return func() bool {
					_, err := st.LookupKey(ctx, hash)
					return errors.Is(err, ErrNotFound)
				}
			}

			hash := cachedUser(t, s, "reset")
			cachedUser(t, o, "reset-seen") // o's own cache is live too
			if _, err := o.LookupKey(ctx, hash); err != nil {
				t.Fatal(err)
			}
			if _, err := o.ResetKey(ctx, "reset", strings.Repeat("c", 64), "sk-cfw...cccc"); err != nil {
				t.Fatal(err)
			}
			if !refusedBy(o, hash)() {
				t.Fatal("the gateway that reset the key still accepts it")
			}
			waitFor(t, "the reset key to be refused by the other gateway", refusedBy(s, hash))

			hash = cachedUser(t, s, "deleted")
			if err := o.DeleteUser(ctx, "deleted"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the deleted user's key to be refused", refusedBy(s, hash))

			hash = cachedUser(t, s, "expired")
			past := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
			if _, err := o.SetExpiry(ctx, "expired", past); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the new expiry to be seen", func() bool {
				u, err := s.LookupKey(ctx, hash)
				return err == nil && u.ExpiresAt.Equal(past)
			})

			hash = cachedUser(t, s, "by-hand")
			if err := o.client.Del(ctx, s.keys.user("by-hand")).Err(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a record deleted by hand to be seen", refusedBy(s, hash))

			hash = cachedUser(t, s, "entry-by-hand")
			if err := o.client.Del(ctx, s.keys.key(hash)).Err(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a key index entry deleted by hand to be seen", refusedBy(s, hash))
		})
	}
}

// storeOnOwnRedis returns a store on a redis-server of the test's own,
// whose every command the test may count or cut, and a client of its own.
func storeOnOwnRedis(t *testing.T) (*RedisStore, *redis.Client) {
	t.Helper()
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	s := &RedisStore{Addresses: []string{srv.Addr}, KeyPrefix: uniquePrefix()}
	provision(t, s)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { admin.Close() })
	return s, admin
}

// TestRedisKeyCacheServesFromMemory: once a key is cached, looking it up
// sends Redis nothing.
func TestRedisKeyCacheServesFromMemory(t *testing.T) {
	s, admin := storeOnOwnRedis(t)
	hash := cachedUser(t, s, "ann")
	ctx := context.Background()
	before := commandsProcessed(t, admin)
	for range 1000 {
		if _, err := s.LookupKey(ctx, hash); err != nil {
			t.Fatal(err)
		}
	}
	// The INFO calls themselves and a health check may land in between.
	if n := commandsProcessed(t, admin) - before; n > 3 {
		t.Fatalf("1000 cached lookups sent %d commands to Redis", n)
	}
}

// commandsProcessed reads Redis's count of the commands it ran.
func commandsProcessed(t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`total_commands_processed:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no total_commands_processed in %q", info)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestRedisKeyCacheDroppedWithItsConnection: when the tracking connection
// is lost, every cached key goes with it (its invalidations could be
// missed from then on); lookups read Redis, and see a change made while
// the connection was down, until a new one is up and caches again.
func TestRedisKeyCacheDroppedWithItsConnection(t *testing.T) {
	s, admin := storeOnOwnRedis(t)
	ctx := context.Background()
	hash := cachedUser(t, s, "ann")
	other := cachedUser(t, s, "bob")

	// Keep the tracking connection from coming back, then cut it.
	if err := admin.ConfigSet(ctx, "maxclients", "1").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.ConfigSet(ctx, "maxclients", "10000")
	if err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cache to be emptied", func() bool { return s.tracking.cache.len() == 0 })
	if err := admin.Del(ctx, s.keys.user("ann")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ConfigSet(ctx, "maxclients", "10000").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupKey(ctx, hash); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key deleted while tracking was down: %v, want ErrNotFound", err)
	}
	waitFor(t, "the cache to fill again", func() bool {
		if _, err := s.LookupKey(ctx, other); err != nil {
			t.Fatalf("lookup: %v", err)
		}
		return s.tracking.cache.len() == 1
	})
}

// TestRedisKeyCacheOutlivesCancelledLookups: a lookup given up on (its
// client gone, Redis slow) leaves the tracking connection and every other
// user's cached key in place.
func TestRedisKeyCacheOutlivesCancelledLookups(t *testing.T) {
	s, admin := storeOnOwnRedis(t)
	cachedUser(t, s, "ann")
	hash := cachedUser(t, s, "bob")
	bg := context.Background()
	if err := admin.Do(bg, "CLIENT", "PAUSE", "300", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	_, err := s.tracking.read(ctx, s.keys.user("carol"))
	cancel()
	if !errors.Is(err, errNotTracked) {
		t.Fatalf("a read Redis did not answer in time: %v", err)
	}
	if n := s.tracking.cache.len(); n != 2 {
		t.Fatalf("a cancelled read left %d cached keys, want 2", n)
	}
	if err := admin.Do(bg, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.tracking.read(bg, s.keys.user("bob")); err != nil {
		t.Fatalf("the tracking connection after a cancelled read: %v", err)
	}
	if _, ok := s.tracking.cache.get(keyEntry{s.keys.prefix, hash}); !ok {
		t.Fatal("bob's key left the cache")
	}
}

// TestRedisKeyCacheWithRestrictedACLUser: an ACL user without admin or
// dangerous commands gets its keys cached too.
func TestRedisKeyCacheWithRestrictedACLUser(t *testing.T) {
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.Do(context.Background(), "ACL", "SETUSER", "gateway", "on", ">pw-Gat3way", "~*", "&*",
		"+@all", "-@dangerous", "-@admin").Err(); err != nil {
		t.Fatal(err)
	}
	s := &RedisStore{Addresses: []string{srv.Addr}, KeyPrefix: uniquePrefix(), Username: "gateway", Password: "pw-Gat3way"}
	provision(t, s)
	cachedUser(t, s, "ann")
}

// TestRedisKeyLookupWithoutTracking: while no tracking connection is up, a
// lookup costs what it did without the cache: one script, reading the
// index entry and the record.
func TestRedisKeyLookupWithoutTracking(t *testing.T) {
	s, admin := storeOnOwnRedis(t)
	hash := cachedUser(t, s, "ann")
	s.tracking.off.Store(true)
	defer s.tracking.off.Store(false)
	s.tracking.cache.clear()
	ctx := context.Background()
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := s.LookupKey(ctx, hash); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string]int{"evalsha": 100, "get": 200} {
		m := regexp.MustCompile(`cmdstat_` + cmd + `:calls=(\d+)`).FindStringSubmatch(stats)
		if m == nil || m[1] != strconv.Itoa(want) {
			t.Errorf("100 lookups without tracking: %s calls %v, want %d\n%s", cmd, m, want, stats)
		}
	}
}

// TestRedisKeyCacheEntriesAge: a change Redis sends no invalidation for
// (SWAPDB here) is seen once the cached key is maxKeyAge old.
func TestRedisKeyCacheEntriesAge(t *testing.T) {
	s, admin := storeOnOwnRedis(t)
	ctx := context.Background()
	name := "ann"
	hash := fmt.Sprintf("%x", sha256.Sum256([]byte(name)))
	// db 1 holds ann with another key: after the swap, hash is nobody's.
	other := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, DB: 1})
	defer other.Close()
	raw := fmt.Sprintf(`{"name":%q,"id":"x1","key_hash":%q,"key_hint":"sk-cfw...zzzz"}`, name, strings.Repeat("d", 64))
	if err := other.Set(ctx, s.keys.user(name), raw, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := other.Set(ctx, s.keys.key(hash), name, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := other.Set(ctx, s.keys.layout, "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cachedUser(t, s, name)
	now := time.Now()
	s.tracking.cache.now = func() time.Time { return now }
	if err := admin.Do(ctx, "SWAPDB", "0", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupKey(ctx, hash); err != nil {
		t.Fatalf("a fresh cached key: %v", err) // the known blind spot
	}
	now = now.Add(maxKeyAge)
	if _, err := s.LookupKey(ctx, hash); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key cached %v ago after a SWAPDB: %v, want ErrNotFound", maxKeyAge, err)
	}
}
