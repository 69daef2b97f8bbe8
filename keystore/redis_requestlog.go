package keystore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The request log is one Redis Stream under the global hash tag (see
// RedisStore), an entry per record with two fields: "u", the user name,
// which a query filters on without decoding the record, and "r", the JSON
// RequestRecord. XADD trims it with MAXLEN ~ keep, which Redis does a
// whole node of entries at a time: the stream holds keep records and up to
// about a hundred more, and queries read the newest keep at most.

// requestReadChunk is how many entries one round trip of a filtered query
// reads, so that a large scan neither holds Redis for long nor sits whole
// in a socket buffer.
const requestReadChunk = 1000

// AppendRequests implements Store: one XADD per record, in one pipeline.
func (s *RedisStore) AppendRequests(ctx context.Context, keep int, recs []RequestRecord) error {
	if err := validateRequests(keep, recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	if err := s.ensureLayout(ctx); err != nil {
		return err
	}
	args := make([]redis.XAddArgs, len(recs))
	for i, r := range recs {
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		args[i] = redis.XAddArgs{
			Stream: s.keys.requests,
			MaxLen: int64(keep),
			Approx: true,
			Values: []any{"u", r.User, "r", raw},
		}
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range args {
			p.XAdd(ctx, &args[i])
		}
		return nil
	})
	return redisErr(err)
}

// RecentRequests implements Store: XREVRANGE from the newest entry back,
// in chunks when filtering by user.
func (s *RedisStore) RecentRequests(ctx context.Context, q RequestQuery) ([]RequestRecord, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	if err := s.ensureLayout(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	col := newRequestCollector(q)
	end := "+"
	for col.more() {
		n := min(q.Scan-col.scanned, requestReadChunk)
		if q.User == "" {
			n = min(n, q.Limit-len(col.out)) // every entry is taken, but for a repeat
		}
		entries, err := s.client.XRevRangeN(ctx, s.keys.requests, end, "-", int64(n)).Result()
		if err != nil {
			return nil, redisErr(err)
		}
		for _, e := range entries {
			if !col.more() {
				break
			}
			user, _ := e.Values["u"].(string)
			if !col.wants(user) {
				continue
			}
			raw, _ := e.Values["r"].(string)
			var r RequestRecord
			if err := json.Unmarshal([]byte(raw), &r); err != nil {
				return nil, unavailable(fmt.Errorf("decoding request log record %s: %w", e.ID, err))
			}
			col.take(r)
		}
		if len(entries) < n {
			break // the oldest entry was read
		}
		if end, err = streamIDBefore(entries[len(entries)-1].ID); err != nil {
			return nil, unavailable(err)
		}
	}
	return col.out, nil
}

// streamIDBefore returns the stream ID just before id, for the next chunk
// of XREVRANGE: exclusive ranges ("(id") need Redis 6.2, and Redis 5
// already has streams.
func streamIDBefore(id string) (string, error) {
	msText, seqText, ok := strings.Cut(id, "-")
	ms, err1 := strconv.ParseUint(msText, 10, 64)
	seq, err2 := strconv.ParseUint(seqText, 10, 64)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return "", fmt.Errorf("malformed stream ID %q", id)
	case seq > 0:
		return msText + "-" + strconv.FormatUint(seq-1, 10), nil
	case ms > 0:
		return strconv.FormatUint(ms-1, 10) + "-" + strconv.FormatUint(math.MaxUint64, 10), nil
	}
	return "0-0", nil // nothing is before it; 0-0 itself is never an entry's
}
