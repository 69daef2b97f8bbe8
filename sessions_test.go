package aiproxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/storetest"
	"github.com/aiproxy/aiproxy/keystore"
)

// createUsers stores users.
func createUsers(t *testing.T, store keystore.Store, users ...keystore.User) {
	t.Helper()
	for _, u := range users {
		if err := store.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSessionTableChecks drives check directly with a fixed clock: a store
// outage keeps sessions open, a deleted key and a passed expiry close
// theirs, and the table forgets sessions as they end.
func TestSessionTableChecks(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	alice := keystore.User{Name: "alice", KeyHash: "a1"}
	bob := keystore.User{Name: "bob", KeyHash: "b1", ExpiresAt: now.Add(time.Minute)}
	store := storetest.New(t)
	createUsers(t, store, alice, bob)
	// An hour between ticks: only the calls below check.
	tab := newSessionTable(store, time.Hour, zap.NewNop())
	tab.now = func() time.Time { return now }

	aliceCtx, endAlice := tab.open(context.Background(), alice)
	aliceCtx2, endAlice2 := tab.open(context.Background(), alice)
	bobCtx, endBob := tab.open(context.Background(), bob)
	defer endBob()

	store.FailAll(storetest.ErrOutage)
	if !tab.check() || aliceCtx.Err() != nil || bobCtx.Err() != nil {
		t.Fatal("a store outage closed sessions")
	}
	store.Recover()

	if err := store.DeleteUser(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	tab.check()
	for _, ctx := range []context.Context{aliceCtx, aliceCtx2} {
		if !errors.Is(context.Cause(ctx), errKeyRevoked) {
			t.Fatalf("deleted key: session cause %v", context.Cause(ctx))
		}
	}
	if bobCtx.Err() != nil {
		t.Fatal("another key's session closed")
	}
	endAlice()
	endAlice2()

	now = bob.ExpiresAt
	tab.check()
	if !errors.Is(context.Cause(bobCtx), errKeyExpired) {
		t.Fatalf("expired key: session cause %v", context.Cause(bobCtx))
	}
	endBob()
	tab.mu.Lock()
	n := len(tab.byKey)
	tab.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d keys left in the table after every session ended", n)
	}
	if tab.check() {
		t.Fatal("check reports sessions left in an empty table")
	}
}

// TestSessionTableForgetsEndedSessions: a session that ends normally
// leaves nothing behind, and a key with no session left is not looked up.
func TestSessionTableForgetsEndedSessions(t *testing.T) {
	alice := keystore.User{Name: "alice", KeyHash: "a1"}
	store := storetest.New(t)
	createUsers(t, store, alice)
	tab := newSessionTable(store, time.Hour, zap.NewNop())
	ctx, end := tab.open(context.Background(), alice)
	end()
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		t.Fatalf("an ended session's context: %v", context.Cause(ctx))
	}
	tab.mu.Lock()
	n := len(tab.byKey)
	tab.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d keys left in the table", n)
	}
}
