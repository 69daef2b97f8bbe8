package keystore

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

// writeLayout1 writes a data set as a layout 1 release did: users alice
// and bob, usage of theirs and of a deleted user, "gone", over two days.
func writeLayout1(t *testing.T, rdb redis.UniversalClient, prefix string) map[string]User {
	t.Helper()
	ctx := context.Background()
	g := newRedisKeys(prefix).global
	users := map[string]User{}
	for _, name := range []string{"alice", "bob"} {
		u, _ := newTestUser(name)
		users[name] = u
		raw, _ := json.Marshal(u)
		rdb.Set(ctx, g+"user:"+name, raw, 0)
		rdb.Set(ctx, g+"key:"+u.KeyHash, raw, 0)
		rdb.SAdd(ctx, g+"users", name)
	}
	rdb.HSet(ctx, g+"usage:2030-01-01",
		"alice|m|requests", 3, "alice|m|total_tokens", 30,
		"gone|m|requests", 5,
		"bob|a|b|requests", 1) // model "a|b"
	rdb.HSet(ctx, g+"usage:2030-02-01", "alice|m|requests", 4)
	rdb.Set(ctx, g+"usage:batch:xyz", "1", 0)
	return users
}

// testRedisMigration upgrades a layout 1 data set on the store's topology.
func testRedisMigration(t *testing.T, rdb redis.UniversalClient, open func(prefix string) *RedisStore) {
	ctx := context.Background()
	prefix := uniquePrefix()
	old := writeLayout1(t, rdb, prefix)
	s := open(prefix)

	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("after migration ListUsers = %v, %v", users, err)
	}
	ids := map[string]string{}
	for _, u := range users {
		got, err := s.LookupKey(ctx, old[u.Name].KeyHash)
		if err != nil || got.Name != u.Name || !IsUserID(got.ID) {
			t.Errorf("the key of %s after migration: %+v, %v", u.Name, got, err)
		}
		ids[u.Name] = got.ID
	}
	g := s.keys.global
	for _, k := range []string{g + "user:alice", g + "key:" + old["alice"].KeyHash, g + "usage:2030-01-01"} {
		if n := rdb.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("layout 1 key %s is still there", k)
		}
	}
	want := []UsageRow{
		{UsageKey: UsageKey{User: "alice", UserID: ids["alice"], Model: "m", Date: "2030-01-01"}, UsageCounts: UsageCounts{Requests: 3, TotalTokens: 30}},
		{UsageKey: UsageKey{User: "bob", UserID: ids["bob"], Model: "a|b", Date: "2030-01-01"}, UsageCounts: UsageCounts{Requests: 1}},
		{UsageKey: UsageKey{User: "gone", UserID: formerUserID("gone"), Model: "m", Date: "2030-01-01"}, UsageCounts: UsageCounts{Requests: 5}},
		{UsageKey: UsageKey{User: "alice", UserID: ids["alice"], Model: "m", Date: "2030-02-01"}, UsageCounts: UsageCounts{Requests: 4}},
	}
	f := UsageFilter{From: "2030-01-01", To: "2030-12-31"}
	wantRows(t, "usage after migration", mustQueryUsage(t, s, f), want...)

	// A pass cut short (alice's part in, bob's not), and a day an old
	// instance wrote after the upgrade: the next start finishes both.
	pass := g + "usage-migrating:2030-03-01:abcd1234"
	rdb.HSet(ctx, pass, "alice|m|requests", 7, "bob|m|requests", 8)
	rdb.Set(ctx, s.keys.userTag("alice")+"migrated:2030-03-01:abcd1234", "1", 0)
	rdb.HSet(ctx, g+"usage:2030-04-01", "bob|m|requests", 9)
	again := open(prefix)
	want = append(want,
		UsageRow{UsageKey: UsageKey{User: "bob", UserID: ids["bob"], Model: "m", Date: "2030-03-01"}, UsageCounts: UsageCounts{Requests: 8}},
		UsageRow{UsageKey: UsageKey{User: "bob", UserID: ids["bob"], Model: "m", Date: "2030-04-01"}, UsageCounts: UsageCounts{Requests: 9}})
	slices.SortFunc(want, compareUsageRows)
	wantRows(t, "usage after a resumed migration", mustQueryUsage(t, again, f), want...)
	if n := rdb.Exists(ctx, pass).Val(); n != 0 {
		t.Error("the finished pass is still there")
	}
	if users, err := again.ListUsers(ctx); err != nil || len(users) != 2 || users[0].ID != ids["alice"] {
		t.Errorf("users after a second start: %+v, %v; want the same IDs", users, err)
	}
}

func TestRedisMigration(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	defer rdb.Close()
	testRedisMigration(t, rdb, func(prefix string) *RedisStore {
		s := &RedisStore{Addresses: []string{testRedis.Addr}, KeyPrefix: prefix}
		provision(t, s)
		return s
	})
}

func TestRedisClusterMigration(t *testing.T) {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testCluster.Addrs})
	defer rdb.Close()
	testRedisMigration(t, rdb, func(prefix string) *RedisStore { return newClusterStoreWithPrefix(t, prefix) })
}

// TestRedisStaleKeyEntry checks that the user record decides: an index
// entry left behind by a reset or delete that stopped half way, or one
// naming a user whose key is another, is refused.
func TestRedisStaleKeyEntry(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	u, _ := mustCreate(t, s, "sam")
	stale := HashKey(NewUserKey())
	s.client.Set(ctx, s.keys.key(stale), "sam", 0)
	if _, err := s.LookupKey(ctx, stale); err != ErrNotFound {
		t.Errorf("an entry whose hash the record does not hold: %v, want ErrNotFound", err)
	}
	s.client.Set(ctx, s.keys.key(stale), "nobody", 0)
	if _, err := s.LookupKey(ctx, stale); err != ErrNotFound {
		t.Errorf("an entry naming no user: %v, want ErrNotFound", err)
	}
	// A delete cut short after its first step: the record is gone, the
	// entry and the name are not.
	s.client.Del(ctx, s.keys.user("sam"))
	if _, err := s.LookupKey(ctx, u.KeyHash); err != ErrNotFound {
		t.Errorf("the key of a user whose record is gone: %v, want ErrNotFound", err)
	}
	if users, err := s.ListUsers(ctx); err != nil || len(users) != 0 {
		t.Errorf("ListUsers = %v, %v; want no user", users, err)
	}
	mustCreate(t, s, "sam") // the name is free again
}
