package keystore

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// The tests below run RedisStore, unchanged, against a real Redis Cluster
// and a real Sentinel: the same contract as on a single node. On a cluster,
// a key without the prefix's hash tag would make the suite fail: WATCH and
// MULTI/EXEC refuse keys of several slots, and so does Redis for the usage
// script's keys. TestRedisClusterEveryMaster also checks that no key escapes
// the tag, which commands that go-redis splits by slot (MGET) would hide.

// newRedisClusterStore returns a provisioned RedisStore on the test cluster
// under a fresh key prefix, whose hash tag decides the node it lives on.
func newRedisClusterStore(tb testing.TB) *RedisStore {
	tb.Helper()
	return newClusterStoreWithPrefix(tb, uniquePrefix())
}

// newClusterStoreWithPrefix is newRedisClusterStore with a chosen prefix.
func newClusterStoreWithPrefix(tb testing.TB, prefix string) *RedisStore {
	tb.Helper()
	s := &RedisStore{Addresses: testCluster.Addrs, KeyPrefix: prefix}
	provision(tb, s)
	if _, ok := s.client.(*redis.ClusterClient); !ok {
		tb.Fatalf("%d addresses gave a %T client, want *redis.ClusterClient", len(s.Addresses), s.client)
	}
	return s
}

// newRedisSentinelStore returns a provisioned RedisStore that finds the test
// master through the test Sentinel, under a fresh key prefix.
func newRedisSentinelStore(tb testing.TB) *RedisStore {
	tb.Helper()
	s := &RedisStore{
		Addresses:  []string{testSentinel.SentinelAddr},
		MasterName: testSentinel.MasterName,
		KeyPrefix:  uniquePrefix(),
	}
	provision(tb, s)
	// A failover client is a *redis.Client whose address is go-redis'
	// placeholder: it asks the Sentinel for the master's on every dial.
	if c, ok := s.client.(*redis.Client); !ok || c.Options().Addr != "FailoverClient" {
		tb.Fatalf("master_name gave a %T client (%v), want a *redis.Client failover client", s.client, s.client)
	}
	return s
}

func TestRedisClusterStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store { return newRedisClusterStore(t) })
}

func TestRedisSentinelStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store { return newRedisSentinelStore(t) })
}

// fillStore writes one of each kind of key: user, key copy, user set, host,
// host set, two usage days and a batch marker, 8 keys in all.
func fillStore(t *testing.T, s *RedisStore) {
	t.Helper()
	mustCreate(t, s, "kim")
	if _, err := s.AddHostKey(context.Background(), "h.example", "", "k1"); err != nil {
		t.Fatal(err)
	}
	mustAddUsage(t, s, "b1", row("kim", "m", "2030-01-01", 1), row("kim", "m", "2030-01-02", 2))
}

const filledKeys = 8 // the keys fillStore writes

// TestRedisClusterEveryMaster checks that a store works whichever master
// owns its hash tag (the suite's prefixes could all happen to hash to one
// node), and that all of its keys sit in that tag's slot.
func TestRedisClusterEveryMaster(t *testing.T) {
	ctx := context.Background()
	cc := newRedisClusterStore(t).client.(*redis.ClusterClient)

	// Find a prefix for each master. The slots are spread evenly over
	// the masters, so a few tries suffice.
	prefixes := make(map[string]string) // master address -> prefix
	for i := 0; len(prefixes) < len(testCluster.Addrs) && i < 1000; i++ {
		prefix := uniquePrefix()
		master, err := cc.MasterForKey(ctx, newRedisKeys(prefix).users)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := prefixes[master.Options().Addr]; !ok {
			prefixes[master.Options().Addr] = prefix
		}
	}
	if len(prefixes) != len(testCluster.Addrs) {
		t.Fatalf("prefixes only reach masters %v of %v", prefixes, testCluster.Addrs)
	}

	for addr, prefix := range prefixes {
		s := newClusterStoreWithPrefix(t, prefix)
		before := cc.DBSize(ctx).Val() // the sum over the masters
		fillStore(t, s)
		if users, err := s.ListUsers(ctx); err != nil || len(users) != 1 {
			t.Errorf("prefix %s: ListUsers = %v, %v; want one user", prefix, users, err)
		}

		// Every key the store wrote carries its hash tag, so they share one
		// slot, on the master that owns it. This relies on no other test
		// writing to the cluster meanwhile: none of them runs in parallel.
		written, err := cc.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		written -= before
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		tag := "{" + strings.TrimSuffix(prefix, ":") + "}:"
		keys, err := rdb.Keys(ctx, tag+"*").Result() // only the node's own keys
		rdb.Close()
		if err != nil || written != filledKeys || len(keys) != filledKeys {
			slices.Sort(keys)
			t.Errorf("prefix %s: the store wrote %d keys, want %d; master %s holds %v under its tag (%v)",
				prefix, written, filledKeys, addr, keys, err)
		}
	}
}

// TestRedisSentinelMaster checks that the store found through the Sentinel
// writes to the master.
func TestRedisSentinelMaster(t *testing.T) {
	ctx := context.Background()
	s := newRedisSentinelStore(t)
	fillStore(t, s)

	rdb := redis.NewClient(&redis.Options{Addr: testSentinel.MasterAddr})
	defer rdb.Close()
	tag := "{" + strings.TrimSuffix(s.KeyPrefix, ":") + "}:"
	if keys, err := rdb.Keys(ctx, tag+"*").Result(); err != nil || len(keys) != filledKeys {
		t.Errorf("master holds %v, %v; want %d keys under %s", keys, err, filledKeys, tag)
	}
}
