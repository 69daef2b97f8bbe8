package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/keystore"
)

var (
	ctx     = context.Background()
	errTest = errors.New("injected")
	now     = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

func user(name string) keystore.User {
	return keystore.User{Name: name, KeyHash: keystore.HashKey("key of " + name), CreatedAt: now}
}

// TestFailNext: the next n calls of the method fail without reaching the
// store, other methods go through, and failures queue up in order.
func TestFailNext(t *testing.T) {
	s := New(t)
	s.FailNext("CreateUser", 2, errTest)
	s.FailNextAfterApplying("CreateUser", 1, ErrOutage)
	for range 2 {
		if err := s.CreateUser(ctx, user("alice")); !errors.Is(err, errTest) {
			t.Fatalf("CreateUser = %v, want the injected error", err)
		}
	}
	if users, err := s.ListUsers(ctx); err != nil || len(users) != 0 {
		t.Fatalf("ListUsers = %v, %v; want no user and no error", users, err)
	}
	if err := s.CreateUser(ctx, user("alice")); !errors.Is(err, ErrOutage) {
		t.Fatalf("CreateUser = %v, want the outage", err)
	}
	if _, err := s.Real().GetUser(ctx, "alice"); err != nil {
		t.Fatalf("the call failing after applying did not create the user: %v", err)
	}
	if err := s.CreateUser(ctx, user("alice")); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("CreateUser after the failures = %v, want the store's answer", err)
	}
	if n, all := s.Calls("CreateUser"), s.Calls(""); n != 4 || all != 5 {
		t.Errorf("Calls = %d CreateUser, %d in all; want 4 and 5", n, all)
	}
}

// TestFailAll: an outage fails every call until Recover, which also drops
// the failures still queued.
func TestFailAll(t *testing.T) {
	s := New(t)
	s.FailNext("", 1, errTest)
	s.FailAll(ErrOutage)
	if _, err := s.LookupKey(ctx, "h"); !errors.Is(err, ErrOutage) {
		t.Fatalf("LookupKey during the outage = %v", err)
	}
	s.Recover()
	if _, err := s.LookupKey(ctx, "h"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("LookupKey after Recover = %v, want the store's answer", err)
	}
}

// TestBatches: AddUsage calls are recorded with what they returned, and a
// blocked call waits for its release.
func TestBatches(t *testing.T) {
	s := New(t)
	row := keystore.UsageRow{
		UsageKey:    keystore.UsageKey{User: "alice", UserID: keystore.NewUserID(), Model: "m", Date: "2030-01-01"},
		UsageCounts: keystore.UsageCounts{Requests: 1},
	}
	b := keystore.UsageBatch{Writer: "w", Seq: 1, Rows: []keystore.UsageRow{row}}
	s.FailNextAfterApplying("AddUsage", 1, ErrOutage)
	entered, release := s.BlockNext("AddUsage")
	done := make(chan error)
	go func() { done <- s.AddUsage(ctx, b) }()
	<-entered
	if n := len(s.Batches()); n != 0 {
		t.Fatalf("%d batches recorded while the call is held", n)
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrOutage) {
		t.Fatalf("AddUsage = %v", err)
	}
	if err := s.AddUsage(ctx, b); err != nil {
		t.Fatal(err)
	}
	got := s.Batches()
	if len(got) != 2 || got[0].Seq != 1 || !errors.Is(got[0].Err, ErrOutage) || got[1].Err != nil {
		t.Errorf("Batches = %+v", got)
	}
	rows, err := s.QueryUsage(ctx, keystore.UsageFilter{From: row.Date, To: row.Date})
	if err != nil || len(rows) != 1 || rows[0].Requests != 1 {
		t.Errorf("stored %+v, %v; want the batch once", rows, err)
	}
}

// TestFailSpend: the spend ledger's methods, and UpdatePolicy, can be
// failed by name like the others.
func TestFailSpend(t *testing.T) {
	s := New(t)
	for _, m := range []string{"UpdatePolicy", "Admit", "Settle", "RenewLease", "Spending"} {
		s.FailNext(m, 1, errTest)
	}
	a := keystore.Admission{User: "u", UserID: "0123456789abcdef", Allowance: keystore.Allowance{RPM: 1}, Now: now}
	if _, err := s.UpdatePolicy(ctx, "u", func(*keystore.Policy) error { return nil }); !errors.Is(err, errTest) {
		t.Errorf("UpdatePolicy = %v", err)
	}
	if _, err := s.Admit(ctx, a); !errors.Is(err, errTest) {
		t.Errorf("Admit = %v", err)
	}
	if err := s.Settle(ctx, keystore.Settlement{User: "u", UserID: a.UserID, Admitted: now}); !errors.Is(err, errTest) {
		t.Errorf("Settle = %v", err)
	}
	if err := s.RenewLease(ctx, "u", a.UserID, "l", now); !errors.Is(err, errTest) {
		t.Errorf("RenewLease = %v", err)
	}
	if _, err := s.Spending(ctx, keystore.SpendQuery{User: "u", UserID: a.UserID, Now: now}); !errors.Is(err, errTest) {
		t.Errorf("Spending = %v", err)
	}
	if v, err := s.Admit(ctx, a); err != nil || v.Denied != "" {
		t.Errorf("Admit after the failures = %+v, %v; want the store's answer", v, err)
	}
}
