package keystore

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"
)

// newTestUser returns a user with a fresh key, and that key.
func newTestUser(name string) (User, string) {
	key := NewUserKey()
	return User{
		Name:      name,
		KeyHash:   HashKey(key),
		KeyHint:   KeyHint(key),
		CreatedAt: time.Now().UTC(),
	}, key
}

// sameUser compares users field by field, times with Equal.
func sameUser(a, b User) bool {
	return a.Name == b.Name && a.KeyHash == b.KeyHash && a.KeyHint == b.KeyHint &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func mustCreate(t *testing.T, s Store, name string) (User, string) {
	t.Helper()
	u, key := newTestUser(name)
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u, key
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

var keyIDPattern = regexp.MustCompile(`^[0-9a-f]{8}$`)

// runStoreSuite checks the Store contract; newStore returns an empty store.
func runStoreSuite(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	runUsageSuite(t, newStore)
	runSpendSuite(t, newStore)
	runRequestLogSuite(t, newStore)

	t.Run("CreateGetListLookup", func(t *testing.T) {
		s := newStore(t)
		if users, err := s.ListUsers(ctx); err != nil || len(users) != 0 {
			t.Fatalf("ListUsers on empty store = %v, %v", users, err)
		}
		bob, bobKey := mustCreate(t, s, "bob")
		alice, _ := newTestUser("alice")
		alice.ExpiresAt = time.Now().Add(time.Hour)
		if err := s.CreateUser(ctx, alice); err != nil {
			t.Fatal(err)
		}
		alice.ExpiresAt = alice.ExpiresAt.UTC()

		got, err := s.GetUser(ctx, "bob")
		if err != nil || !sameUser(got, bob) {
			t.Errorf("GetUser = %+v, %v; want %+v", got, err, bob)
		}
		got, err = s.LookupKey(ctx, HashKey(bobKey))
		if err != nil || !sameUser(got, bob) {
			t.Errorf("LookupKey = %+v, %v; want %+v", got, err, bob)
		}
		got, err = s.LookupKey(ctx, alice.KeyHash)
		if err != nil || !sameUser(got, alice) {
			t.Errorf("LookupKey(alice) = %+v, %v; want %+v", got, err, alice)
		}
		if got.ExpiresAt.Location() != time.UTC {
			t.Errorf("ExpiresAt not in UTC: %v", got.ExpiresAt)
		}

		users, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 2 || !sameUser(users[0], alice) || !sameUser(users[1], bob) {
			t.Errorf("ListUsers = %+v, want alice then bob", users)
		}
	})

	t.Run("CreateExisting", func(t *testing.T) {
		s := newStore(t)
		first, firstKey := mustCreate(t, s, "carol")
		again, _ := newTestUser("carol")
		wantErr(t, "CreateUser twice", s.CreateUser(ctx, again), ErrExists)
		// The failed create must not have indexed its key.
		_, err := s.LookupKey(ctx, again.KeyHash)
		wantErr(t, "LookupKey of refused key", err, ErrNotFound)
		if got, err := s.LookupKey(ctx, HashKey(firstKey)); err != nil || !sameUser(got, first) {
			t.Errorf("first user changed: %+v, %v", got, err)
		}
	})

	t.Run("CreateInvalid", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateUser(ctx, User{Name: "x"}); err == nil {
			t.Error("CreateUser without key hash succeeded")
		}
		u, _ := newTestUser("")
		if err := s.CreateUser(ctx, u); err == nil {
			t.Error("CreateUser without name succeeded")
		}
		// Two users may never share a key.
		a, _ := mustCreate(t, s, "a")
		b, _ := newTestUser("b")
		b.KeyHash = a.KeyHash
		if err := s.CreateUser(ctx, b); err == nil {
			t.Error("CreateUser with another user's key hash succeeded")
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.LookupKey(ctx, HashKey(NewUserKey()))
		wantErr(t, "LookupKey", err, ErrNotFound)
		_, err = s.GetUser(ctx, "nobody")
		wantErr(t, "GetUser", err, ErrNotFound)
		_, err = s.ResetKey(ctx, "nobody", HashKey(NewUserKey()), "hint")
		wantErr(t, "ResetKey", err, ErrNotFound)
		_, err = s.SetExpiry(ctx, "nobody", time.Now())
		wantErr(t, "SetExpiry", err, ErrNotFound)
		wantErr(t, "DeleteUser", s.DeleteUser(ctx, "nobody"), ErrNotFound)
		wantErr(t, "DeleteHostKey (no host)", s.DeleteHostKey(ctx, "nohost", "00000000"), ErrNotFound)
		wantErr(t, "DeleteHost", s.DeleteHost(ctx, "nohost"), ErrNotFound)
		if _, err := s.AddHostKey(ctx, "h.example", "", "k1"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "DeleteHostKey (no key)", s.DeleteHostKey(ctx, "h.example", "00000000"), ErrNotFound)
		if _, err := s.GetUser(ctx, "nobody"); errors.Is(err, ErrUnavailable) {
			t.Errorf("missing user reported as unavailable: %v", err)
		}
	})

	t.Run("ResetKey", func(t *testing.T) {
		s := newStore(t)
		u, _ := newTestUser("dave")
		u.ExpiresAt = time.Now().Add(24 * time.Hour).UTC()
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		newKey := NewUserKey()
		got, err := s.ResetKey(ctx, "dave", HashKey(newKey), KeyHint(newKey))
		if err != nil {
			t.Fatal(err)
		}
		want := u
		want.KeyHash, want.KeyHint = HashKey(newKey), KeyHint(newKey)
		if !sameUser(got, want) {
			t.Errorf("ResetKey returned %+v, want %+v", got, want)
		}
		_, err = s.LookupKey(ctx, u.KeyHash)
		wantErr(t, "LookupKey of old key", err, ErrNotFound)
		if got, err := s.LookupKey(ctx, HashKey(newKey)); err != nil || !sameUser(got, want) {
			t.Errorf("LookupKey of new key = %+v, %v; want %+v", got, err, want)
		}
		if got, err := s.GetUser(ctx, "dave"); err != nil || !sameUser(got, want) {
			t.Errorf("GetUser = %+v, %v; want %+v", got, err, want)
		}
	})

	t.Run("SetExpiry", func(t *testing.T) {
		s := newStore(t)
		u, key := mustCreate(t, s, "erin")
		exp := time.Now().Add(time.Hour).In(time.FixedZone("X", 3600))
		got, err := s.SetExpiry(ctx, "erin", exp)
		if err != nil || !got.ExpiresAt.Equal(exp) {
			t.Fatalf("SetExpiry = %+v, %v", got, err)
		}
		if got.ExpiresAt.Location() != time.UTC {
			t.Errorf("ExpiresAt not stored in UTC: %v", got.ExpiresAt)
		}
		looked, err := s.LookupKey(ctx, HashKey(key))
		if err != nil || !looked.ExpiresAt.Equal(exp) || looked.KeyHash != u.KeyHash {
			t.Errorf("LookupKey after SetExpiry = %+v, %v", looked, err)
		}
		if got, err = s.SetExpiry(ctx, "erin", time.Time{}); err != nil || !got.ExpiresAt.IsZero() {
			t.Fatalf("clearing expiry = %+v, %v", got, err)
		}
		if looked, err = s.LookupKey(ctx, HashKey(key)); err != nil || !looked.ExpiresAt.IsZero() {
			t.Errorf("LookupKey after clearing expiry = %+v, %v", looked, err)
		}
		if got, err := s.GetUser(ctx, "erin"); err != nil || !got.ExpiresAt.IsZero() || !got.CreatedAt.Equal(u.CreatedAt) {
			t.Errorf("GetUser after clearing expiry = %+v, %v", got, err)
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		s := newStore(t)
		_, key := mustCreate(t, s, "frank")
		mustCreate(t, s, "grace")
		if err := s.DeleteUser(ctx, "frank"); err != nil {
			t.Fatal(err)
		}
		_, err := s.LookupKey(ctx, HashKey(key))
		wantErr(t, "LookupKey after delete", err, ErrNotFound)
		_, err = s.GetUser(ctx, "frank")
		wantErr(t, "GetUser after delete", err, ErrNotFound)
		users, err := s.ListUsers(ctx)
		if err != nil || len(users) != 1 || users[0].Name != "grace" {
			t.Errorf("ListUsers after delete = %+v, %v", users, err)
		}
		// The name is free again.
		mustCreate(t, s, "frank")
	})

	t.Run("ConcurrentResetKey", func(t *testing.T) {
		s := newStore(t)
		u, _ := mustCreate(t, s, "heidi")
		const n = 8
		hashes := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			key := NewUserKey()
			hashes[i] = HashKey(key)
			wg.Go(func() {
				if _, err := s.ResetKey(ctx, "heidi", hashes[i], KeyHint(key)); err != nil {
					t.Errorf("ResetKey %d: %v", i, err)
				}
			})
		}
		wg.Wait()

		final, err := s.GetUser(ctx, "heidi")
		if err != nil {
			t.Fatal(err)
		}
		working := 0
		for _, h := range append(hashes, u.KeyHash) {
			got, err := s.LookupKey(ctx, h)
			switch {
			case err == nil:
				working++
				if h != final.KeyHash || got.KeyHash != h {
					t.Error("a key works that is not the user's current key")
				}
			case !errors.Is(err, ErrNotFound):
				t.Errorf("LookupKey: %v", err)
			}
		}
		if working != 1 {
			t.Errorf("%d keys work after concurrent resets, want exactly 1", working)
		}
	})

	t.Run("HostModels", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.SetHostModels(ctx, "none.test", []string{"x"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("models of an absent host: %v", err)
		}
		if _, err := s.AddHostKey(ctx, "m.test", "", "sk-1"); err != nil {
			t.Fatal(err)
		}
		h, err := s.SetHostModels(ctx, "m.test", []string{"llama-*", "qwen-2"})
		if err != nil || len(h.Models) != 2 || len(h.Keys) != 1 {
			t.Fatalf("SetHostModels = %+v, %v", h, err)
		}
		hosts, _ := s.ListHosts(ctx)
		if len(hosts) != 1 || len(hosts[0].Models) != 2 || hosts[0].Models[0] != "llama-*" {
			t.Fatalf("ListHosts = %+v", hosts)
		}
		if _, err := s.AddHostKey(ctx, "m.test", "", "sk-2"); err != nil {
			t.Fatal(err)
		}
		if h, err := s.SetHostModels(ctx, "m.test", nil); err != nil || h.Models != nil || len(h.Keys) != 2 {
			t.Fatalf("cleared: %+v, %v", h, err)
		}
	})

	t.Run("Hosts", func(t *testing.T) {
		s := newStore(t)
		if hosts, err := s.ListHosts(ctx); err != nil || len(hosts) != 0 {
			t.Fatalf("ListHosts on empty store = %v, %v", hosts, err)
		}
		id1, err := s.AddHostKey(ctx, "api.groq.com", "", "gsk-1")
		if err != nil {
			t.Fatal(err)
		}
		id2, err := s.AddHostKey(ctx, "api.groq.com", "", "gsk-2")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddHostKey(ctx, "api.example.com", "http://127.0.0.1:9", "ex-1"); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{id1, id2} {
			if !keyIDPattern.MatchString(id) {
				t.Errorf("key ID %q is not 8 hex characters", id)
			}
		}
		if id1 == id2 {
			t.Errorf("two keys got the same ID %q", id1)
		}

		hosts, err := s.ListHosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 2 || hosts[0].Name != "api.example.com" || hosts[1].Name != "api.groq.com" {
			t.Fatalf("ListHosts = %+v, want api.example.com then api.groq.com", hosts)
		}
		if hosts[0].BaseURL != "http://127.0.0.1:9" || len(hosts[0].Keys) != 1 || hosts[0].Keys[0].Key != "ex-1" {
			t.Errorf("api.example.com = %+v", hosts[0])
		}
		groq := hosts[1]
		if groq.BaseURL != "" {
			t.Errorf("BaseURL = %q, want empty by default", groq.BaseURL)
		}
		if len(groq.Keys) != 2 || groq.Keys[0] != (UpstreamKey{id1, "gsk-1"}) || groq.Keys[1] != (UpstreamKey{id2, "gsk-2"}) {
			t.Errorf("keys = %+v, want gsk-1 then gsk-2 in insertion order", groq.Keys)
		}

		// A base URL replaces the old one; an empty one keeps it.
		if _, err := s.AddHostKey(ctx, "api.groq.com", "https://gateway.example/groq", "gsk-3"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddHostKey(ctx, "api.groq.com", "", "gsk-4"); err != nil {
			t.Fatal(err)
		}
		hosts, err = s.ListHosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := hosts[1]; got.BaseURL != "https://gateway.example/groq" || len(got.Keys) != 4 || got.Keys[3].Key != "gsk-4" {
			t.Errorf("after replacing base URL: %+v", got)
		}
	})

	t.Run("DeleteHostKey", func(t *testing.T) {
		s := newStore(t)
		id1, _ := s.AddHostKey(ctx, "h.example", "https://h.example/v", "k1")
		id2, _ := s.AddHostKey(ctx, "h.example", "", "k2")
		if err := s.DeleteHostKey(ctx, "h.example", id1); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "DeleteHostKey twice", s.DeleteHostKey(ctx, "h.example", id1), ErrNotFound)
		hosts, err := s.ListHosts(ctx)
		if err != nil || len(hosts) != 1 || len(hosts[0].Keys) != 1 || hosts[0].Keys[0].ID != id2 || hosts[0].BaseURL != "https://h.example/v" {
			t.Fatalf("after deleting one key: %+v, %v", hosts, err)
		}
		if err := s.DeleteHostKey(ctx, "h.example", id2); err != nil {
			t.Fatal(err)
		}
		if hosts, err := s.ListHosts(ctx); err != nil || len(hosts) != 0 {
			t.Errorf("host should go with its last key: %+v, %v", hosts, err)
		}
		wantErr(t, "DeleteHost of emptied host", s.DeleteHost(ctx, "h.example"), ErrNotFound)
	})

	t.Run("DeleteHost", func(t *testing.T) {
		s := newStore(t)
		s.AddHostKey(ctx, "a.example", "", "k1")
		s.AddHostKey(ctx, "a.example", "", "k2")
		s.AddHostKey(ctx, "b.example", "", "k3")
		if err := s.DeleteHost(ctx, "a.example"); err != nil {
			t.Fatal(err)
		}
		hosts, err := s.ListHosts(ctx)
		if err != nil || len(hosts) != 1 || hosts[0].Name != "b.example" {
			t.Errorf("ListHosts after DeleteHost = %+v, %v", hosts, err)
		}
		wantErr(t, "DeleteHost twice", s.DeleteHost(ctx, "a.example"), ErrNotFound)
		// A deleted host starts afresh.
		s.AddHostKey(ctx, "a.example", "", "k4")
		hosts, _ = s.ListHosts(ctx)
		if len(hosts) != 2 || len(hosts[0].Keys) != 1 || hosts[0].Keys[0].Key != "k4" {
			t.Errorf("re-added host = %+v", hosts)
		}
	})
}
