package keystore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// row builds a usage row; n sets every counter to a multiple of it so that
// a counter mixed up with another shows.
func row(user, model, date string, n int64) UsageRow {
	return UsageRow{
		UsageKey: UsageKey{User: user, Model: model, Date: date},
		UsageCounts: UsageCounts{
			Requests: n, PromptTokens: 10 * n, CompletionTokens: 20 * n, TotalTokens: 30 * n,
			CachedTokens: 4 * n, ReasoningTokens: 5 * n, EstimatedRequests: 6 * n,
		},
	}
}

func mustAddUsage(t *testing.T, s Store, batchID string, rows ...UsageRow) {
	t.Helper()
	if err := s.AddUsage(context.Background(), batchID, rows); err != nil {
		t.Fatalf("AddUsage(%s): %v", batchID, err)
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
		mustAddUsage(t, s, "b1",
			row("bob", "gpt-4o", "2030-01-02", 1),
			row("alice", "gpt-4o-mini", "2030-01-02", 2),
			row("alice", "gpt-4o", "2030-01-01", 3),
			row("bob", "gpt-4o", "2030-01-03", 4),
			row("alice", "gpt-4o", "2030-01-02", 5),
			row("alice2", "gpt-4o", "2030-01-02", 6), // sorts after alice
		)
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
		mustAddUsage(t, s, "b1", row("carol", "m", "2030-02-01", 1))
		mustAddUsage(t, s, "b2", row("carol", "m", "2030-02-01", 2), row("carol", "m", "2030-02-01", 3))
		mustAddUsage(t, s, "b3", UsageRow{
			UsageKey:    UsageKey{User: "carol", Model: "m", Date: "2030-02-01"},
			UsageCounts: UsageCounts{Requests: 1, EstimatedRequests: 1}, // no tokens known
		})
		want := row("carol", "m", "2030-02-01", 6)
		want.Requests++
		want.EstimatedRequests++
		wantRows(t, "after three batches", mustQueryUsage(t, s, UsageFilter{From: "2030-02-01", To: "2030-02-01"}), want)
	})

	t.Run("UsageIdempotentRetry", func(t *testing.T) {
		s := newStore(t)
		batch := []UsageRow{row("dave", "m1", "2030-03-01", 1), row("dave", "m2", "2030-03-02", 2)}
		mustAddUsage(t, s, "retry-me", batch...)
		mustAddUsage(t, s, "retry-me", batch...) // a retry after an ambiguous failure
		f := UsageFilter{User: "dave", From: "2030-03-01", To: "2030-03-02"}
		wantRows(t, "after a retry", mustQueryUsage(t, s, f), batch...)
		mustAddUsage(t, s, "another", batch...)
		wantRows(t, "after another batch", mustQueryUsage(t, s, f),
			row("dave", "m1", "2030-03-01", 2), row("dave", "m2", "2030-03-02", 4))
	})

	t.Run("UsageEmptyAndZero", func(t *testing.T) {
		s := newStore(t)
		if err := s.AddUsage(ctx, "empty", nil); err != nil {
			t.Errorf("AddUsage without rows: %v", err)
		}
		if err := s.AddUsage(ctx, "empty2", []UsageRow{}); err != nil {
			t.Errorf("AddUsage with empty rows: %v", err)
		}
		// All-zero rows are skipped: they would only add empty rows.
		mustAddUsage(t, s, "zero", UsageRow{UsageKey: UsageKey{User: "erin", Model: "m", Date: "2030-04-01"}})
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
		mustAddUsage(t, s, "names", rows...)
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
					err := s.AddUsage(ctx, fmt.Sprintf("w%d-b%d", w, b), []UsageRow{
						row("grace", "m", "2030-06-01", 1),
						row("heidi", "m", "2030-06-01", 2),
						row(fmt.Sprintf("w%d", w), "m", "2030-06-02", 1),
					})
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

	t.Run("UsageInvalid", func(t *testing.T) {
		s := newStore(t)
		good := row("ivan", "m", "2030-07-01", 1)
		for name, rows := range map[string][]UsageRow{
			"bad date":    {good, row("ivan", "m", "2030-7-1", 1)},
			"no date":     {good, row("ivan", "m", "", 1)},
			"no user":     {good, row("", "m", "2030-07-01", 1)},
			"'|' in user": {good, row("iv|an", "m", "2030-07-01", 1)},
		} {
			err := s.AddUsage(ctx, "bad-"+name, rows)
			if err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("AddUsage with %s: %v, want an invalid-usage error", name, err)
			}
		}
		if err := s.AddUsage(ctx, "", []UsageRow{good}); err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("AddUsage without batch ID: %v, want an invalid-usage error", err)
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
