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

// TestRedisUsageLayout pins the documented usage keys and fields.
func TestRedisUsageLayout(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	tag := "{" + strings.TrimSuffix(s.KeyPrefix, ":") + "}:"
	mustAddUsage(t, s, "b-1", UsageRow{
		UsageKey:    UsageKey{User: "kim", Model: "org/m:1|x", Date: "2030-01-02"},
		UsageCounts: UsageCounts{Requests: 2, PromptTokens: 7, TotalTokens: 7, EstimatedRequests: 1},
	})

	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	defer rdb.Close()
	fields, err := rdb.HGetAll(ctx, tag+"usage:2030-01-02").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // zero counters are not written
		"kim|org/m:1|x|requests":           "2",
		"kim|org/m:1|x|prompt_tokens":      "7",
		"kim|org/m:1|x|total_tokens":       "7",
		"kim|org/m:1|x|estimated_requests": "1",
	}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("usage hash = %v, want %v", fields, want)
	}
	if v, err := rdb.Get(ctx, tag+"usage:batch:b-1").Result(); err != nil || v != "1" {
		t.Errorf("batch marker = %q, %v", v, err)
	}
	if ttl, err := rdb.TTL(ctx, tag+"usage:batch:b-1").Result(); err != nil || ttl <= UsageBatchTTL-time.Minute || ttl > UsageBatchTTL {
		t.Errorf("batch marker TTL = %v, %v; want about %v", ttl, err, UsageBatchTTL)
	}
	if keys, err := rdb.Keys(ctx, tag+"*").Result(); err != nil || len(keys) != 2 {
		t.Errorf("keys under %s: %v, %v; want exactly 2", tag, keys, err)
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
		if tag := typ.Field(i).Tag.Get("json"); tag != ctr.name {
			t.Errorf("counter %d is named %q, its field's JSON name is %q", i, ctr.name, tag)
		}
		var c UsageCounts
		*ctr.of(&c) = 1
		if reflect.ValueOf(c).Field(i).Int() != 1 {
			t.Errorf("counter %q does not point at field %s", ctr.name, typ.Field(i).Name)
		}
	}
}

// TestRedisUsageScriptFlushed checks the EVAL fallback when Redis lost its
// script cache (a restart, SCRIPT FLUSH, a failover).
func TestRedisUsageScriptFlushed(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	mustAddUsage(t, s, "b1", row("lee", "m", "2030-01-01", 1))
	if err := s.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	mustAddUsage(t, s, "b2", row("lee", "m", "2030-01-01", 1))
	wantRows(t, "after SCRIPT FLUSH", mustQueryUsage(t, s, UsageFilter{From: "2030-01-01", To: "2030-01-01"}),
		row("lee", "m", "2030-01-01", 2))
}

// TestRedisUsageMalformed checks that QueryUsage skips counters it does not
// know (written by a newer release) and refuses fields it cannot parse.
func TestRedisUsageMalformed(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	day := s.keys.usage + "2030-01-01"
	f := UsageFilter{From: "2030-01-01", To: "2030-01-01"}
	s.client.HSet(ctx, day, "max|m|requests", "3", "max|m|future_tokens", "9")
	wantRows(t, "with an unknown counter", mustQueryUsage(t, s, f), UsageRow{
		UsageKey:    UsageKey{User: "max", Model: "m", Date: "2030-01-01"},
		UsageCounts: UsageCounts{Requests: 3},
	})
	for _, bad := range [][2]string{{"max|requests", "1"}, {"max|m|requests", "x"}} {
		s.client.HSet(ctx, day, bad[0], bad[1])
		if _, err := s.QueryUsage(ctx, f); !errors.Is(err, ErrUnavailable) {
			t.Errorf("field %q = %q: %v, want ErrUnavailable", bad[0], bad[1], err)
		}
		s.client.HDel(ctx, day, bad[0])
	}
}

// TestRedisUsageLostReply retries a batch that Redis executed but whose
// reply never arrived: it must be counted once.
func TestRedisUsageLostReply(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	direct := &RedisStore{Addresses: []string{testRedis.Addr}, KeyPrefix: prefix}
	provision(t, direct)
	// EVALSHA must succeed the first time: a NOSCRIPT reply would be lost
	// too, and the script never run.
	if err := addUsageScript.Load(ctx, direct.client).Err(); err != nil {
		t.Fatal(err)
	}

	// An unusual timeout keeps this client out of other tests' pool entries.
	lossy := &RedisStore{Addresses: []string{replyDropper(t, testRedis.Addr)}, KeyPrefix: prefix,
		Timeout: caddy.Duration(150 * time.Millisecond)}
	provision(t, lossy)
	batch := []UsageRow{row("ned", "m", "2030-01-01", 1)}
	if err := lossy.AddUsage(ctx, "lost", batch); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AddUsage without a reply: %v, want ErrUnavailable", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		n, err := direct.client.Exists(ctx, direct.keys.usageBatch+"lost").Result()
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the batch never reached Redis: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustAddUsage(t, direct, "lost", batch...) // the caller's retry
	wantRows(t, "after the retry", mustQueryUsage(t, direct, UsageFilter{From: "2030-01-01", To: "2030-01-01"}), batch...)
}

// replyDropper returns the address of a proxy to addr that passes
// everything through until a client sends EVALSHA, and from then on drops
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
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) {
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
