package keystore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// reqAt returns a record of user numbered n, its every field derived from n
// so that fields mixed up show.
func reqAt(user string, n int) RequestRecord {
	return RequestRecord{
		ID:               fmt.Sprintf("w1.%d", n),
		Time:             time.Date(2026, 12, 1, 2, 3, 4, 0, time.UTC).Add(time.Duration(n) * time.Millisecond),
		User:             user,
		Model:            "gpt-4o-mini",
		Host:             "api.openai.com",
		Path:             "/v1/chat/completions",
		Status:           200 + n%2,
		PromptTokens:     int64(10 + n),
		CompletionTokens: int64(20 + n),
		CostNanoUSD:      int64(30 + n),
		Duration:         time.Duration(n)*time.Millisecond + 500*time.Microsecond,
		Stream:           n%2 == 1,
	}
}

func mustAppend(t *testing.T, s Store, keep int, recs ...RequestRecord) {
	t.Helper()
	if err := s.AppendRequests(context.Background(), keep, recs); err != nil {
		t.Fatalf("AppendRequests(%d records): %v", len(recs), err)
	}
}

func mustRecent(t *testing.T, s Store, q RequestQuery) []RequestRecord {
	t.Helper()
	recs, err := s.RecentRequests(context.Background(), q)
	if err != nil {
		t.Fatalf("RecentRequests(%+v): %v", q, err)
	}
	if recs == nil {
		t.Errorf("RecentRequests(%+v) returned nil, want a non-nil slice", q)
	}
	return recs
}

// wantRecords checks got holds want, in that order, field by field.
func wantRecords(t *testing.T, what string, got []RequestRecord, want ...RequestRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records %v, want %d", what, len(got), ids(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) {
			t.Errorf("%s[%d]: time %v, want %v", what, i, g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("%s[%d] = %+v, want %+v", what, i, g, w)
		}
	}
}

func ids(recs []RequestRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// runRequestLogSuite checks the request log part of the Store contract.
func runRequestLogSuite(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("RequestLogEmpty", func(t *testing.T) {
		s := newStore(t)
		wantRecords(t, "empty log", mustRecent(t, s, RequestQuery{Limit: 10, Scan: 100}))
		wantRecords(t, "empty log of ann", mustRecent(t, s, RequestQuery{User: "ann", Limit: 10, Scan: 100}))
		mustAppend(t, s, 10) // nothing to append is no error
	})

	t.Run("RequestLogNewestFirst", func(t *testing.T) {
		s := newStore(t)
		mustAppend(t, s, 100, reqAt("ann", 1), reqAt("ben", 2))
		mustAppend(t, s, 100, reqAt("ann", 3), reqAt("ann", 4), reqAt("ben", 5))
		all := mustRecent(t, s, RequestQuery{Limit: 100, Scan: 100})
		wantRecords(t, "all", all, reqAt("ben", 5), reqAt("ann", 4), reqAt("ann", 3), reqAt("ben", 2), reqAt("ann", 1))
		wantRecords(t, "limit 2", mustRecent(t, s, RequestQuery{Limit: 2, Scan: 100}), reqAt("ben", 5), reqAt("ann", 4))
		wantRecords(t, "ann's", mustRecent(t, s, RequestQuery{User: "ann", Limit: 100, Scan: 100}),
			reqAt("ann", 4), reqAt("ann", 3), reqAt("ann", 1))
		wantRecords(t, "ann's newest 2", mustRecent(t, s, RequestQuery{User: "ann", Limit: 2, Scan: 100}),
			reqAt("ann", 4), reqAt("ann", 3))
		wantRecords(t, "cy's", mustRecent(t, s, RequestQuery{User: "cy", Limit: 100, Scan: 100}))
	})

	t.Run("RequestLogScanBound", func(t *testing.T) {
		// A filter reads no further back than Scan: the log's size.
		s := newStore(t)
		mustAppend(t, s, 100, reqAt("ann", 1), reqAt("ben", 2), reqAt("ben", 3), reqAt("ben", 4))
		wantRecords(t, "ann's within 3", mustRecent(t, s, RequestQuery{User: "ann", Limit: 3, Scan: 3}))
		wantRecords(t, "ann's within 4", mustRecent(t, s, RequestQuery{User: "ann", Limit: 3, Scan: 4}), reqAt("ann", 1))
	})

	t.Run("RequestLogCapped", func(t *testing.T) {
		s := newStore(t)
		for n := 1; n <= 10; n += 2 {
			mustAppend(t, s, 3, reqAt("ann", n), reqAt("ann", n+1))
		}
		wantRecords(t, "newest 3", mustRecent(t, s, RequestQuery{Limit: 3, Scan: 3}),
			reqAt("ann", 10), reqAt("ann", 9), reqAt("ann", 8))
	})

	t.Run("RequestLogSentTwice", func(t *testing.T) {
		// A batch sent again after a lost reply shows each record once.
		s := newStore(t)
		batch := []RequestRecord{reqAt("ann", 1), reqAt("ben", 2)}
		mustAppend(t, s, 100, batch...)
		mustAppend(t, s, 100, batch...)
		mustAppend(t, s, 100, reqAt("ann", 3))
		wantRecords(t, "all", mustRecent(t, s, RequestQuery{Limit: 100, Scan: 100}),
			reqAt("ann", 3), reqAt("ben", 2), reqAt("ann", 1))
	})

	t.Run("RequestLogManyChunks", func(t *testing.T) {
		// More records than one round trip reads.
		s := newStore(t)
		const n = 2*requestReadChunk + 300
		var recs, anns []RequestRecord
		for i := range n {
			r := reqAt([]string{"ann", "ben"}[i%2], i)
			recs = append(recs, r)
			if r.User == "ann" {
				anns = append([]RequestRecord{r}, anns...)
			}
		}
		mustAppend(t, s, n, recs...)
		wantRecords(t, "ann's", mustRecent(t, s, RequestQuery{User: "ann", Limit: n, Scan: n}), anns...)
		got := mustRecent(t, s, RequestQuery{Limit: n, Scan: n})
		if len(got) != n || got[0].ID != recs[n-1].ID || got[n-1].ID != recs[0].ID {
			t.Errorf("all: %d records, from %s to %s", len(got), got[0].ID, got[len(got)-1].ID)
		}
	})

	t.Run("RequestLogInvalid", func(t *testing.T) {
		s := newStore(t)
		long := reqAt("ann", 2)
		long.Path = "/" + string(make([]byte, MaxRequestPath))
		for name, call := range map[string]func() error{
			"keep 0":         func() error { return s.AppendRequests(ctx, 0, []RequestRecord{reqAt("ann", 1)}) },
			"keep too large": func() error { return s.AppendRequests(ctx, MaxRequestLog+1, []RequestRecord{reqAt("ann", 1)}) },
			"long user": func() error {
				return s.AppendRequests(ctx, 10, []RequestRecord{reqAt("ann", 1), reqAt(strings.Repeat("a", 256), 2)})
			},
			"no user":   func() error { return s.AppendRequests(ctx, 10, []RequestRecord{reqAt("ann", 1), reqAt("", 2)}) },
			"long path": func() error { return s.AppendRequests(ctx, 10, []RequestRecord{reqAt("ann", 1), long}) },
			"limit 0": func() error {
				_, err := s.RecentRequests(ctx, RequestQuery{Limit: 0, Scan: 10})
				return err
			},
			"limit over scan": func() error {
				_, err := s.RecentRequests(ctx, RequestQuery{Limit: 11, Scan: 10})
				return err
			},
			"scan too large": func() error {
				_, err := s.RecentRequests(ctx, RequestQuery{Limit: 1, Scan: MaxRequestLog + 1})
				return err
			},
			"query bad user": func() error {
				_, err := s.RecentRequests(ctx, RequestQuery{User: "a b", Limit: 1, Scan: 10})
				return err
			},
		} {
			err := call()
			if err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: got %v, want a refusal", name, err)
			}
		}
		// A refused batch writes nothing, not even its valid records.
		wantRecords(t, "after refusals", mustRecent(t, s, RequestQuery{Limit: 10, Scan: 10}))
	})
}
