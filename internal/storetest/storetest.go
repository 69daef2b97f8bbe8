// Package storetest gives tests a real key store that fails on demand.
//
// New returns a keystore.FileStore on a fresh bbolt file behind a Store
// that passes every call on, unless the test asked for a failure:
//
//	s := storetest.New(t)
//	s.FailNext("AddUsage", 1, storetest.ErrOutage)             // refused: nothing written
//	s.FailNextAfterApplying("AddUsage", 1, storetest.ErrOutage) // written, but the reply was lost
//	s.FailAll(storetest.ErrOutage)                              // an outage, until Recover
//
// Methods are named as in keystore.Store ("LookupKey", "AddUsage"...); ""
// stands for any method. What the store holds is read back through its own
// methods (QueryUsage, GetUser...), or through Real to read without counting
// a call or meeting a failure.
package storetest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/aiproxy/aiproxy/keystore"
)

// ErrOutage is a store outage, as a backend failure is reported: wrapped in
// keystore.ErrUnavailable.
var ErrOutage = fmt.Errorf("%w: injected outage", keystore.ErrUnavailable)

// Store is a keystore.Store over a real FileStore that fails calls on
// demand, counts them and records the usage batches it receives. It is
// safe for concurrent use.
type Store struct {
	real *keystore.FileStore

	mu       sync.Mutex
	calls    map[string]int
	failures []*failure // consumed oldest first
	down     error      // set by FailAll: every call fails with it
	blocks   []*block
	batches  []Batch
}

// failure fails the next n calls of method ("" for any) with err; with
// apply, each of them reaches the store first.
type failure struct {
	method string
	n      int
	err    error
	apply  bool
}

// block holds the next call of method ("" for any) until release is closed.
type block struct {
	method  string
	entered chan struct{}
	release chan struct{}
}

// Batch is one AddUsage call the store received.
type Batch struct {
	keystore.UsageBatch
	// Err is what the call returned.
	Err error
}

// methods are the names FailNext and the others accept.
var methods = []string{
	"", "LookupKey", "CreateUser", "GetUser", "ListUsers", "ResetKey", "SetExpiry", "DeleteUser",
	"AddHostKey", "ListHosts", "DeleteHostKey", "DeleteHost", "AddUsage", "QueryUsage",
	"UpdatePolicy", "Admit", "Settle", "RenewLease", "Spending", "SetHostModels",
	"AppendRequests", "RecentRequests",
}

// New returns a Store over a FileStore on a fresh file in tb.TempDir(),
// provisioned as Caddy would and cleaned up at the end of the test.
func New(tb testing.TB) *Store {
	tb.Helper()
	fs := &keystore.FileStore{Path: filepath.Join(tb.TempDir(), "aiproxy.db")}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	if err := fs.Provision(ctx); err != nil {
		tb.Fatalf("provisioning the file store: %v", err)
	}
	tb.Cleanup(func() {
		if err := fs.Cleanup(); err != nil {
			tb.Errorf("cleaning up the file store: %v", err)
		}
	})
	return &Store{real: fs, calls: make(map[string]int)}
}

// Real returns the store behind s. Calls to it are neither counted nor
// failed: tests read what is stored through it.
func (s *Store) Real() *keystore.FileStore { return s.real }

// FailNext makes the next n calls of method ("" for any method) fail with
// err without reaching the store. Failures queue up: a call meets the
// oldest one that matches it.
func (s *Store) FailNext(method string, n int, err error) {
	s.queue(&failure{method: checkMethod(method), n: n, err: err})
}

// FailNextAfterApplying is FailNext for calls that reach the store and then
// report err, whatever the store answered: a reply lost on the way back,
// which leaves the caller unsure whether its write happened.
func (s *Store) FailNextAfterApplying(method string, n int, err error) {
	s.queue(&failure{method: checkMethod(method), n: n, err: err, apply: true})
}

func (s *Store) queue(f *failure) {
	if f.n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f)
}

// FailAll makes every call fail with err, without reaching the store, until
// Recover.
func (s *Store) FailAll(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = err
}

// Recover ends FailAll's outage and drops the failures still queued: from
// now on every call reaches the store.
func (s *Store) Recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down, s.failures = nil, nil
}

// BlockNext holds the next call of method ("" for any method): the call
// closes entered and waits, before anything else happens to it, until the
// test closes release.
func (s *Store) BlockNext(method string) (entered <-chan struct{}, release chan<- struct{}) {
	b := &block{method: checkMethod(method), entered: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks = append(s.blocks, b)
	return b.entered, b.release
}

// Calls returns how many calls of method ("" for every method) s received,
// the failed ones included.
func (s *Store) Calls(method string) int {
	checkMethod(method)
	s.mu.Lock()
	defer s.mu.Unlock()
	if method != "" {
		return s.calls[method]
	}
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// Batches returns the AddUsage calls s received, in the order they returned.
func (s *Store) Batches() []Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

func checkMethod(method string) string {
	if !slices.Contains(methods, method) {
		panic(fmt.Sprintf("storetest: %q is not a keystore.Store method", method))
	}
	return method
}

// call runs fn, the real store's method, unless a failure set for method
// says otherwise, and returns the error the caller gets.
func (s *Store) call(method string, fn func() error) error {
	s.mu.Lock()
	s.calls[method]++
	var held *block
	if i := slices.IndexFunc(s.blocks, func(b *block) bool { return matches(b.method, method) }); i >= 0 {
		held = s.blocks[i]
		s.blocks = slices.Delete(s.blocks, i, i+1)
	}
	s.mu.Unlock()
	if held != nil {
		close(held.entered)
		<-held.release
	}

	apply, err := s.injected(method)
	if err != nil && !apply {
		return err
	}
	if realErr := fn(); err == nil {
		return realErr
	}
	return err
}

// injected returns the failure a call of method meets, if any, and
// whether the call reaches the store first.
func (s *Store) injected(method string) (apply bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return false, s.down
	}
	i := slices.IndexFunc(s.failures, func(f *failure) bool { return matches(f.method, method) })
	if i < 0 {
		return false, nil
	}
	f := s.failures[i]
	if f.n--; f.n <= 0 {
		s.failures = slices.Delete(s.failures, i, i+1)
	}
	return f.apply, f.err
}

func matches(want, method string) bool { return want == "" || want == method }

// call1 is call for methods that return a value, which is the zero value
// when the call fails.
func call1[T any](s *Store, method string, fn func() (T, error)) (T, error) {
	var v T
	err := s.call(method, func() (err error) {
		v, err = fn()
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// LookupKey implements keystore.Store.
func (s *Store) LookupKey(ctx context.Context, keyHash string) (keystore.User, error) {
	return call1(s, "LookupKey", func() (keystore.User, error) { return s.real.LookupKey(ctx, keyHash) })
}

// CreateUser implements keystore.Store.
func (s *Store) CreateUser(ctx context.Context, u keystore.User) error {
	return s.call("CreateUser", func() error { return s.real.CreateUser(ctx, u) })
}

// GetUser implements keystore.Store.
func (s *Store) GetUser(ctx context.Context, name string) (keystore.User, error) {
	return call1(s, "GetUser", func() (keystore.User, error) { return s.real.GetUser(ctx, name) })
}

// ListUsers implements keystore.Store.
func (s *Store) ListUsers(ctx context.Context) ([]keystore.User, error) {
	return call1(s, "ListUsers", func() ([]keystore.User, error) { return s.real.ListUsers(ctx) })
}

// ResetKey implements keystore.Store.
func (s *Store) ResetKey(ctx context.Context, name, keyHash, keyHint string) (keystore.User, error) {
	return call1(s, "ResetKey", func() (keystore.User, error) { return s.real.ResetKey(ctx, name, keyHash, keyHint) })
}

// SetExpiry implements keystore.Store.
func (s *Store) SetExpiry(ctx context.Context, name string, expiresAt time.Time) (keystore.User, error) {
	return call1(s, "SetExpiry", func() (keystore.User, error) { return s.real.SetExpiry(ctx, name, expiresAt) })
}

// DeleteUser implements keystore.Store.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.call("DeleteUser", func() error { return s.real.DeleteUser(ctx, name) })
}

// AddHostKey implements keystore.Store.
func (s *Store) AddHostKey(ctx context.Context, host, baseURL, key string) (string, error) {
	return call1(s, "AddHostKey", func() (string, error) { return s.real.AddHostKey(ctx, host, baseURL, key) })
}

// SetHostModels implements keystore.Store.
func (s *Store) SetHostModels(ctx context.Context, host string, models []string) (keystore.Host, error) {
	return call1(s, "SetHostModels", func() (keystore.Host, error) { return s.real.SetHostModels(ctx, host, models) })
}

// ListHosts implements keystore.Store.
func (s *Store) ListHosts(ctx context.Context) ([]keystore.Host, error) {
	return call1(s, "ListHosts", func() ([]keystore.Host, error) { return s.real.ListHosts(ctx) })
}

// DeleteHostKey implements keystore.Store.
func (s *Store) DeleteHostKey(ctx context.Context, host, id string) error {
	return s.call("DeleteHostKey", func() error { return s.real.DeleteHostKey(ctx, host, id) })
}

// DeleteHost implements keystore.Store.
func (s *Store) DeleteHost(ctx context.Context, host string) error {
	return s.call("DeleteHost", func() error { return s.real.DeleteHost(ctx, host) })
}

// AddUsage implements keystore.Store, and records the batch and its
// outcome for Batches.
func (s *Store) AddUsage(ctx context.Context, b keystore.UsageBatch) error {
	b.Rows = slices.Clone(b.Rows)
	err := s.call("AddUsage", func() error { return s.real.AddUsage(ctx, b) })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, Batch{UsageBatch: b, Err: err})
	return err
}

// QueryUsage implements keystore.Store.
func (s *Store) QueryUsage(ctx context.Context, f keystore.UsageFilter) ([]keystore.UsageRow, error) {
	return call1(s, "QueryUsage", func() ([]keystore.UsageRow, error) { return s.real.QueryUsage(ctx, f) })
}

// UpdatePolicy implements keystore.Store.
func (s *Store) UpdatePolicy(ctx context.Context, name string, change func(*keystore.Policy) error) (keystore.User, error) {
	return call1(s, "UpdatePolicy", func() (keystore.User, error) { return s.real.UpdatePolicy(ctx, name, change) })
}

// Admit implements keystore.Store.
func (s *Store) Admit(ctx context.Context, a keystore.Admission) (keystore.Verdict, error) {
	return call1(s, "Admit", func() (keystore.Verdict, error) { return s.real.Admit(ctx, a) })
}

// Settle implements keystore.Store.
func (s *Store) Settle(ctx context.Context, st ...keystore.Settlement) error {
	return s.call("Settle", func() error { return s.real.Settle(ctx, st...) })
}

// RenewLease implements keystore.Store.
func (s *Store) RenewLease(ctx context.Context, user, userID, lease string, now time.Time) error {
	return s.call("RenewLease", func() error { return s.real.RenewLease(ctx, user, userID, lease, now) })
}

// Spending implements keystore.Store.
func (s *Store) Spending(ctx context.Context, q keystore.SpendQuery) (keystore.Spending, error) {
	return call1(s, "Spending", func() (keystore.Spending, error) { return s.real.Spending(ctx, q) })
}

// AppendRequests implements keystore.Store.
func (s *Store) AppendRequests(ctx context.Context, keep int, recs []keystore.RequestRecord) error {
	return s.call("AppendRequests", func() error { return s.real.AppendRequests(ctx, keep, recs) })
}

// RecentRequests implements keystore.Store.
func (s *Store) RecentRequests(ctx context.Context, q keystore.RequestQuery) ([]keystore.RequestRecord, error) {
	return call1(s, "RecentRequests", func() ([]keystore.RequestRecord, error) { return s.real.RecentRequests(ctx, q) })
}

// Interface guard
var _ keystore.Store = (*Store)(nil)
