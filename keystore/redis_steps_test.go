package keystore

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestRedisChangesStoppedBetweenSteps stops each multi-slot user change
// after each of its steps, on a real Cluster, and checks what a crash there
// would leave: the record decides, so there are never two working keys and
// never a working key of a deleted user; and the change, done again,
// completes.
func TestRedisChangesStoppedBetweenSteps(t *testing.T) {
	ctx := context.Background()
	s := newRedisClusterStore(t)
	other := newClusterStoreWithPrefix(t, s.KeyPrefix) // another instance on the same data
	stopAt := func(step string) { s.crashAfter = func(st string) bool { return st == step } }
	defer func() { s.crashAfter = nil }()
	works := func(hash string) bool {
		t.Helper()
		_, err1 := s.LookupKey(ctx, hash)
		_, err2 := other.LookupKey(ctx, hash)
		if (err1 == nil) != (err2 == nil) {
			t.Errorf("the instances disagree on a key: %v, %v", err1, err2)
		}
		if err1 != nil && !errors.Is(err1, ErrNotFound) {
			t.Fatalf("LookupKey: %v", err1)
		}
		return err1 == nil
	}

	for i, step := range []string{stepResetEntry, stepResetRecord} {
		name := fmt.Sprintf("reset%d", i)
		u, _ := mustCreate(t, s, name)
		newUser, _ := newTestUser(name)
		stopAt(step)
		if _, err := s.ResetKey(ctx, name, newUser.KeyHash, newUser.KeyHint); !errors.Is(err, errCrashed) {
			t.Fatalf("%s: ResetKey = %v", step, err)
		}
		s.crashAfter = nil
		oldWorks, newWorks := works(u.KeyHash), works(newUser.KeyHash)
		if oldWorks && newWorks {
			t.Errorf("stopped after %q: both keys work", step)
		}
		if step == stepResetRecord && oldWorks {
			t.Errorf("stopped after %q: the replaced key still works", step)
		}
		again, _ := newTestUser(name)
		if _, err := s.ResetKey(ctx, name, again.KeyHash, again.KeyHint); err != nil {
			t.Fatalf("%s: reset again: %v", step, err)
		}
		if works(u.KeyHash) || works(newUser.KeyHash) || !works(again.KeyHash) {
			t.Errorf("%s: after a reset done again, only the newest key may work", step)
		}
	}

	for i, step := range []string{stepDeleteRecord, stepDeleteEntry} {
		name := fmt.Sprintf("delete%d", i)
		u, _ := mustCreate(t, s, name)
		stopAt(step)
		if err := s.DeleteUser(ctx, name); !errors.Is(err, errCrashed) {
			t.Fatalf("%s: DeleteUser = %v", step, err)
		}
		s.crashAfter = nil
		if works(u.KeyHash) {
			t.Errorf("stopped after %q: the deleted user's key works", step)
		}
		for _, st := range []Store{s, other} {
			users, err := st.ListUsers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, listed := range users {
				if listed.Name == name {
					t.Errorf("stopped after %q: the deleted user is listed", step)
				}
			}
		}
		if err := s.DeleteUser(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: delete again: %v, want ErrNotFound", step, err)
		}
		again, _ := mustCreate(t, s, name) // the name is free
		if !works(again.KeyHash) || works(u.KeyHash) {
			t.Errorf("%s: created again: only the new key may work", step)
		}
	}

	for i, step := range []string{stepCreateEntry, stepCreateSets} {
		name := fmt.Sprintf("create%d", i)
		u, _ := newTestUser(name)
		stopAt(step)
		if err := s.CreateUser(ctx, u); !errors.Is(err, errCrashed) {
			t.Fatalf("%s: CreateUser = %v", step, err)
		}
		s.crashAfter = nil
		if works(u.KeyHash) {
			t.Errorf("stopped after %q: the key of a user never created works", step)
		}
		if _, err := s.GetUser(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("stopped after %q: GetUser = %v, want ErrNotFound", step, err)
		}
		again, _ := mustCreate(t, s, name) // as an admin would, with a new key
		if !works(again.KeyHash) {
			t.Errorf("%s: created again: the key does not work", step)
		}
	}
}
