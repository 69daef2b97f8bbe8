package keystore

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRedisRequestLogLayout pins the documented key and entry fields, and
// that XADD trims the stream near its size.
func TestRedisRequestLogLayout(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	key := "{" + strings.TrimSuffix(s.KeyPrefix, ":") + "}:requests"
	const keep = 10
	for n := 0; n < 1000; n += 100 {
		var batch []RequestRecord
		for i := range 100 {
			batch = append(batch, reqAt("ann", n+i))
		}
		mustAppend(t, s, keep, batch...)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	defer rdb.Close()
	if typ, err := rdb.Type(ctx, key).Result(); err != nil || typ != "stream" {
		t.Fatalf("TYPE %s = %q, %v; want stream", key, typ, err)
	}
	// MAXLEN ~ trims whole nodes of entries (stream-node-max-entries, 100
	// by default): a few more than keep may stay, never the whole history.
	if n, err := rdb.XLen(ctx, key).Result(); err != nil || n < keep || n > keep+200 {
		t.Errorf("XLEN = %d, %v; want %d to %d", n, err, keep, keep+200)
	}
	last, err := rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil || len(last) != 1 || last[0].Values["u"] != "ann" || !strings.Contains(last[0].Values["r"].(string), `"id":"w1.999"`) {
		t.Errorf("newest entry = %+v, %v; want fields u=ann and r, the JSON record", last, err)
	}
}

func TestStreamIDBefore(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"1700000000000-5", "1700000000000-4"},
		{"1700000000000-0", "1699999999999-18446744073709551615"},
		{"0-1", "0-0"},
		{"0-0", "0-0"},
	} {
		if got, err := streamIDBefore(tc.id); err != nil || got != tc.want {
			t.Errorf("streamIDBefore(%s) = %s, %v; want %s", tc.id, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "12", "a-1", "1-b", "-1"} {
		if _, err := streamIDBefore(bad); err == nil {
			t.Errorf("streamIDBefore(%q) succeeded", bad)
		}
	}
}
