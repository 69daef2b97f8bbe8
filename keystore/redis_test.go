package keystore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/aiproxy/aiproxy/internal/netfault"
)

func TestRedisStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store { return newRedisStore(t) })
}

// TestRedisLayout pins the documented key layout, which operators and the
// README rely on.
func TestRedisLayout(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	global := "{" + strings.TrimSuffix(s.KeyPrefix, ":") + "}:"
	mustCreate(t, s, "kim")
	u, err := s.GetUser(ctx, "kim")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddHostKey(ctx, "h.example", "", "k1"); err != nil {
		t.Fatal(err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	defer rdb.Close()
	for key, typ := range map[string]string{
		s.KeyPrefix + "{u:kim}:user":     "string",
		s.KeyPrefix + "{u:kim}:ids":      "set",
		s.KeyPrefix + "key:" + u.KeyHash: "string",
		global + "users":                 "set",
		global + "owners":                "set",
		global + "host:h.example":        "string",
		global + "hosts":                 "set",
		global + "layout":                "string",
	} {
		got, err := rdb.Type(ctx, key).Result()
		if err != nil || got != typ {
			t.Errorf("TYPE %s = %q, %v; want %q", key, got, err, typ)
		}
	}
	if name, _ := rdb.Get(ctx, s.KeyPrefix+"key:"+u.KeyHash).Result(); name != "kim" {
		t.Errorf("key index entry = %q, want the user name", name)
	}
	if owners, _ := rdb.SMembers(ctx, global+"owners").Result(); len(owners) != 1 || owners[0] != "kim/"+u.ID {
		t.Errorf("owners = %v, want kim/<id>", owners)
	}
	keys, err := rdb.Keys(ctx, s.KeyPrefix+"*").Result()
	if err != nil || len(keys) != 3 {
		t.Errorf("keys under %s: %v, %v; want exactly 3", s.KeyPrefix, keys, err)
	}
	keys, err = rdb.Keys(ctx, global+"*").Result()
	if err != nil || len(keys) != 5 {
		t.Errorf("keys under %s: %v, %v; want exactly 5", global, keys, err)
	}
}

// TestRedisPrefixes checks that two prefixes on one server are separate.
func TestRedisPrefixes(t *testing.T) {
	ctx := context.Background()
	a, b := newRedisStore(t), newRedisStore(t)
	if a.client != b.client {
		t.Error("stores with the same connection settings should share one client")
	}
	_, keyA := mustCreate(t, a, "leo")
	_, keyB := mustCreate(t, b, "leo") // same name, no ErrExists
	if _, err := a.LookupKey(ctx, HashKey(keyB)); !errors.Is(err, ErrNotFound) {
		t.Errorf("prefix a sees b's key: %v", err)
	}
	if _, err := b.LookupKey(ctx, HashKey(keyA)); !errors.Is(err, ErrNotFound) {
		t.Errorf("prefix b sees a's key: %v", err)
	}
	a.AddHostKey(ctx, "h.example", "", "k")
	if hosts, err := b.ListHosts(ctx); err != nil || len(hosts) != 0 {
		t.Errorf("prefix b sees a's hosts: %v, %v", hosts, err)
	}
	if users, err := a.ListUsers(ctx); err != nil || len(users) != 1 {
		t.Errorf("prefix a lists %v, %v; want one user", users, err)
	}
}

// TestRedisPersistence closes the last client and reads through a new one.
func TestRedisPersistence(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	// An unusual timeout keeps this client out of other tests' pool entries.
	cfg := func() *RedisStore {
		return &RedisStore{Addresses: []string{testRedis.Addr}, KeyPrefix: prefix, Timeout: caddy.Duration(time.Second)}
	}
	first := cfg()
	if err := provisionErr(t, first); err != nil {
		t.Fatal(err)
	}
	u, key := mustCreate(t, first, "mia")
	key2 := first.poolKey
	if err := first.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := first.Cleanup(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, ok := handles.References(key2); ok {
		t.Fatal("client still pooled after the last cleanup")
	}
	if _, err := first.LookupKey(ctx, HashKey(key)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("LookupKey on a closed client: %v, want ErrUnavailable", err)
	}

	second := cfg()
	provision(t, second)
	if got, err := second.LookupKey(ctx, HashKey(key)); err != nil || !sameUser(got, u) {
		t.Errorf("after reconnect LookupKey = %+v, %v; want %+v", got, err, u)
	}
}

// TestRedisUnavailable checks that a dead or hanging Redis fails calls with
// ErrUnavailable quickly, with the default timeout.
func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	const bound = 2 * time.Second // upper bound on a failure path, not a perf target

	port, err := netfault.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	hole, closeHole := netfault.Blackhole()
	t.Cleanup(closeHole)

	for name, addr := range map[string]string{
		"dead":      net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		"blackhole": hole,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := &RedisStore{Addresses: []string{addr}}
			provision(t, s) // a Redis that is down does not fail the config
			ctx := context.Background()
			calls := map[string]func() error{
				"LookupKey": func() error { _, err := s.LookupKey(ctx, HashKey("x")); return err },
				"CreateUser": func() error {
					u, _ := newTestUser("nia")
					return s.CreateUser(ctx, u)
				},
				"ListUsers": func() error { _, err := s.ListUsers(ctx); return err },
				"ResetKey": func() error { // WATCH takes a dedicated connection
					_, err := s.ResetKey(ctx, "nia", HashKey("y"), "hint")
					return err
				},
				"DeleteHost": func() error { return s.DeleteHost(ctx, "h.example") },
				"AddUsage": func() error { // a script: EVALSHA, then EVAL
					return s.AddUsage(ctx, ub(1, row("nia", "m", "2030-01-01", 1)))
				},
				"QueryUsage": func() error { // a pipeline
					_, err := s.QueryUsage(ctx, UsageFilter{From: "2030-01-01", To: "2030-12-31"})
					return err
				},
				"Admit": func() error { // the spend scripts
					_, err := s.Admit(ctx, Admission{User: "nia", UserID: idOf("nia"), Allowance: Allowance{RPM: 1}, Now: time.Now()})
					return err
				},
				"Settle": func() error {
					return s.Settle(ctx, Settlement{User: "nia", UserID: idOf("nia"), Admitted: time.Now(), Reserved: Amounts{Requests: 1}})
				},
				"RenewLease": func() error { return s.RenewLease(ctx, "nia", idOf("nia"), "l", time.Now()) },
				"Spending": func() error {
					_, err := s.Spending(ctx, SpendQuery{User: "nia", UserID: idOf("nia"), Now: time.Now()})
					return err
				},
			}
			for call, fn := range calls {
				t.Run(call, func(t *testing.T) {
					t.Parallel()
					start := time.Now()
					err := fn()
					d := time.Since(start)
					t.Logf("failed after %v: %v", d.Round(time.Millisecond), err)
					if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
						t.Errorf("got %v, want ErrUnavailable", err)
					}
					if d > bound {
						t.Errorf("took %v, want under %v", d, bound)
					}
				})
			}
		})
	}
}

// TestRedisResolve checks defaults, placeholder expansion and refused
// combinations of the Redis settings.
func TestRedisResolve(t *testing.T) {
	t.Setenv("AIPROXY_TEST_REDIS", "10.0.0.1:6379 10.0.0.2:6379")
	t.Setenv("AIPROXY_TEST_PASS", "s3cret{x}")

	s := &RedisStore{}
	c, prefix, err := s.resolve()
	if err != nil || len(c.Addrs) != 1 || c.Addrs[0] != DefaultRedisAddress ||
		prefix != DefaultRedisKeyPrefix || c.Timeout != DefaultRedisTimeout || c.TLS {
		t.Errorf("defaults: %+v %q %v", c, prefix, err)
	}

	s = &RedisStore{MasterName: "mymaster"}
	if c, _, err = s.resolve(); err != nil || c.Addrs[0] != DefaultRedisSentinelAddress {
		t.Errorf("sentinel default address: %+v %v", c, err)
	}

	s = &RedisStore{
		Addresses:     []string{"{env.AIPROXY_TEST_REDIS}"},
		Password:      "{env.AIPROXY_TEST_PASS}",
		KeyPrefix:     "team-a",
		TLSServerName: "redis.internal",
	}
	c, prefix, err = s.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Addrs) != 2 || c.Addrs[1] != "10.0.0.2:6379" {
		t.Errorf("addresses from placeholder: %v", c.Addrs)
	}
	if c.Password != "s3cret{x}" {
		t.Errorf("password = %q", c.Password)
	}
	if !c.TLS || c.options().TLSConfig.ServerName != "redis.internal" {
		t.Error("tls_server_name should imply TLS")
	}
	if k := newRedisKeys(prefix); k.users != "{team-a}:users" {
		t.Errorf("prefix without colon gives %q", k.users)
	}

	opts := c.options()
	if opts.MaxRetries != 1 || opts.DialerRetries != 1 || !opts.ContextTimeoutEnabled ||
		opts.ReadTimeout != DefaultRedisTimeout || opts.DialTimeout != DefaultRedisTimeout || opts.PoolTimeout != DefaultRedisTimeout {
		t.Errorf("options do not bound calls: %+v", opts)
	}
	// go-redis decides the client kind from the options.
	for _, tc := range []struct {
		addrs  []string
		master string
		want   string
	}{
		{[]string{"127.0.0.1:1"}, "", "*redis.Client"},
		{[]string{"127.0.0.1:1", "127.0.0.1:2"}, "", "*redis.ClusterClient"},
		{[]string{"127.0.0.1:1", "127.0.0.1:2"}, "mymaster", "*redis.Client"}, // failover
	} {
		cl := redis.NewUniversalClient(redisConn{Addrs: tc.addrs, MasterName: tc.master, Timeout: time.Millisecond}.options())
		if got := fmt.Sprintf("%T", cl); got != tc.want {
			t.Errorf("%v master %q: client %s, want %s", tc.addrs, tc.master, got, tc.want)
		}
		cl.Close()
	}

	for name, bad := range map[string]*RedisStore{
		"cluster with db":  {Addresses: []string{"a:1", "b:2"}, DB: 1},
		"negative db":      {DB: -1},
		"braces":           {KeyPrefix: "{x}:"},
		"no port":          {Addresses: []string{"localhost"}},
		"url":              {Addresses: []string{"redis://localhost:6379"}},
		"negative timeout": {Timeout: -1},
	} {
		if _, _, err := bad.resolve(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := provisionErr(t, bad); err == nil {
			t.Errorf("%s: Provision accepted", name)
			bad.Cleanup()
		}
	}
	// Sentinel with several addresses may select a db.
	if _, _, err := (&RedisStore{Addresses: []string{"a:1", "b:2"}, DB: 1, MasterName: "m"}).resolve(); err != nil {
		t.Errorf("sentinel with db: %v", err)
	}
}
