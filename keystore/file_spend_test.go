package keystore

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestFileSpendPersists closes the file, which writes the ledger's last
// changes, and opens it again, as a restart would: the budgets' spending
// is still there.
func TestFileSpendPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aiproxy.db")
	first := &FileStore{Path: path}
	if err := provisionErr(t, first); err != nil {
		t.Fatal(err)
	}
	sp := newSpender(t, first, "kept")
	day := Admission{Allowance: Allowance{BudgetTokens: 1000, Period: PeriodDay}, PromptTokens: 10, MaxOutput: 90}
	total := Admission{Allowance: Allowance{BudgetRequests: 10, Period: PeriodTotal}, MaxOutput: -1}
	sp.admit(spendT0, day)
	sp.admit(spendT0, day)
	sp.settle(Settlement{Admitted: spendT0, Period: PeriodDay, Reserved: Amounts{1, 100, 0}, Used: Amounts{1, 40, 0}})
	sp.admit(spendT0, total)
	// The last cleanup closes the file; its Destruct flushes first.
	if err := first.Cleanup(); err != nil {
		t.Fatal(err)
	}

	second := &FileStore{Path: path}
	provision(t, second)
	sp.s = second
	if got := sp.spending(spendT0, PeriodDay).Spent; got != (Amounts{2, 140, 0}) {
		t.Errorf("day after reopening: %+v, want 2 requests, 140 tokens", got)
	}
	if got := sp.spending(spendT0, PeriodTotal).Spent; got != reqs(1) {
		t.Errorf("total after reopening: %+v, want 1 request", got)
	}
	// The budget holds on from there.
	total.BudgetRequests = 1
	if v := sp.admit(spendT0, total); v.Denied != DeniedBudgetRequests {
		t.Errorf("over the total budget after reopening: %+v", v)
	}
}

// TestFileSpendFlush checks that a flush writes the changed periods, and
// that a user it forgot is read back from the file.
func TestFileSpendFlush(t *testing.T) {
	s := newFileStore(t)
	sp := newSpender(t, s, "flushed")
	// Two minutes ago: by the wall clock, which the flush prunes by, the
	// window has let go of it already.
	now := time.Now().Add(-2 * time.Minute).Truncate(time.Millisecond)
	a := Admission{Allowance: Allowance{BudgetTokens: 1000, Period: PeriodTotal}, PromptTokens: 10, MaxOutput: 90}
	v := sp.admit(now, a)
	if v.Denied != "" {
		t.Fatal(v)
	}
	a.Period = PeriodMonth
	month := sp.admit(now, a)
	if month.Denied != "" {
		t.Fatal(month)
	}

	s.spend.flush()
	for _, tc := range []struct {
		period Period
		want   spendRecord
	}{
		{PeriodTotal, spendRecord{Amounts: v.Spent}},
		{PeriodMonth, spendRecord{Amounts: month.Spent}},
	} {
		key, end := tc.period.Span(now)
		tc.want.End = end
		var got spendRecord
		err := s.db.View(func(tx *bbolt.Tx) error {
			raw := tx.Bucket(bucketSpend).Get(spendKey(sp.id, key))
			if raw == nil {
				t.Errorf("no record of %s after a flush", key)
				return nil
			}
			return json.Unmarshal(raw, &got)
		})
		if err != nil || got.Amounts != tc.want.Amounts || !got.End.Equal(tc.want.End) {
			t.Errorf("record of %s = %+v, %v; want %+v", key, got, err, tc.want)
		}
	}

	// The first flush took the user's periods; the next one, finding
	// nothing else in memory, forgets the user.
	s.spend.flush()
	s.spend.ledger.mu.Lock()
	_, remembered := s.spend.ledger.users[sp.id]
	s.spend.ledger.mu.Unlock()
	if remembered {
		t.Error("the ledger still holds a user with nothing but written periods")
	}
	if got := sp.spending(time.Now(), PeriodTotal).Spent; got != v.Spent {
		t.Errorf("total read back: %+v, want %+v", got, v.Spent)
	}
	if got := sp.spending(now, PeriodMonth).Spent; got != month.Spent {
		t.Errorf("month read back: %+v, want %+v", got, month.Spent)
	}
}
