package aiproxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/storetest"
	"github.com/aiproxy/aiproxy/keystore"
)

// testRecord is a record of user numbered n; Path carries n.
func testRecord(user string, n int) keystore.RequestRecord {
	return keystore.RequestRecord{
		Time:   time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond),
		User:   user,
		Model:  "gpt-4o-mini",
		Host:   "api.openai.com",
		Path:   fmt.Sprintf("/v1/n/%d", n),
		Status: 200,
	}
}

// paths lists the records' paths, to compare what and in which order.
func paths(recs []keystore.RequestRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Path
	}
	return out
}

func wantPaths(t *testing.T, what string, recs []keystore.RequestRecord, ns ...int) {
	t.Helper()
	want := make([]string, len(ns))
	for i, n := range ns {
		want[i] = fmt.Sprintf("/v1/n/%d", n)
	}
	if got := paths(recs); !slices.Equal(got, want) {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

// newTestRequestLog returns a request log of size keep over a store that
// fails on demand, and the count of records it dropped.
func newTestRequestLog(t *testing.T, keep int) (*requestLog, *storetest.Store, *int) {
	store := storetest.New(t)
	var mu sync.Mutex
	dropped := new(int)
	l := newRequestLog(store, keep, zap.NewNop(), func(n int) {
		mu.Lock()
		*dropped += n
		mu.Unlock()
	})
	return l, store, dropped
}

func stored(t *testing.T, s *storetest.Store, keep int) []keystore.RequestRecord {
	t.Helper()
	recs, err := s.Real().RecentRequests(context.Background(), keystore.RequestQuery{Limit: keep, Scan: keep})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRequestLogFlush(t *testing.T) {
	ctx := context.Background()
	l, store, dropped := newTestRequestLog(t, 100)
	for n := range 5 {
		l.add(testRecord([]string{"ann", "ben"}[n%2], n))
	}
	// Queued records show before they are written.
	recs, err := l.recent(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	wantPaths(t, "queued", recs, 4, 3, 2, 1, 0)
	if store.Calls("AppendRequests") != 0 {
		t.Error("adding a record called the store")
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := stored(t, store, 100)
	wantPaths(t, "stored", got, 4, 3, 2, 1, 0)
	for _, r := range got {
		if r.ID == "" {
			t.Errorf("record %s stored without an ID", r.Path)
		}
	}
	l.add(testRecord("ann", 5))
	for _, tc := range []struct {
		user  string
		limit int
		want  []int
	}{
		{"", 10, []int{5, 4, 3, 2, 1, 0}},
		{"", 2, []int{5, 4}},
		{"ann", 10, []int{5, 4, 2, 0}},
		{"ben", 1, []int{3}},
		{"cy", 10, nil},
	} {
		recs, err := l.recent(ctx, tc.user, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		wantPaths(t, fmt.Sprintf("recent(%q, %d)", tc.user, tc.limit), recs, tc.want...)
	}
	if *dropped != 0 {
		t.Errorf("dropped %d", *dropped)
	}
}

// TestRequestLogQueueFull: a full queue drops its oldest records, counted.
func TestRequestLogQueueFull(t *testing.T) {
	ctx := context.Background()
	l, store, dropped := newTestRequestLog(t, 3)
	for n := range 8 {
		l.add(testRecord("ann", n))
	}
	if *dropped != 5 {
		t.Errorf("dropped %d, want 5", *dropped)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantPaths(t, "stored", stored(t, store, 3), 7, 6, 5)
}

// TestRequestLogRetry: a batch the store could not write is sent again at
// the next flush, and the queue stays within its bound meanwhile.
func TestRequestLogRetry(t *testing.T) {
	ctx := context.Background()
	l, store, dropped := newTestRequestLog(t, 4)
	l.add(testRecord("ann", 0))
	l.add(testRecord("ann", 1))
	store.FailNext("AppendRequests", 1, storetest.ErrOutage)
	if err := l.Flush(ctx); !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Flush = %v, want the outage", err)
	}
	for n := 2; n < 5; n++ {
		l.add(testRecord("ann", n))
	}
	if q := l.queued(); q != 4 || *dropped != 1 {
		t.Errorf("queued %d, dropped %d; want 4 and 1", q, *dropped)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantPaths(t, "stored", stored(t, store, 4), 4, 3, 2, 1)

	// A reply lost after the write: the batch goes again, and shows once.
	l.add(testRecord("ann", 5))
	store.FailNextAfterApplying("AppendRequests", 1, storetest.ErrOutage)
	if err := l.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded through a lost reply")
	}
	recs, err := l.recent(ctx, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	wantPaths(t, "queued and stored", recs, 5, 4, 3, 2)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantPaths(t, "stored twice, which takes two places", stored(t, store, 4), 5, 4, 3)
}

// TestRequestLogRefused: a batch the store refuses is dropped and counted;
// the next ones flow.
func TestRequestLogRefused(t *testing.T) {
	ctx := context.Background()
	l, store, dropped := newTestRequestLog(t, 10)
	l.add(testRecord("", 0)) // no user: no store keeps it
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l.add(testRecord("ann", 1))
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantPaths(t, "stored", stored(t, store, 10), 1)
	if *dropped != 1 {
		t.Errorf("dropped %d, want 1", *dropped)
	}
}

// TestRequestLogRing: records keep their order through the ring's growth
// and wrapping, and batches of maxRequestBatch.
func TestRequestLogRing(t *testing.T) {
	ctx := context.Background()
	const keep = 3 * maxRequestBatch
	l, store, dropped := newTestRequestLog(t, keep)
	n := 0
	for _, burst := range []int{5, 70, 1, 2500, 130, keep} {
		for range burst {
			l.add(testRecord("ann", n))
			n++
		}
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	recs := stored(t, store, keep)
	want := make([]int, keep)
	for i := range want {
		want[i] = n - 1 - i
	}
	wantPaths(t, "stored", recs, want...)
	if *dropped != 0 || l.queued() != 0 {
		t.Errorf("dropped %d, queued %d", *dropped, l.queued())
	}
}
