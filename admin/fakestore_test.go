package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aiproxy/aiproxy/keystore"
)

// fakeStore is an in-memory keystore.Store honouring the interface's
// documented semantics, for tests. Setting fail makes every call return it.
type fakeStore struct {
	mu     sync.Mutex
	users  map[string]keystore.User
	hosts  map[string]*keystore.Host
	nextID int
	calls  int
	fail   error

	usage   map[keystore.UsageKey]keystore.UsageCounts
	batches map[string]bool // batch IDs AddUsage has applied
}

var _ keystore.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{
		users: make(map[string]keystore.User),
		hosts: make(map[string]*keystore.Host),
	}
}

// enter counts a call and returns the injected failure; s.mu must be held.
func (s *fakeStore) enter() error {
	s.calls++
	return s.fail
}

func (s *fakeStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *fakeStore) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *fakeStore) LookupKey(_ context.Context, keyHash string) (keystore.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return keystore.User{}, err
	}
	for _, u := range s.users {
		if u.KeyHash == keyHash {
			return u, nil
		}
	}
	return keystore.User{}, keystore.ErrNotFound
}

func (s *fakeStore) CreateUser(_ context.Context, u keystore.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return err
	}
	if _, ok := s.users[u.Name]; ok {
		return keystore.ErrExists
	}
	s.users[u.Name] = u
	return nil
}

func (s *fakeStore) GetUser(_ context.Context, name string) (keystore.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return keystore.User{}, err
	}
	u, ok := s.users[name]
	if !ok {
		return keystore.User{}, keystore.ErrNotFound
	}
	return u, nil
}

func (s *fakeStore) ListUsers(context.Context) ([]keystore.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return nil, err
	}
	users := make([]keystore.User, 0, len(s.users))
	for _, u := range s.users {
		users = append(users, u)
	}
	slices.SortFunc(users, func(a, b keystore.User) int { return strings.Compare(a.Name, b.Name) })
	return users, nil
}

func (s *fakeStore) ResetKey(_ context.Context, name, keyHash, keyHint string) (keystore.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return keystore.User{}, err
	}
	u, ok := s.users[name]
	if !ok {
		return keystore.User{}, keystore.ErrNotFound
	}
	u.KeyHash, u.KeyHint = keyHash, keyHint
	s.users[name] = u
	return u, nil
}

func (s *fakeStore) SetExpiry(_ context.Context, name string, expiresAt time.Time) (keystore.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return keystore.User{}, err
	}
	u, ok := s.users[name]
	if !ok {
		return keystore.User{}, keystore.ErrNotFound
	}
	u.ExpiresAt = expiresAt
	s.users[name] = u
	return u, nil
}

func (s *fakeStore) DeleteUser(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return err
	}
	if _, ok := s.users[name]; !ok {
		return keystore.ErrNotFound
	}
	delete(s.users, name)
	return nil
}

func (s *fakeStore) AddHostKey(_ context.Context, host, baseURL, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return "", err
	}
	hs, ok := s.hosts[host]
	if !ok {
		hs = &keystore.Host{Name: host}
		s.hosts[host] = hs
	}
	if baseURL != "" {
		hs.BaseURL = baseURL
	}
	s.nextID++
	id := fmt.Sprintf("k%04x", s.nextID)
	hs.Keys = append(hs.Keys, keystore.UpstreamKey{ID: id, Key: key})
	return id, nil
}

func (s *fakeStore) ListHosts(context.Context) ([]keystore.Host, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return nil, err
	}
	hosts := make([]keystore.Host, 0, len(s.hosts))
	for _, hs := range s.hosts {
		c := *hs
		c.Keys = slices.Clone(hs.Keys)
		hosts = append(hosts, c)
	}
	slices.SortFunc(hosts, func(a, b keystore.Host) int { return strings.Compare(a.Name, b.Name) })
	return hosts, nil
}

func (s *fakeStore) DeleteHostKey(_ context.Context, host, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return err
	}
	hs, ok := s.hosts[host]
	if !ok {
		return keystore.ErrNotFound
	}
	i := slices.IndexFunc(hs.Keys, func(k keystore.UpstreamKey) bool { return k.ID == id })
	if i < 0 {
		return keystore.ErrNotFound
	}
	hs.Keys = slices.Delete(hs.Keys, i, i+1)
	if len(hs.Keys) == 0 {
		delete(s.hosts, host)
	}
	return nil
}

func (s *fakeStore) DeleteHost(_ context.Context, host string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return err
	}
	if _, ok := s.hosts[host]; !ok {
		return keystore.ErrNotFound
	}
	delete(s.hosts, host)
	return nil
}

func (s *fakeStore) AddUsage(_ context.Context, b keystore.UsageBatch) error {
	batchID, rows := fmt.Sprintf("%s/%d", b.Writer, b.Seq), b.Rows
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return err
	}
	if s.batches[batchID] {
		return nil
	}
	if s.batches == nil {
		s.batches = make(map[string]bool)
		s.usage = make(map[keystore.UsageKey]keystore.UsageCounts)
	}
	s.batches[batchID] = true
	for _, r := range rows {
		c := s.usage[r.UsageKey]
		c.Add(r.UsageCounts)
		s.usage[r.UsageKey] = c
	}
	return nil
}

func (s *fakeStore) QueryUsage(_ context.Context, f keystore.UsageFilter) ([]keystore.UsageRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return nil, err
	}
	rows := []keystore.UsageRow{}
	for k, c := range s.usage {
		if f.Matches(k) {
			rows = append(rows, keystore.UsageRow{UsageKey: k, UsageCounts: c})
		}
	}
	slices.SortFunc(rows, func(a, b keystore.UsageRow) int {
		return strings.Compare(a.Date+"\x00"+a.User+"\x00"+a.Model, b.Date+"\x00"+b.User+"\x00"+b.Model)
	})
	return rows, nil
}

// user returns the stored user directly, bypassing call counting.
func (s *fakeStore) user(name string) (keystore.User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	return u, ok
}
