package usage

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/aiproxy/aiproxy/keystore"
)

// newFileStore returns a provisioned file store on a fresh file, as Caddy
// would load it.
func newFileStore(t *testing.T) *keystore.FileStore {
	t.Helper()
	s := &keystore.FileStore{Path: filepath.Join(t.TempDir(), "aiproxy.db")}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Cleanup(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// errDown is what fakeStore fails with: a store outage.
var errDown = fmt.Errorf("%w: injected outage", keystore.ErrUnavailable)

// attempt is one AddUsage call a fakeStore received.
type attempt struct {
	id   string
	rows []keystore.UsageRow
	err  error
}

// fakeStore keeps usage in memory, honouring AddUsage's batch IDs, and
// fails on demand. Only its usage methods work: the embedded nil Store
// panics on any other call.
type fakeStore struct {
	keystore.Store

	mu       sync.Mutex
	usage    map[keystore.UsageKey]keystore.UsageCounts
	batches  map[string]bool
	attempts []attempt
	fail     int   // the next fail AddUsage calls fail
	failErr  error // with this error
	ambig    bool  // failing calls apply the batch first: the reply was lost
	flaky    int   // if > 0, every flaky-th call fails, every other one after applying its batch
	block    chan struct{}
	entered  chan struct{}
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		usage:   make(map[keystore.UsageKey]keystore.UsageCounts),
		batches: make(map[string]bool),
	}
}

// failNext makes the next n AddUsage calls fail with err; with applied,
// each of them applies its batch before failing.
func (s *fakeStore) failNext(n int, err error, applied bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.failErr, s.ambig = n, err, applied
}

// blockNext makes the next AddUsage call signal entered and then wait until
// release is closed.
func (s *fakeStore) blockNext() (entered <-chan struct{}, release chan<- struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block, s.entered = make(chan struct{}), make(chan struct{})
	return s.entered, s.block
}

func (s *fakeStore) AddUsage(ctx context.Context, b keystore.UsageBatch) error {
	batchID, rows := fmt.Sprintf("%s/%d", b.Writer, b.Seq), b.Rows
	s.mu.Lock()
	block, entered := s.block, s.entered
	s.block, s.entered = nil, nil
	s.mu.Unlock()
	if block != nil {
		close(entered)
		<-block
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	applied := s.ambig
	switch n := len(s.attempts) + 1; {
	case s.fail > 0:
		s.fail--
		err = s.failErr
	case s.flaky > 0 && n%s.flaky == 0:
		err, applied = errDown, n/s.flaky%2 == 0
	}
	s.attempts = append(s.attempts, attempt{id: batchID, rows: slices.Clone(rows), err: err})
	if err != nil && !applied {
		return err
	}
	if !s.batches[batchID] {
		s.batches[batchID] = true
		for _, r := range rows {
			c := s.usage[r.UsageKey]
			c.Add(r.UsageCounts)
			s.usage[r.UsageKey] = c
		}
	}
	return err
}

func (s *fakeStore) QueryUsage(_ context.Context, f keystore.UsageFilter) ([]keystore.UsageRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := []keystore.UsageRow{}
	for k, c := range s.usage {
		if f.Matches(k) {
			rows = append(rows, keystore.UsageRow{UsageKey: k, UsageCounts: c})
		}
	}
	slices.SortFunc(rows, func(a, b keystore.UsageRow) int {
		return cmp.Or(cmp.Compare(a.Date, b.Date), cmp.Compare(a.User, b.User), cmp.Compare(a.Model, b.Model))
	})
	return rows, nil
}

// stored returns a copy of what the store holds.
func (s *fakeStore) stored() map[keystore.UsageKey]keystore.UsageCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.usage)
}

// attemptsSoFar returns the AddUsage calls received so far.
func (s *fakeStore) attemptsSoFar() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}
