package keystore

import (
	"bytes"
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// TestRedisUsageLayout pins the documented usage keys and fields: one hash
// per user ID and month, under the user's hash tag.
func TestRedisUsageLayout(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	tag := s.KeyPrefix + "{u:kim}:"
	id := idOf("kim")
	mustAddUsage(t, s, UsageBatch{Writer: "w1", Seq: 7, Rows: []UsageRow{{
		UsageKey:    UsageKey{User: "kim", UserID: id, Model: "org/m:1|x", Date: "2030-01-02"},
		UsageCounts: UsageCounts{Requests: 2, PromptTokens: 7, TotalTokens: 7, EstimatedRequests: 1, CostNanoUSD: 1050},
	}}})

	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	defer rdb.Close()
	fields, err := rdb.HGetAll(ctx, tag+"usage:"+id+":2030-01").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // zero counters are not written
		"02|org/m:1|x|requests":           "2",
		"02|org/m:1|x|prompt_tokens":      "7",
		"02|org/m:1|x|total_tokens":       "7",
		"02|org/m:1|x|estimated_requests": "1",
		"02|org/m:1|x|cost_nano_usd":      "1050",
	}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("usage hash = %v, want %v", fields, want)
	}
	if v, err := rdb.HGet(ctx, tag+"applied", "w1").Result(); err != nil || !strings.HasPrefix(v, "7 ") {
		t.Errorf("writer w1's last batch = %q, %v; want 7 and a time", v, err)
	}
	if ids, err := rdb.SMembers(ctx, tag+"ids").Result(); err != nil || !reflect.DeepEqual(ids, []string{id}) {
		t.Errorf("IDs of kim = %v, %v", ids, err)
	}
	if ttl, err := rdb.TTL(ctx, tag+"usage:"+id+":2030-01").Result(); err != nil || ttl != -1 {
		t.Errorf("without a retention the month hash has TTL %v, %v; want none", ttl, err)
	}
	if keys, err := rdb.Keys(ctx, s.KeyPrefix+"*").Result(); err != nil || len(keys) != 3 {
		t.Errorf("keys under %s: %v, %v; want exactly 3", s.KeyPrefix, keys, err)
	}
}

// TestRedisUsageRetention checks that month hashes expire a retention after
// the month ends.
func TestRedisUsageRetention(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	month := time.Now().UTC().Format("2006-01")
	b := ub(1, row("rae", "m", month+"-01", 1))
	b.Retention = 48 * time.Hour
	mustAddUsage(t, s, b)
	at, err := s.client.ExpireTime(ctx, s.keys.usageMonth("rae", idOf("rae"), month)).Result()
	if err != nil {
		t.Fatal(err)
	}
	start, _ := time.Parse("2006-01", month)
	if want := start.AddDate(0, 1, 2); at != time.Duration(want.Unix())*time.Second {
		t.Errorf("month hash expires at %v, want %v", time.Unix(int64(at/time.Second), 0).UTC(), want)
	}
}

// TestRedisUsageAllOrNothing checks that a user's part of a batch that
// meets a counter it cannot add to changes nothing, its sequence number
// included, while the other users' parts are written; and that a counter
// near the limit saturates instead of failing.
func TestRedisUsageAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	month := s.keys.usageMonth("oli", idOf("oli"), "2030-01")
	s.client.HSet(ctx, month, "02|m|prompt_tokens", "not a number")
	// Other users' parts are written; the corrupt one's is dropped (and
	// logged), since no retry could mend it and retrying would hold back
	// everyone's counts.
	err := s.AddUsage(ctx, ub(1, row("oli", "m", "2030-01-01", 1), row("oli", "m", "2030-01-02", 1), row("pam", "m", "2030-01-02", 1)))
	if err != nil {
		t.Fatalf("AddUsage over a corrupt counter: %v, want the batch taken", err)
	}
	if got := mustQueryUsage(t, s, UsageFilter{User: "pam", From: "2030-01-02", To: "2030-01-02"}); len(got) != 1 {
		t.Errorf("another user's part of the batch: %+v", got)
	}
	if n, _ := s.client.HLen(ctx, month).Result(); n != 1 {
		t.Errorf("month hash has %d fields after the refused batch, want the 1 corrupt one", n)
	}
	if n, _ := s.client.Exists(ctx, s.keys.applied("oli")).Result(); n != 0 {
		t.Error("the refused batch left its sequence number behind, so its retry would be skipped")
	}

	s.client.HSet(ctx, month, "02|m|prompt_tokens", MaxUsageCount-5)
	mustAddUsage(t, s, ub(2, row("oli", "m", "2030-01-02", 1)))
	got := mustQueryUsage(t, s, UsageFilter{User: "oli", From: "2030-01-02", To: "2030-01-02"})
	if len(got) != 1 || got[0].PromptTokens != MaxUsageCount || got[0].Requests != 1 {
		t.Errorf("after a saturating add: %+v, want prompt tokens at %d", got, int64(MaxUsageCount))
	}
}

// TestRedisUsageCounters checks that the Redis counter names are the JSON
// names of UsageCounts, in field order, each bound to its own field: a
// counter added to the type must be added to the table too.
func TestRedisUsageCounters(t *testing.T) {
	typ := reflect.TypeFor[UsageCounts]()
	if typ.NumField() != len(usageCounters) {
		t.Fatalf("UsageCounts has %d fields, usageCounters %d", typ.NumField(), len(usageCounters))
	}
	for i, ctr := range usageCounters {
		if name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); name != ctr.name {
			t.Errorf("counter %d is named %q, its field's JSON name is %q", i, ctr.name, name)
		}
		var c UsageCounts
		*ctr.of(&c) = 1
		if reflect.ValueOf(c).Field(i).Int() != 1 {
			t.Errorf("counter %q does not point at field %s", ctr.name, typ.Field(i).Name)
		}
	}
}

// TestRedisUsageMalformed checks that QueryUsage skips counters it does not
// know (written by a newer release) and refuses fields it cannot parse.
func TestRedisUsageMalformed(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	id := idOf("max")
	month := s.keys.usageMonth("max", id, "2030-01")
	s.client.SAdd(ctx, s.keys.userIDs("max"), id)
	f := UsageFilter{User: "max", From: "2030-01-01", To: "2030-01-01"}
	s.client.HSet(ctx, month, "01|m|requests", "3", "01|m|future_tokens", "9")
	wantRows(t, "with an unknown counter", mustQueryUsage(t, s, f), UsageRow{
		UsageKey:    UsageKey{User: "max", UserID: id, Model: "m", Date: "2030-01-01"},
		UsageCounts: UsageCounts{Requests: 3},
	})
	for _, bad := range [][2]string{{"01|requests", "1"}, {"1|m|requests", "1"}, {"01|m|requests", "x"}} {
		s.client.HSet(ctx, month, bad[0], bad[1])
		if _, err := s.QueryUsage(ctx, f); !errors.Is(err, ErrUnavailable) {
			t.Errorf("field %q = %q: %v, want ErrUnavailable", bad[0], bad[1], err)
		}
		s.client.HDel(ctx, month, bad[0])
	}
}

// TestRedisUsageLostReply retries a batch that Redis executed but whose
// reply never arrived: it must be counted once.
func TestRedisUsageLostReply(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	direct := &RedisStore{Addresses: []string{testRedis.Addr}, KeyPrefix: prefix}
	provision(t, direct)
	// An unusual timeout keeps this client out of other tests' pool entries.
	lossy := &RedisStore{Addresses: []string{replyDropper(t, testRedis.Addr)}, KeyPrefix: prefix,
		Timeout: caddy.Duration(150 * time.Millisecond)}
	provision(t, lossy)
	batch := []UsageRow{row("ned", "m", "2030-01-01", 1)}
	if err := lossy.AddUsage(ctx, ub(4, batch...)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AddUsage without a reply: %v, want ErrUnavailable", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		n, err := direct.client.HExists(ctx, direct.keys.applied("ned"), "suite").Result()
		if err == nil && n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the batch never reached Redis: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustAddUsage(t, direct, ub(4, batch...)) // the caller's retry
	wantRows(t, "after the retry", mustQueryUsage(t, direct, UsageFilter{From: "2030-01-01", To: "2030-01-01"}), batch...)
}

// replyDropper returns the address of a proxy to addr that passes
// everything through until a client sends EVAL, and from then on drops
// the replies on that connection: a network failing after the server acted.
func replyDropper(t *testing.T, addr string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				var dropping atomic.Bool
				go func() {
					buf := make([]byte, 64<<10)
					for {
						n, err := up.Read(buf)
						if err != nil {
							c.Close()
							return
						}
						if !dropping.Load() {
							c.Write(buf[:n])
						}
					}
				}()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					// Set before the command is forwarded, so its reply is dropped.
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("eval")) {
						dropping.Store(true)
					}
					if _, err := up.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRedisUsageRetryKeepsWriterFresh checks that a retried batch renews
// its writer's entry, so a writer still retrying is never pruned (which
// would let its retry count twice).
func TestRedisUsageRetryKeepsWriterFresh(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	mustAddUsage(t, s, ub(3, row("ria", "m", "2030-01-01", 1)))
	s.client.HSet(ctx, s.keys.applied("ria"), "suite", "3 1")   // applied long ago
	mustAddUsage(t, s, ub(3, row("ria", "m", "2030-01-01", 1))) // the retry
	v, err := s.client.HGet(ctx, s.keys.applied("ria"), "suite").Result()
	if err != nil || !strings.HasPrefix(v, "3 ") || v == "3 1" {
		t.Errorf("writer entry after a retry = %q, %v; want batch 3 at a fresh time", v, err)
	}
	wantRows(t, "after the retry", mustQueryUsage(t, s, UsageFilter{User: "ria", From: "2030-01-01", To: "2030-01-01"}),
		row("ria", "m", "2030-01-01", 1))
}
