package keystore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
)

// row builds a usage row; n sets every counter to a multiple of it so that
// a counter mixed up with another shows.
func row(user, model, date string, n int64) UsageRow {
	return UsageRow{
		UsageKey: UsageKey{User: user, UserID: idOf(user), Model: model, Date: date},
		UsageCounts: UsageCounts{
			Requests: n, PromptTokens: 10 * n, CompletionTokens: 20 * n, TotalTokens: 30 * n,
			CachedTokens: 4 * n, ReasoningTokens: 5 * n, EstimatedRequests: 6 * n, CostNanoUSD: 7 * n,
		},
	}
}

// idOf gives each test user name a fixed ID, so rows can be written down.
func idOf(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:userIDLen/2])
}

// ub is batch seq of the suite's one writer.
func ub(seq uint64, rows ...UsageRow) UsageBatch {
	return UsageBatch{Writer: "suite", Seq: seq, Rows: rows}
}

func mustAddUsage(t *testing.T, s Store, b UsageBatch) {
	t.Helper()
	if err := s.AddUsage(context.Background(), b); err != nil {
		t.Fatalf("AddUsage(%s %d): %v", b.Writer, b.Seq, err)
	}
}

func mustQueryUsage(t *testing.T, s Store, f UsageFilter) []UsageRow {
	t.Helper()
	rows, err := s.QueryUsage(context.Background(), f)
	if err != nil {
		t.Fatalf("QueryUsage(%+v): %v", f, err)
	}
	if rows == nil {
		t.Errorf("QueryUsage(%+v) returned nil, want a non-nil slice", f)
	}
	return rows
}

func wantRows(t *testing.T, what string, got []UsageRow, want ...UsageRow) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// runUsageSuite checks the usage part of the Store contract.
func runUsageSuite(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("UsageAddQuery", func(t *testing.T) {
		s := newStore(t)
		wantRows(t, "empty store", mustQueryUsage(t, s, UsageFilter{From: "2030-01-01", To: "2030-12-31"}))
		mustAddUsage(t, s, ub(1,
			row("bob", "gpt-4o", "2030-01-02", 1),
			row("alice", "gpt-4o-mini", "2030-01-02", 2),
			row("alice", "gpt-4o", "2030-01-01", 3),
			row("bob", "gpt-4o", "2030-01-03", 4),
			row("alice", "gpt-4o", "2030-01-02", 5),
			row("alice2", "gpt-4o", "2030-01-02", 6), // sorts after alice
		))
		all := []UsageRow{
			row("alice", "gpt-4o", "2030-01-01", 3),
			row("alice", "gpt-4o", "2030-01-02", 5),
			row("alice", "gpt-4o-mini", "2030-01-02", 2),
			row("alice2", "gpt-4o", "2030-01-02", 6),
			row("bob", "gpt-4o", "2030-01-02", 1),
			row("bob", "gpt-4o", "2030-01-03", 4),
		}
		wantRows(t, "all", mustQueryUsage(t, s, UsageFilter{From: "2030-01-01", To: "2030-01-03"}), all...)
		wantRows(t, "wider range", mustQueryUsage(t, s, UsageFilter{From: "2029-12-01", To: "2030-02-01"}), all...)
		wantRows(t, "user", mustQueryUsage(t, s, UsageFilter{User: "alice", From: "2030-01-01", To: "2030-01-03"}),
			all[0], all[1], all[2])
		wantRows(t, "model", mustQueryUsage(t, s, UsageFilter{Model: "gpt-4o", From: "2030-01-01", To: "2030-01-03"}),
			all[0], all[1], all[3], all[4], all[5])
		wantRows(t, "user and model", mustQueryUsage(t, s, UsageFilter{User: "bob", Model: "gpt-4o", From: "2030-01-03", To: "2030-01-03"}),
			all[5])
		wantRows(t, "one day", mustQueryUsage(t, s, UsageFilter{From: "2030-01-02", To: "2030-01-02"}),
			all[1], all[2], all[3], all[4])
		wantRows(t, "from the second day", mustQueryUsage(t, s, UsageFilter{From: "2030-01-02", To: "2030-01-09"}),
			all[1:]...)
		wantRows(t, "up to the first day", mustQueryUsage(t, s, UsageFilter{From: "2029-12-25", To: "2030-01-01"}),
			all[0])
		wantRows(t, "user prefix is not a match", mustQueryUsage(t, s, UsageFilter{User: "ali", From: "2030-01-01", To: "2030-01-03"}))
		wantRows(t, "unknown model", mustQueryUsage(t, s, UsageFilter{Model: "gpt", From: "2030-01-01", To: "2030-01-03"}))
		wantRows(t, "other days", mustQueryUsage(t, s, UsageFilter{From: "2030-01-04", To: "2030-01-31"}))
	})

	t.Run("UsageAccumulates", func(t *testing.T) {
		s := newStore(t)
		mustAddUsage(t, s, ub(1, row("carol", "m", "2030-02-01", 1)))
		mustAddUsage(t, s, ub(2, row("carol", "m", "2030-02-01", 2), row("carol", "m", "2030-02-01", 3)))
		mustAddUsage(t, s, ub(3, UsageRow{
			UsageKey:    UsageKey{User: "carol", UserID: idOf("carol"), Model: "m", Date: "2030-02-01"},
			UsageCounts: UsageCounts{Requests: 1, EstimatedRequests: 1}, // no tokens known
		}))
		want := row("carol", "m", "2030-02-01", 6)
		want.Requests++
		want.EstimatedRequests++
		wantRows(t, "after three batches", mustQueryUsage(t, s, UsageFilter{From: "2030-02-01", To: "2030-02-01"}), want)
	})

	t.Run("UsageCost", func(t *testing.T) {
		s := newStore(t)
		key := UsageKey{User: "cora", UserID: idOf("cora"), Model: "gpt-4o-mini", Date: "2030-02-03"}
		priced := UsageRow{UsageKey: key, UsageCounts: UsageCounts{Requests: 1, PromptTokens: 1000, TotalTokens: 1000, CostNanoUSD: 150000}}
		mustAddUsage(t, s, ub(1, priced, priced))
		want := priced
		want.Requests, want.PromptTokens, want.TotalTokens, want.CostNanoUSD = 2, 2000, 2000, 300000
		f := UsageFilter{User: "cora", From: "2030-02-03", To: "2030-02-03"}
		wantRows(t, "the cost adds up", mustQueryUsage(t, s, f), want)

		// A batch may carry a cost alone (a request settled later), and a
		// cost past MaxUsageCount stays there, as every counter does.
		mustAddUsage(t, s, ub(2, UsageRow{UsageKey: key, UsageCounts: UsageCounts{CostNanoUSD: MaxUsageCount - 1}}))
		want.CostNanoUSD = MaxUsageCount
		wantRows(t, "the cost saturates", mustQueryUsage(t, s, f), want)

		unpriced := UsageRow{UsageKey: UsageKey{User: "cora", UserID: idOf("cora"), Model: "local", Date: "2030-02-04"}, UsageCounts: UsageCounts{Requests: 1}}
		mustAddUsage(t, s, ub(3, unpriced))
		wantRows(t, "an unpriced model costs 0", mustQueryUsage(t, s, UsageFilter{User: "cora", Model: "local", From: "2030-02-04", To: "2030-02-04"}), unpriced)
	})

	t.Run("UsageIdempotentRetry", func(t *testing.T) {
		s := newStore(t)
		batch := []UsageRow{row("dave", "m1", "2030-03-01", 1), row("dave", "m2", "2030-03-02", 2)}
		mustAddUsage(t, s, ub(4, batch...))
		mustAddUsage(t, s, ub(4, batch...)) // a retry after an ambiguous failure
		f := UsageFilter{User: "dave", From: "2030-03-01", To: "2030-03-02"}
		wantRows(t, "after a retry", mustQueryUsage(t, s, f), batch...)
		mustAddUsage(t, s, ub(5, batch...))
		wantRows(t, "after another batch", mustQueryUsage(t, s, f),
			row("dave", "m1", "2030-03-01", 2), row("dave", "m2", "2030-03-02", 4))
	})

	t.Run("UsageEmptyAndZero", func(t *testing.T) {
		s := newStore(t)
		if err := s.AddUsage(ctx, ub(8)); err != nil {
			t.Errorf("AddUsage without rows: %v", err)
		}
		if err := s.AddUsage(ctx, ub(9, []UsageRow{}...)); err != nil {
			t.Errorf("AddUsage with empty rows: %v", err)
		}
		// All-zero rows are skipped: they would only add empty rows.
		mustAddUsage(t, s, ub(6, UsageRow{UsageKey: UsageKey{User: "erin", UserID: idOf("erin"), Model: "m", Date: "2030-04-01"}}))
		wantRows(t, "after empty batches", mustQueryUsage(t, s, UsageFilter{From: "2030-04-01", To: "2030-04-01"}))
	})

	t.Run("UsageModelNames", func(t *testing.T) {
		s := newStore(t)
		models := []string{
			"", // a request that named no model
			"a|b",
			"|lead|and|trail|",
			"ft:gpt-4o-mini:org:custom:id",
			"meta-llama/Llama-3.3-70B-Instruct",
			"accounts/fireworks/models/x:y|z",
			"with space and \x00 NUL",
			"ünïcode/模型",
		}
		var rows []UsageRow
		for i, m := range models {
			rows = append(rows, row("frank.o@ex-1_a", m, "2030-05-01", int64(i+1)))
		}
		mustAddUsage(t, s, ub(7, rows...))
		got := mustQueryUsage(t, s, UsageFilter{From: "2030-05-01", To: "2030-05-01"})
		want := make(map[string]UsageRow)
		for _, r := range rows {
			want[r.Model] = r
		}
		if len(got) != len(rows) {
			t.Fatalf("got %d rows, want %d: %+v", len(got), len(rows), got)
		}
		for i, r := range got {
			if want[r.Model] != r {
				t.Errorf("row %+v, want %+v", r, want[r.Model])
			}
			if i > 0 && got[i-1].Model >= r.Model {
				t.Errorf("rows not sorted by model: %q before %q", got[i-1].Model, r.Model)
			}
		}
		for _, m := range models[1:] { // an empty Model filter selects all
			wantRows(t, fmt.Sprintf("model %q", m),
				mustQueryUsage(t, s, UsageFilter{User: "frank.o@ex-1_a", Model: m, From: "2030-05-01", To: "2030-05-01"}), want[m])
		}
	})

	t.Run("UsageConcurrent", func(t *testing.T) {
		s := newStore(t)
		const workers, batches = 8, 25
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for b := range batches {
					err := s.AddUsage(ctx, UsageBatch{Writer: fmt.Sprintf("w%d", w), Seq: uint64(b + 1), Rows: []UsageRow{
						row("grace", "m", "2030-06-01", 1),
						row("heidi", "m", "2030-06-01", 2),
						row(fmt.Sprintf("w%d", w), "m", "2030-06-02", 1),
					}})
					if err != nil {
						t.Errorf("AddUsage: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		want := []UsageRow{
			row("grace", "m", "2030-06-01", workers*batches),
			row("heidi", "m", "2030-06-01", 2*workers*batches),
		}
		for w := range workers {
			want = append(want, row(fmt.Sprintf("w%d", w), "m", "2030-06-02", batches))
		}
		wantRows(t, "after concurrent batches", mustQueryUsage(t, s, UsageFilter{From: "2030-06-01", To: "2030-06-02"}), want...)
	})

	t.Run("UsageOfANameReused", func(t *testing.T) {
		s := newStore(t)
		id := func() string {
			u, err := s.GetUser(ctx, "olga")
			if err != nil {
				t.Fatal(err)
			}
			if !IsUserID(u.ID) {
				t.Fatalf("user ID %q is not one NewUserID makes", u.ID)
			}
			return u.ID
		}
		mustCreate(t, s, "olga")
		first := row("olga", "m", "2030-08-01", 1)
		first.UserID = id()
		mustAddUsage(t, s, ub(1, first))
		if err := s.DeleteUser(ctx, "olga"); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, s, "olga")
		second := row("olga", "m", "2030-08-01", 2)
		second.UserID = id()
		if second.UserID == first.UserID {
			t.Fatal("a user created again under the same name got the same ID")
		}
		mustAddUsage(t, s, ub(2, second))
		f := UsageFilter{User: "olga", UserID: second.UserID, From: "2030-08-01", To: "2030-08-01"}
		wantRows(t, "the new user's own usage", mustQueryUsage(t, s, f), second)
		f.UserID = ""
		want := []UsageRow{first, second}
		slices.SortFunc(want, compareUsageRows)
		wantRows(t, "every user of the name", mustQueryUsage(t, s, f), want...)
		f.User = ""
		wantRows(t, "every user", mustQueryUsage(t, s, f), want...)
	})

	t.Run("UsageInvalid", func(t *testing.T) {
		s := newStore(t)
		good := row("ivan", "m", "2030-07-01", 1)
		for name, rows := range map[string][]UsageRow{
			"bad date":    {good, row("ivan", "m", "2030-7-1", 1)},
			"no date":     {good, row("ivan", "m", "", 1)},
			"no user":     {good, row("", "m", "2030-07-01", 1)},
			"'|' in user": {good, row("iv|an", "m", "2030-07-01", 1)},
			"'{' in user": {good, row("iv{an", "m", "2030-07-01", 1)},
			"no user ID":  {good, {UsageKey: UsageKey{User: "ivan", Model: "m", Date: "2030-07-01"}, UsageCounts: UsageCounts{Requests: 1}}},
		} {
			err := s.AddUsage(ctx, ub(1, rows...))
			if err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("AddUsage with %s: %v, want an invalid-usage error", name, err)
			}
		}
		for name, b := range map[string]UsageBatch{
			"no writer":  {Seq: 1, Rows: []UsageRow{good}},
			"bad writer": {Writer: "a:b", Seq: 1, Rows: []UsageRow{good}},
			"sequence 0": {Writer: "w", Rows: []UsageRow{good}},
		} {
			if err := s.AddUsage(ctx, b); err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("AddUsage with %s: %v, want an invalid-usage error", name, err)
			}
		}
		// All or nothing: the good rows of refused batches are not stored.
		wantRows(t, "after refused batches", mustQueryUsage(t, s, UsageFilter{From: "2030-07-01", To: "2030-07-01"}))

		for name, f := range map[string]UsageFilter{
			"no from":        {To: "2030-01-01"},
			"no to":          {From: "2030-01-01"},
			"bad from":       {From: "2030/01/01", To: "2030-01-02"},
			"bad to":         {From: "2030-01-01", To: "2030-02-30"},
			"to before from": {From: "2030-01-02", To: "2030-01-01"},
			"367 days":       {From: "2030-01-01", To: "2031-01-02"},
			"ten millennia":  {From: "0001-01-01", To: "9999-12-31"},
		} {
			if _, err := s.QueryUsage(ctx, f); err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("QueryUsage with %s: %v, want an invalid-usage error", name, err)
			}
		}
		// A leap year is the longest range.
		mustQueryUsage(t, s, UsageFilter{From: "2028-01-01", To: "2028-12-31"})
		mustQueryUsage(t, s, UsageFilter{From: "2030-01-01", To: "2031-01-01"})
	})
}
