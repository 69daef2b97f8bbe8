package keystore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aiproxy/aiproxy/internal/redistest"
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

// fillStore writes one of each kind of key: the user record, its ID set,
// the key index entry, the user and owner sets, a host and the host set,
// the layout version, a usage month and the writer's applied hash.
func fillStore(t *testing.T, s *RedisStore) {
	t.Helper()
	mustCreate(t, s, "kim")
	if _, err := s.AddHostKey(context.Background(), "h.example", "", "k1"); err != nil {
		t.Fatal(err)
	}
	u, err := s.GetUser(context.Background(), "kim")
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := row("kim", "m", "2030-01-01", 1), row("kim", "m", "2030-01-02", 2)
	r1.UserID, r2.UserID = u.ID, u.ID
	mustAddUsage(t, s, ub(1, r1, r2))
}

const (
	filledKeys       = 10 // the keys fillStore writes
	filledGlobalKeys = 5  // of which under the global hash tag
)

// TestRedisClusterEveryMaster checks that a store works whichever master
// owns its global hash tag, and that the global keys all sit in that tag's
// slot.
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
		// This relies on no other test writing to the cluster meanwhile:
		// none of them runs in parallel.
		written, err := cc.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		written -= before
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		tag := "{" + strings.TrimSuffix(prefix, ":") + "}:"
		keys, err := rdb.Keys(ctx, tag+"*").Result() // only the node's own keys
		rdb.Close()
		// The layout version was written at provision, before "before".
		if err != nil || written != filledKeys-1 || len(keys) != filledGlobalKeys {
			slices.Sort(keys)
			t.Errorf("prefix %s: the store wrote %d keys, want %d; master %s holds %v under its tag, want %d (%v)",
				prefix, written, filledKeys-1, addr, keys, filledGlobalKeys, err)
		}
	}
}

// TestRedisClusterSpread checks that users, their keys and their usage
// spread over every master instead of sitting in one slot, and that a
// user's own keys share a slot.
func TestRedisClusterSpread(t *testing.T) {
	ctx := context.Background()
	s := newRedisClusterStore(t)
	cc := s.client.(*redis.ClusterClient)
	const users = 60
	var rows []UsageRow
	for i := range users {
		name := fmt.Sprintf("spread%d", i)
		mustCreate(t, s, name)
		u, err := s.GetUser(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		r := row(name, "m", "2030-01-01", 1)
		r.UserID = u.ID
		rows = append(rows, r)
	}
	mustAddUsage(t, s, ub(1, rows...))
	if got := mustQueryUsage(t, s, UsageFilter{From: "2030-01-01", To: "2030-01-01"}); len(got) != users {
		t.Errorf("report of every user has %d rows, want %d", len(got), users)
	}

	perMaster := make(map[string]int)
	var mu sync.Mutex // ForEachMaster runs the function on the masters at once
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, s.KeyPrefix+"*", 1000).Iterator()
		n := 0
		for iter.Next(ctx) {
			n++
		}
		mu.Lock()
		perMaster[m.Options().Addr] = n
		mu.Unlock()
		return iter.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range perMaster {
		total += n
	}
	// Per user: record, ID set, key entry, usage month, applied hash.
	if total != 5*users {
		t.Errorf("%d keys under %s, want %d", total, s.KeyPrefix, 5*users)
	}
	for addr, n := range perMaster {
		if n < total/len(perMaster)/3 {
			t.Errorf("master %s holds %d of %d keys: not spread (%v)", addr, n, total, perMaster)
		}
	}
	for _, k := range []string{s.keys.userIDs("spread7"), s.keys.applied("spread7"), s.keys.usageMonth("spread7", rows[7].UserID, "2030-01")} {
		if cc.ClusterKeySlot(ctx, k).Val() != cc.ClusterKeySlot(ctx, s.keys.user("spread7")).Val() {
			t.Errorf("%s is not in its user's slot", k)
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
	global, err1 := rdb.Keys(ctx, tag+"*").Result()
	own, err2 := rdb.Keys(ctx, s.KeyPrefix+"*").Result()
	if err1 != nil || err2 != nil || len(global)+len(own) != filledKeys {
		t.Errorf("master holds %v and %v, %v %v; want %d keys", global, own, err1, err2, filledKeys)
	}
}

// TestRedisClusterUsageShardDown: with one master of a cluster down (and
// the cluster set to serve the slots it still covers), a usage batch is
// written for the users on the other shards, and the error names exactly
// the users on the one that is down, so that only they are sent again.
func TestRedisClusterUsageShardDown(t *testing.T) {
	c, s, cluster := startPartialCluster(t, 0)
	ctx := context.Background()

	// Users, and the node each one's keys live on.
	down := c.Addrs[0]
	var rows []UsageRow
	var want []string
	for i := range 30 {
		name := fmt.Sprintf("u%02d", i)
		node, err := cluster.MasterForKey(ctx, s.keys.applied(name))
		if err != nil {
			t.Fatal(err)
		}
		if node.Options().Addr == down {
			want = append(want, name)
		}
		rows = append(rows, UsageRow{UsageKey: UsageKey{User: name, UserID: NewUserID(), Model: "m", Date: "2026-12-01"},
			UsageCounts: UsageCounts{Requests: 1, TotalTokens: 5}})
	}
	if len(want) == 0 || len(want) == 30 {
		t.Fatalf("%d of 30 users on the node to stop: pick other names", len(want))
	}
	c.Kill(0)

	err := s.AddUsage(ctx, UsageBatch{Writer: NewUsageWriter(), Seq: 1, Rows: rows})
	var part *UsageUsersError
	if !errors.As(err, &part) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AddUsage with a shard down: %v, want a UsageUsersError", err)
	}
	slices.Sort(want)
	if !slices.Equal(part.Users, want) {
		t.Fatalf("users not written %v, want those of the stopped node %v", part.Users, want)
	}
	// The others' rows are there.
	for _, r := range rows {
		if slices.Contains(want, r.User) {
			continue
		}
		got, err := cluster.HGetAll(ctx, s.keys.usageMonth(r.User, r.UserID, "2026-12")).Result()
		if err != nil || got["01|m|requests"] != "1" {
			t.Fatalf("usage of %s on a live shard: %v %v", r.User, got, err)
		}
	}
}

// TestRedisClusterFailover: a master of a cluster with replicas is killed.
// Users whose data lives on the other masters are served throughout;
// those on the killed one get ErrUnavailable, quickly, until its replica
// takes over, and are served again after, their records and usage intact.
func TestRedisClusterFailover(t *testing.T) {
	c, s, cluster := startPartialCluster(t, 1)
	ctx := context.Background()

	type account struct {
		user  User
		nodes []string // the masters of its record and of its key's index entry
	}
	var accounts []account
	count := map[string]int{}
	for i := range 24 {
		mustCreate(t, s, fmt.Sprintf("f%02d", i))
		u, err := s.GetUser(ctx, fmt.Sprintf("f%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		var nodes []string
		for _, key := range []string{s.keys.user(u.Name), s.keys.key(u.KeyHash)} {
			m, err := cluster.MasterForKey(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, m.Options().Addr)
			count[m.Options().Addr]++
		}
		accounts = append(accounts, account{u, nodes})
	}
	var victim string
	for addr, n := range count {
		if victim == "" || n > count[victim] {
			victim = addr
		}
	}
	if err := c.WaitReplicated(); err != nil {
		t.Fatal(err) // a replica taking over without them would lose writes
	}
	c.KillAddr(victim)

	onVictim := func(a account) bool { return slices.Contains(a.nodes, victim) }
	hit, spared := 0, 0
	for _, a := range accounts {
		start := time.Now()
		_, err := s.LookupKey(ctx, a.user.KeyHash)
		switch {
		case !onVictim(a) && err != nil:
			t.Errorf("%s, on live masters only: %v", a.user.Name, err)
		case onVictim(a) && err == nil:
			// Its replica may have taken over already: fine.
		case onVictim(a) && !errors.Is(err, ErrUnavailable):
			t.Errorf("%s, on the killed master: %v, want ErrUnavailable", a.user.Name, err)
		}
		if onVictim(a) {
			hit++
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("%s: the store took %v to fail", a.user.Name, took)
			}
		} else {
			spared++
		}
	}
	if hit == 0 || spared == 0 {
		t.Fatalf("%d users on the killed master, %d elsewhere: pick other names", hit, spared)
	}

	// The replica takes over (cluster-node-timeout is 2 s): every user is
	// served again, with the record it had.
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range accounts {
		for {
			got, err := s.LookupKey(ctx, a.user.KeyHash)
			if err == nil {
				if got.ID != a.user.ID {
					t.Fatalf("%s after the failover: %+v", a.user.Name, got)
				}
				break
			}
			if time.Now().After(deadline) {
				var nodes string
				for _, addr := range c.Addrs {
					if addr != victim {
						nodes, _ = redis.NewClient(&redis.Options{Addr: addr}).ClusterNodes(ctx).Result()
						break
					}
				}
				t.Fatalf("%s still unavailable 30 s after its master was killed: %v\nCLUSTER NODES:\n%s", a.user.Name, err, nodes)
			}
			time.Sleep(100 * time.Millisecond) // the cluster's own failover timing, not ours
		}
	}
	rows := make([]UsageRow, 0, len(accounts))
	for _, a := range accounts {
		rows = append(rows, UsageRow{UsageKey: UsageKey{User: a.user.Name, UserID: a.user.ID, Model: "m", Date: "2026-12-01"},
			UsageCounts: UsageCounts{Requests: 1}})
	}
	if err := s.AddUsage(ctx, UsageBatch{Writer: NewUsageWriter(), Seq: 1, Rows: rows}); err != nil {
		t.Fatalf("usage after the failover: %v", err)
	}
}

// startPartialCluster starts a cluster of its own, 3 masters with replicas
// each, that serves the slots it still covers while a master is down,
// and a store on it: tests that kill nodes cannot share the suite's.
func startPartialCluster(t *testing.T, replicas int) (*redistest.Cluster, *RedisStore, *redis.ClusterClient) {
	t.Helper()
	c, err := redistest.StartClusterReplicas(3, replicas, "--cluster-require-full-coverage", "no")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := &RedisStore{Addresses: c.Addrs, KeyPrefix: uniquePrefix()}
	provision(t, s)
	return c, s, s.client.(*redis.ClusterClient)
}

// TestRedisSentinelFailover: the master a Sentinel watches is killed. Calls
// fail with ErrUnavailable, quickly, until the Sentinel promotes the
// replica; then every user is served again with its record, and usage is
// written.
func TestRedisSentinelFailover(t *testing.T) {
	f, err := redistest.StartSentinelFailover()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &RedisStore{Addresses: []string{f.SentinelAddr}, MasterName: f.MasterName, KeyPrefix: uniquePrefix()}
	provision(t, s)
	ctx := context.Background()
	var users []User
	for i := range 5 {
		mustCreate(t, s, fmt.Sprintf("s%d", i))
		u, err := s.GetUser(ctx, fmt.Sprintf("s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	if err := f.WaitReplicated(); err != nil {
		t.Fatal(err) // a replica taking over without them would lose writes
	}
	f.KillMaster()

	start := time.Now()
	if _, err := s.LookupKey(ctx, users[0].KeyHash); err != nil && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("with the master down: %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the store took %v to fail", took)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range users {
		for {
			got, err := s.LookupKey(ctx, u.KeyHash)
			if err == nil {
				if got.ID != u.ID {
					t.Fatalf("%s after the failover: %+v", u.Name, got)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still unavailable 30 s after the master was killed: %v", u.Name, err)
			}
			time.Sleep(100 * time.Millisecond) // the Sentinel's own failover timing, not ours
		}
	}
	rows := make([]UsageRow, 0, len(users))
	for _, u := range users {
		rows = append(rows, UsageRow{UsageKey: UsageKey{User: u.Name, UserID: u.ID, Model: "m", Date: "2026-12-01"},
			UsageCounts: UsageCounts{Requests: 1}})
	}
	if err := s.AddUsage(ctx, UsageBatch{Writer: NewUsageWriter(), Seq: 1, Rows: rows}); err != nil {
		t.Fatalf("usage after the failover: %v", err)
	}
}
