package usage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/aiproxy/aiproxy/internal/storetest"
	"github.com/aiproxy/aiproxy/keystore"
)

const (
	day1 = "2030-01-01"
	day2 = "2030-01-02"
)

// everything selects every row the tests write.
var everything = keystore.UsageFilter{From: day1, To: day2}

func key(user, model, date string) keystore.UsageKey {
	sum := sha256.Sum256([]byte(user))
	return keystore.UsageKey{User: user, UserID: hex.EncodeToString(sum[:8]), Model: model, Date: date}
}

// counts returns counters that are all multiples of n, each different, so
// that a counter mixed up with another shows.
func counts(n int64) keystore.UsageCounts {
	return keystore.UsageCounts{
		Requests: n, PromptTokens: 10 * n, CompletionTokens: 20 * n, TotalTokens: 30 * n,
		CachedTokens: 4 * n, ReasoningTokens: 5 * n, EstimatedRequests: 6 * n,
	}
}

// stored reads everything a store holds.
func stored(t *testing.T, s keystore.Store) map[keystore.UsageKey]keystore.UsageCounts {
	t.Helper()
	rows, err := s.QueryUsage(context.Background(), everything)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[keystore.UsageKey]keystore.UsageCounts, len(rows))
	for _, r := range rows {
		out[r.UsageKey] = r.UsageCounts
	}
	return out
}

func wantCounts(t *testing.T, what string, got, want map[keystore.UsageKey]keystore.UsageCounts) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func mustFlush(t *testing.T, a *Aggregator) {
	t.Helper()
	if err := a.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func closeAtEnd(t *testing.T, a *Aggregator) {
	t.Cleanup(func() { a.Close(context.Background()) })
}

// observed returns a logger whose entries the test can inspect.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// TestExactUnderLoad adds from many goroutines while others flush, query
// and snapshot, and checks the store ends up with the exact sums: with a
// store that never fails, and with one that fails every third call, half
// of the time after applying the batch.
func TestExactUnderLoad(t *testing.T) {
	t.Run("file", func(t *testing.T) { testExactUnderLoad(t, storetest.New(t), false) })
	t.Run("flaky", func(t *testing.T) {
		s := storetest.New(t)
		testExactUnderLoad(t, s, true)
		failed := 0
		for _, b := range s.Batches() {
			if b.Err != nil {
				failed++
			}
		}
		if failed == 0 {
			t.Errorf("none of %d AddUsage calls failed: no failure tested", len(s.Batches()))
		}
		t.Logf("%d of %d AddUsage calls failed", failed, len(s.Batches()))
	})
}

func testExactUnderLoad(t *testing.T, s *storetest.Store, flaky bool) {
	a := NewAggregator(s, zap.NewNop(), time.Hour)
	closeAtEnd(t, a)
	ctx := context.Background()

	keys := []keystore.UsageKey{
		key("alice", "gpt-4o", day1), key("alice", "m|x/y:z", day1), key("bob", "gpt-4o", day1),
		key("bob", "gpt-4o", day2), key("carol", "", day2), key("dave", "o1", day2),
	}
	const workers, adds = 32, 10_000
	var (
		wantMu sync.Mutex
		want   = make(map[keystore.UsageKey]keystore.UsageCounts)
		adders sync.WaitGroup
	)
	for w := range workers {
		adders.Go(func() {
			mine := make(map[keystore.UsageKey]keystore.UsageCounts)
			for i := range adds {
				k := keys[(w+i)%len(keys)]
				c := keystore.UsageCounts{
					Requests: 1, PromptTokens: int64(i % 7), CompletionTokens: int64(i % 5),
					TotalTokens: int64(i%7 + i%5), CachedTokens: int64(i % 2), ReasoningTokens: int64(w),
				}
				if i%10 == 0 {
					c = keystore.UsageCounts{Requests: 1, EstimatedRequests: 1}
				}
				a.Add(k, c)
				sum := mine[k]
				sum.Add(c)
				mine[k] = sum
			}
			wantMu.Lock()
			defer wantMu.Unlock()
			for k, c := range mine {
				sum := want[k]
				sum.Add(c)
				want[k] = sum
			}
		})
	}

	// Flush, query and snapshot concurrently with the adders until they
	// are done. When flaky, every third AddUsage call fails, alternately
	// after and before the store applied the batch.
	addersDone := make(chan struct{})
	var others sync.WaitGroup
	var (
		flushesMu   sync.Mutex
		flushes     int
		failuresSet int
		nextFailure int // the AddUsage calls after which to set the next failure
	)
	for range 3 {
		others.Go(func() {
			for {
				select {
				case <-addersDone:
					return
				default:
				}
				flushesMu.Lock()
				flushes++
				if calls := s.Calls("AddUsage"); flaky && calls >= nextFailure {
					if failuresSet%2 == 0 {
						s.FailNextAfterApplying("AddUsage", 1, storetest.ErrOutage)
					} else {
						s.FailNext("AddUsage", 1, storetest.ErrOutage)
					}
					failuresSet++
					nextFailure = calls + 3
				}
				flushesMu.Unlock()
				if err := a.Flush(ctx); err != nil && (!flaky || !errors.Is(err, storetest.ErrOutage)) {
					t.Errorf("Flush: %v", err)
					return
				}
			}
		})
	}
	others.Go(func() {
		for {
			select {
			case <-addersDone:
				return
			default:
			}
			a.Pending()
			if _, err := a.Query(ctx, everything); err != nil {
				t.Errorf("Query: %v", err)
				return
			}
		}
	})
	adders.Wait()
	close(addersDone)
	others.Wait()

	// Reads are exact before the last flush, unless a batch the store
	// took failed ambiguously: it shows twice until its retry.
	if !flaky {
		rows, err := a.Query(ctx, everything)
		if err != nil {
			t.Fatal(err)
		}
		got := make(map[keystore.UsageKey]keystore.UsageCounts)
		for _, r := range rows {
			got[r.UsageKey] = r.UsageCounts
		}
		wantCounts(t, "Query before the last flush", got, want)
	}
	s.Recover() // drop a failure no flush met
	mustFlush(t, a)
	wantCounts(t, "stored", stored(t, s), want)
	wantCounts(t, "pending after the last flush", a.Pending(), nil)
	t.Logf("%d flushes during the adds", flushes)
}

// TestAddNeverWaitsForStore adds while the store hangs in a flush.
func TestAddNeverWaitsForStore(t *testing.T) {
	s := storetest.New(t)
	a := NewAggregator(s, nil, time.Hour)
	closeAtEnd(t, a)
	k := key("alice", "m", day1)

	a.Add(k, counts(1))
	entered, release := s.BlockNext("AddUsage")
	flushed := make(chan error)
	go func() { flushed <- a.Flush(context.Background()) }()
	<-entered
	for range 1000 {
		a.Add(k, counts(1)) // would deadlock the test if Add waited for the store
	}
	wantCounts(t, "pending while the store hangs", a.Pending(), map[keystore.UsageKey]keystore.UsageCounts{k: counts(1001)})

	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "stored by the first flush", stored(t, s), map[keystore.UsageKey]keystore.UsageCounts{k: counts(1)})
	wantCounts(t, "pending after it", a.Pending(), map[keystore.UsageKey]keystore.UsageCounts{k: counts(1000)})
	mustFlush(t, a)
	wantCounts(t, "stored by the second", stored(t, s), map[keystore.UsageKey]keystore.UsageCounts{k: counts(1001)})
}

// TestRetrySameBatch fails a flush after the store applied it (a lost
// reply) and checks that the retry resends the same batch first, so the
// store ignores it, and the newer counts follow in a batch of their own.
func TestRetrySameBatch(t *testing.T) {
	s := storetest.New(t)
	logger, logs := observed()
	a := NewAggregator(s, logger, time.Hour)
	closeAtEnd(t, a)
	k1, k2 := key("alice", "m", day1), key("bob", "m", day2)

	s.FailNextAfterApplying("AddUsage", 1, storetest.ErrOutage)
	a.Add(k1, counts(1))
	if err := a.Flush(context.Background()); !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Flush = %v, want the store's error", err)
	}
	wantCounts(t, "pending after the failure", a.Pending(), map[keystore.UsageKey]keystore.UsageCounts{k1: counts(1)})
	a.Add(k1, counts(2))
	a.Add(k2, counts(5))
	wantCounts(t, "pending before the retry", a.Pending(), map[keystore.UsageKey]keystore.UsageCounts{k1: counts(3), k2: counts(5)})
	mustFlush(t, a)

	at := s.Batches()
	if len(at) != 3 {
		t.Fatalf("%d AddUsage calls, want 3: %+v", len(at), at)
	}
	if !reflect.DeepEqual(at[1].UsageBatch, at[0].UsageBatch) {
		t.Errorf("retry sent %+v, want the failed batch %+v", at[1].UsageBatch, at[0].UsageBatch)
	}
	if at[2].Writer == at[0].Writer && at[2].Seq == at[0].Seq {
		t.Error("newer counts were sent under the failed batch's number")
	}
	wantCounts(t, "stored", stored(t, s), map[keystore.UsageKey]keystore.UsageCounts{k1: counts(3), k2: counts(5)})
	wantCounts(t, "pending", a.Pending(), nil)
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
}

// TestOutageAndRecovery keeps failing, then recovers: every attempt of the
// outage resends one batch, nothing is lost, and the outage is logged once.
func TestOutageAndRecovery(t *testing.T) {
	s := storetest.New(t)
	logger, logs := observed()
	a := NewAggregator(s, logger, time.Hour)
	closeAtEnd(t, a)
	k := key("alice", "m", day1)

	const failures = 5
	s.FailNext("AddUsage", failures, storetest.ErrOutage)
	a.Add(k, counts(1))
	for range failures {
		if err := a.Flush(context.Background()); !errors.Is(err, keystore.ErrUnavailable) {
			t.Fatalf("Flush = %v, want the store's error", err)
		}
		a.Add(k, counts(1))
	}
	wantCounts(t, "stored during the outage", stored(t, s), nil)
	wantCounts(t, "pending during the outage", a.Pending(), map[keystore.UsageKey]keystore.UsageCounts{k: counts(failures + 1)})
	mustFlush(t, a)
	wantCounts(t, "stored after it", stored(t, s), map[keystore.UsageKey]keystore.UsageCounts{k: counts(failures + 1)})

	at := s.Batches()
	if len(at) != failures+2 {
		t.Fatalf("%d AddUsage calls, want %d", len(at), failures+2)
	}
	for i := 1; i <= failures; i++ {
		if at[i].Writer != at[0].Writer || at[i].Seq != at[0].Seq {
			t.Errorf("attempt %d sent batch %s/%d, want the failed batch %s/%d again", i, at[i].Writer, at[i].Seq, at[0].Writer, at[0].Seq)
		}
	}
	if warns := logs.FilterLevelExact(zapcore.WarnLevel).Len(); warns != 1 {
		t.Errorf("%d warnings for one outage, want 1", warns)
	}
	if n := logs.FilterMessageSnippet("reachable again").Len(); n != 1 {
		t.Errorf("%d recovery messages, want 1", n)
	}
}

// TestRefusedBatch checks that a batch the store refuses for good (not an
// outage) is logged with its counts and does not block later batches.
func TestRefusedBatch(t *testing.T) {
	s := storetest.New(t)
	logger, logs := observed()
	a := NewAggregator(s, logger, time.Hour)
	closeAtEnd(t, a)
	k := key("alice", "m", day1)

	refused := errors.New("refused")
	s.FailNext("AddUsage", 1, refused)
	a.Add(k, counts(1))
	if err := a.Flush(context.Background()); !errors.Is(err, refused) {
		t.Fatalf("Flush = %v, want %v", err, refused)
	}
	if logs.FilterLevelExact(zapcore.ErrorLevel).FilterFieldKey("rows").Len() != 1 {
		t.Errorf("the refused counts were not logged: %v", logs.All())
	}
	a.Add(k, counts(2))
	mustFlush(t, a)
	wantCounts(t, "stored", stored(t, s), map[keystore.UsageKey]keystore.UsageCounts{k: counts(2)})
}

// TestClose checks that Close stops the loop and writes everything, once.
func TestClose(t *testing.T) {
	s := storetest.New(t)
	a := NewAggregator(s, nil, time.Hour) // the loop never ticks: Close must flush
	a.Start()
	want := map[keystore.UsageKey]keystore.UsageCounts{
		key("alice", "m", day1): counts(3),
		key("bob", "a/b", day2): counts(1),
	}
	for k, c := range want {
		for range c.Requests {
			a.Add(k, counts(1))
		}
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "stored after Close", stored(t, s), want)
	wantCounts(t, "pending after Close", a.Pending(), nil)
	if err := a.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	a.Start() // does nothing after Close
}

// TestAddAfterClose checks that records from requests that finish after
// Close still reach the store.
func TestAddAfterClose(t *testing.T) {
	s := storetest.New(t)
	a := NewAggregator(s, nil, time.Hour)
	a.Start()
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	const workers, adds = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range adds {
				a.Add(key(fmt.Sprintf("u%d", w%3), "m", day1), counts(1))
			}
		})
	}
	wg.Wait()
	a.late.Wait()
	want := map[keystore.UsageKey]keystore.UsageCounts{
		key("u0", "m", day1): counts(3 * adds),
		key("u1", "m", day1): counts(3 * adds),
		key("u2", "m", day1): counts(2 * adds),
	}
	wantCounts(t, "stored", stored(t, s), want)
	wantCounts(t, "pending", a.Pending(), nil)
}

// TestCloseDuringOutage checks that counts Close cannot write are logged
// and kept, and written with the next late record.
func TestCloseDuringOutage(t *testing.T) {
	s := storetest.New(t)
	logger, logs := observed()
	a := NewAggregator(s, logger, time.Hour)
	k := key("alice", "m", day1)

	s.FailNext("AddUsage", 1, storetest.ErrOutage)
	a.Add(k, counts(1))
	if err := a.Close(context.Background()); !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Close = %v, want the store's error", err)
	}
	if logs.FilterLevelExact(zapcore.ErrorLevel).FilterFieldKey("rows").Len() != 1 {
		t.Errorf("the unwritten counts were not logged: %v", logs.All())
	}
	wantCounts(t, "pending after Close", a.Pending(), map[keystore.UsageKey]keystore.UsageCounts{k: counts(1)})

	a.Add(k, counts(1))
	a.late.Wait()
	wantCounts(t, "stored", stored(t, s), map[keystore.UsageKey]keystore.UsageCounts{k: counts(2)})
	wantCounts(t, "pending", a.Pending(), nil)
}

// TestLoop checks the periodic flush.
func TestLoop(t *testing.T) {
	s := storetest.New(t)
	a := NewAggregator(s, nil, 5*time.Millisecond)
	a.Start()
	a.Start() // a second loop would be harmless, but there is none
	closeAtEnd(t, a)
	k := key("alice", "m", day1)
	for n := int64(1); n <= 2; n++ {
		a.Add(k, counts(1))
		want := map[keystore.UsageKey]keystore.UsageCounts{k: counts(n)}
		for deadline := time.Now().Add(5 * time.Second); !maps.Equal(stored(t, s), want); {
			if time.Now().After(deadline) {
				t.Fatalf("the loop did not flush: stored %v, want %v", stored(t, s), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestQuery checks that Query adds the pending counts f selects, including
// a batch whose write failed, to the stored rows.
func TestQuery(t *testing.T) {
	s := storetest.New(t)
	a := NewAggregator(s, nil, time.Hour)
	closeAtEnd(t, a)
	ctx := context.Background()

	a.Add(key("alice", "m", day1), counts(1))
	mustFlush(t, a)
	a.Add(key("alice", "m", day1), counts(2))
	s.FailNext("AddUsage", 1, storetest.ErrOutage)
	if err := a.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded")
	}
	a.Add(key("alice", "m", day1), counts(4))
	a.Add(key("alice", "a", day2), counts(1))
	a.Add(key("alice", "z", day1), counts(1))
	a.Add(key("bob", "m", day1), counts(1))           // another user
	a.Add(key("alice", "m", "2030-01-03"), counts(1)) // after the range

	rows, err := a.Query(ctx, keystore.UsageFilter{User: "alice", From: day1, To: day2})
	if err != nil {
		t.Fatal(err)
	}
	want := []keystore.UsageRow{
		{UsageKey: key("alice", "m", day1), UsageCounts: counts(7)},
		{UsageKey: key("alice", "z", day1), UsageCounts: counts(1)},
		{UsageKey: key("alice", "a", day2), UsageCounts: counts(1)},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("Query:\n got %+v\nwant %+v", rows, want)
	}
	rows, err = a.Query(ctx, keystore.UsageFilter{Model: "m", From: day1, To: day1})
	if err != nil || len(rows) != 2 || rows[0].Requests != 7 || rows[1].User != "bob" {
		t.Errorf("Query by model = %+v, %v", rows, err)
	}
}

// TestInvalidAdd checks that records the stores cannot keep are logged and
// dropped rather than poisoning a batch, and that empty ones are ignored.
func TestInvalidAdd(t *testing.T) {
	s := storetest.New(t)
	logger, logs := observed()
	a := NewAggregator(s, logger, time.Hour)
	closeAtEnd(t, a)
	a.Add(key("a|b", "m", day1), counts(1))
	a.Add(key("alice", "m", "yesterday"), counts(1))
	a.Add(key("alice", "m", day1), keystore.UsageCounts{})
	wantCounts(t, "pending", a.Pending(), nil)
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 2 {
		t.Errorf("%d errors logged, want 2", n)
	}
}

// shardDownStore writes the rows of the users it is not told are down, as
// a Redis Cluster with one shard down does, and reports the others.
type shardDownStore struct {
	keystore.Store
	mu   sync.Mutex
	down map[string]bool
}

func (s *shardDownStore) setDown(users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = map[string]bool{}
	for _, u := range users {
		s.down[u] = true
	}
}

func (s *shardDownStore) AddUsage(ctx context.Context, b keystore.UsageBatch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var up []keystore.UsageRow
	var failed []string
	for _, r := range b.Rows {
		if s.down[r.User] {
			if !slices.Contains(failed, r.User) {
				failed = append(failed, r.User)
			}
			continue
		}
		up = append(up, r)
	}
	if len(up) > 0 {
		if err := s.Store.AddUsage(ctx, keystore.UsageBatch{Writer: b.Writer, Seq: b.Seq, Rows: up, Retention: b.Retention}); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return &keystore.UsageUsersError{Users: failed, Err: fmt.Errorf("%w: shard down", keystore.ErrUnavailable)}
	}
	return nil
}

// TestShardDownHoldsBackOnlyItsUsers: while the store cannot write some
// users' rows, the others' counts are written at every flush; the held
// users' counts, old and new, are written in order once it can, each
// exactly once.
func TestShardDownHoldsBackOnlyItsUsers(t *testing.T) {
	store := &shardDownStore{Store: storetest.New(t)}
	a := NewAggregator(store, nil, 0)
	alice, bob := key("alice", "m", day1), key("bob", "m", day1)
	store.setDown("alice")

	a.Add(alice, counts(1))
	a.Add(bob, counts(1))
	var some *keystore.UsageUsersError
	if err := a.Flush(context.Background()); !errors.As(err, &some) {
		t.Fatalf("Flush with alice's shard down: %v", err)
	}
	wantCounts(t, "stored, first flush", stored(t, store), map[keystore.UsageKey]keystore.UsageCounts{bob: counts(1)})

	a.Add(alice, counts(2))
	a.Add(bob, counts(2))
	_ = a.Flush(context.Background())
	wantCounts(t, "stored, second flush", stored(t, store), map[keystore.UsageKey]keystore.UsageCounts{bob: counts(3)})
	wantCounts(t, "pending", a.Pending(), map[keystore.UsageKey]keystore.UsageCounts{alice: counts(3)})

	store.setDown()
	mustFlush(t, a)
	mustFlush(t, a) // alice's newer counts waited for her first batch
	wantCounts(t, "stored, shard back", stored(t, store), map[keystore.UsageKey]keystore.UsageCounts{alice: counts(3), bob: counts(3)})
	wantCounts(t, "pending at the end", a.Pending(), nil)
}
