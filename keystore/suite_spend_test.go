package keystore

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// spendT0 is the spend suite's clock: a Wednesday noon, years ahead, as
// the stores drop the records of periods that ended by the wall clock.
// Every time in the suite is spendT0 plus an offset; the ledger takes time
// only from the calls, so no test sleeps.
var spendT0 = time.Date(2035, 3, 14, 12, 0, 0, 0, time.UTC)

// spendAt returns spendT0 plus d.
func spendAt(d time.Duration) time.Time { return spendT0.Add(d) }

// msec is n milliseconds, for times and waits written down in them.
func msec(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// secs is n seconds.
func secs(n int64) time.Duration { return time.Duration(n) * time.Second }

// spender is one user ID's ledger in a store, with calls that fail the
// test on a store error.
type spender struct {
	t        *testing.T
	s        Store
	name, id string
}

// newSpender returns a spender for a user ID no other spender of the test
// has.
func newSpender(t *testing.T, s Store, name string) spender {
	return spender{t: t, s: s, name: name, id: NewUserID()}
}

// admit runs an admission of sp's user: a filled in with the user and
// time.
func (sp spender) admit(now time.Time, a Admission) Verdict {
	sp.t.Helper()
	a.User, a.UserID, a.Now = sp.name, sp.id, now
	v, err := sp.s.Admit(context.Background(), a)
	if err != nil {
		sp.t.Fatalf("Admit at %v: %v", now.Sub(spendT0), err)
	}
	return v
}

// settle settles an admission of sp's user.
func (sp spender) settle(st Settlement) {
	sp.t.Helper()
	st.User, st.UserID = sp.name, sp.id
	if err := sp.s.Settle(context.Background(), st); err != nil {
		sp.t.Fatalf("Settle: %v", err)
	}
}

// renew renews a lease of sp's user.
func (sp spender) renew(lease string, now time.Time) {
	sp.t.Helper()
	if err := sp.s.RenewLease(context.Background(), sp.name, sp.id, lease, now); err != nil {
		sp.t.Fatalf("RenewLease: %v", err)
	}
}

// spending returns sp's spending at now in period p.
func (sp spender) spending(now time.Time, p Period) Spending {
	sp.t.Helper()
	got, err := sp.s.Spending(context.Background(), SpendQuery{User: sp.name, UserID: sp.id, Period: p, Now: now})
	if err != nil {
		sp.t.Fatalf("Spending: %v", err)
	}
	return got
}

// wantVerdict compares verdicts whole.
func wantVerdict(t *testing.T, what string, got, want Verdict) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// wantSpending compares spendings whole.
func wantSpending(t *testing.T, what string, got, want Spending) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// admitted is the verdict of an admitted request.
func admitted(out int64, reserved Amounts, w Window, spent Amounts) Verdict {
	return Verdict{Output: out, Reserved: reserved, Window: w, Spent: spent}
}

// denied is the verdict of a refused request.
func denied(d Denial, after time.Duration, w Window, spent Amounts) Verdict {
	return Verdict{Denied: d, RetryAfter: after, Output: -1, Window: w, Spent: spent}
}

// reqs is n requests, nothing else.
func reqs(n int64) Amounts { return Amounts{Requests: n} }

// runSpendSuite checks the spend ledger part of the Store contract
// (spend.go), the rules of spend_ledger.go, with injected times.
func runSpendSuite(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("SpendRPM", func(t *testing.T) {
		sp := newSpender(t, newStore(t), "rpm")
		a := Admission{Allowance: Allowance{RPM: 3}, MaxOutput: -1}
		for i, off := range []int64{10, 20, 30} {
			wantVerdict(t, fmt.Sprintf("request %d", i+1), sp.admit(spendAt(secs(off)), a),
				admitted(-1, reqs(1), Window{Requests: int64(i + 1), RequestsReset: time.Minute}, reqs(int64(i+1))))
		}
		// The fourth waits for the second 10 to leave the window, at 70.
		wantVerdict(t, "request 4 at 40s", sp.admit(spendAt(secs(40)), a),
			denied(DeniedRequests, secs(30), Window{Requests: 3, RequestsReset: secs(50)}, reqs(3)))
		wantVerdict(t, "request 4 at 69.999s", sp.admit(spendAt(msec(69_999)), a),
			denied(DeniedRequests, time.Second, Window{Requests: 3, RequestsReset: msec(20_001)}, reqs(3)))
		wantVerdict(t, "request 4 at 70s", sp.admit(spendAt(secs(70)), a),
			admitted(-1, reqs(1), Window{Requests: 3, RequestsReset: time.Minute}, reqs(4)))
		wantSpending(t, "spending at 75s", sp.spending(spendAt(secs(75)), ""),
			Spending{Window: Window{Requests: 3, RequestsReset: secs(55)}, Spent: reqs(4)})
	})

	t.Run("SpendSliding", func(t *testing.T) {
		// A fixed minute would let 5 through at 59s and 5 more at 61s.
		sp := newSpender(t, newStore(t), "sliding")
		a := Admission{Allowance: Allowance{RPM: 5}, MaxOutput: -1}
		for i := range 5 {
			if v := sp.admit(spendAt(secs(59)), a); v.Denied != "" {
				t.Fatalf("request %d at 59s: %+v", i+1, v)
			}
		}
		wantVerdict(t, "at 61s", sp.admit(spendAt(secs(61)), a),
			denied(DeniedRequests, secs(58), Window{Requests: 5, RequestsReset: secs(58)}, reqs(5)))
		wantVerdict(t, "at 118.9s", sp.admit(spendAt(msec(118_900)), a),
			denied(DeniedRequests, time.Second, Window{Requests: 5, RequestsReset: msec(100)}, reqs(5)))
		for i := range 5 {
			wantVerdict(t, fmt.Sprintf("request %d at 119.5s", i+1), sp.admit(spendAt(msec(119_500)), a),
				admitted(-1, reqs(1), Window{Requests: int64(i + 1), RequestsReset: msec(59_500)}, reqs(int64(6+i))))
		}
		wantVerdict(t, "request 6 at 119.5s", sp.admit(spendAt(msec(119_500)), a),
			denied(DeniedRequests, msec(59_500), Window{Requests: 5, RequestsReset: msec(59_500)}, reqs(10)))
	})

	t.Run("SpendTPM", func(t *testing.T) {
		sp := newSpender(t, newStore(t), "tpm")
		tpm := Allowance{TPM: 1000}
		a := func(prompt, minOut, maxOut int64) Admission {
			return Admission{Allowance: tpm, PromptTokens: prompt, MinOutput: minOut, MaxOutput: maxOut}
		}
		// Without a cap, the output takes what the window leaves.
		wantVerdict(t, "first", sp.admit(spendAt(secs(1)), a(300, 1, -1)),
			admitted(700, Amounts{1, 1000, 0}, Window{1, 1000, secs(60), secs(60)}, Amounts{1, 1000, 0}))
		wantVerdict(t, "window full", sp.admit(spendAt(secs(2)), a(10, 1, -1)),
			denied(DeniedTokens, secs(59), Window{1, 1000, secs(59), secs(59)}, Amounts{1, 1000, 0}))
		sp.settle(Settlement{Admitted: spendAt(secs(1)), Reserved: Amounts{1, 1000, 0}, Used: Amounts{1, 400, 0}})
		// The client's cap bounds the output below the room (300).
		wantVerdict(t, "capped", sp.admit(spendAt(secs(2)), a(300, 1, 200)),
			admitted(200, Amounts{1, 500, 0}, Window{2, 900, secs(60), secs(60)}, Amounts{2, 900, 0}))
		// 50 tokens of room: too few for 60, enough for 50, and the
		// wait is for the second 1 (400) to leave.
		wantVerdict(t, "min output above the room", sp.admit(spendAt(secs(3)), a(50, 60, -1)),
			denied(DeniedTokens, secs(58), Window{2, 900, secs(59), secs(59)}, Amounts{2, 900, 0}))
		wantVerdict(t, "min output at the room", sp.admit(spendAt(secs(3)), a(50, 50, -1)),
			admitted(50, Amounts{1, 100, 0}, Window{3, 1000, secs(60), secs(60)}, Amounts{3, 1000, 0}))
		// A request larger than the whole limit never fits: no wait.
		wantVerdict(t, "too large", sp.admit(spendAt(secs(3)), a(1000, 1, -1)),
			denied(DeniedTooLarge, 0, Window{3, 1000, secs(60), secs(60)}, Amounts{3, 1000, 0}))
		wantVerdict(t, "too large at any time", sp.admit(spendAt(secs(200)), a(999, 2, 5)),
			denied(DeniedTooLarge, 0, Window{}, Amounts{3, 1000, 0}))
		// Exactly the limit fits an empty window.
		wantVerdict(t, "the whole limit", sp.admit(spendAt(secs(200)), a(1000, 0, -1)),
			admitted(0, Amounts{1, 1000, 0}, Window{1, 1000, secs(60), secs(60)}, Amounts{4, 2000, 0}))
		// Needing 1000 tokens means waiting for the window to empty.
		wantVerdict(t, "full again", sp.admit(spendAt(secs(201)), a(999, 1, -1)),
			denied(DeniedTokens, secs(59), Window{1, 1000, secs(59), secs(59)}, Amounts{4, 2000, 0}))
	})

	t.Run("SpendTPMWait", func(t *testing.T) {
		// The wait drops the oldest seconds until the request fits.
		sp := newSpender(t, newStore(t), "tpmwait")
		a := func(prompt, minOut int64) Admission {
			return Admission{Allowance: Allowance{TPM: 1000}, PromptTokens: prompt, MinOutput: minOut, MaxOutput: 200}
		}
		for _, off := range []int64{1, 2, 3} {
			if v := sp.admit(spendAt(secs(off)), a(100, 1)); v.Denied != "" || v.Reserved.Tokens != 300 {
				t.Fatalf("at %ds: %+v", off, v)
			}
		}
		// 900 in the window, 300 a second: 450 need the seconds 1 and
		// 2 gone, 150 the second 1 only.
		w := Window{3, 900, secs(53), secs(53)}
		wantVerdict(t, "needs two seconds", sp.admit(spendAt(secs(10)), a(449, 1)),
			denied(DeniedTokens, secs(52), w, Amounts{3, 900, 0}))
		wantVerdict(t, "needs one second", sp.admit(spendAt(secs(10)), a(149, 1)),
			denied(DeniedTokens, secs(51), w, Amounts{3, 900, 0}))
		// With no output needed, the 100 left do.
		wantVerdict(t, "fits", sp.admit(spendAt(secs(10)), a(100, 0)),
			admitted(0, Amounts{1, 100, 0}, Window{4, 1000, secs(60), secs(60)}, Amounts{4, 1000, 0}))
	})

	t.Run("SpendSettleMany", func(t *testing.T) {
		// Several settlements in one call, of users that may live on
		// different shards, each applied as if alone; leases let go.
		s := newStore(t)
		a := Admission{Allowance: Allowance{MaxParallel: 1, BudgetTokens: 1000, Period: PeriodDay},
			PromptTokens: 10, MinOutput: 1, MaxOutput: 90, Lease: "L"}
		var batch []Settlement
		var users []spender
		for i := range 5 {
			sp := newSpender(t, s, fmt.Sprint("many", i))
			v := sp.admit(spendAt(0), a)
			if v.Denied != "" {
				t.Fatalf("user %d refused: %+v", i, v)
			}
			users = append(users, sp)
			batch = append(batch, Settlement{User: sp.name, UserID: sp.id, Admitted: spendAt(0), Period: PeriodDay,
				Lease: "L", Reserved: v.Reserved, Used: Amounts{1, int64(20 + i), 0}})
		}
		if err := s.Settle(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
		for i, sp := range users {
			wantSpending(t, fmt.Sprint("user ", i), sp.spending(spendAt(0), PeriodDay),
				Spending{Window: Window{1, int64(20 + i), secs(60), secs(60)}, Spent: Amounts{1, int64(20 + i), 0}})
		}
	})

	t.Run("SpendSettle", func(t *testing.T) {
		sp := newSpender(t, newStore(t), "settle")
		a := Admission{Allowance: Allowance{TPM: 5000, BudgetTokens: 10000, Period: PeriodDay}, PromptTokens: 100, MinOutput: 1, MaxOutput: 400}
		res := Amounts{1, 500, 0}
		wantVerdict(t, "first", sp.admit(spendAt(0), a), admitted(400, res, Window{1, 500, secs(60), secs(60)}, res))

		// Used less: the window and the budget drop to it.
		sp.settle(Settlement{Admitted: spendAt(0), Period: PeriodDay, Reserved: res, Used: Amounts{1, 150, 0}})
		wantSpending(t, "after settling lower", sp.spending(spendAt(0), PeriodDay),
			Spending{Window: Window{1, 150, secs(60), secs(60)}, Spent: Amounts{1, 150, 0}})

		// Used more (the reservation was an estimate): both rise.
		sp.admit(spendAt(secs(1)), a)
		sp.settle(Settlement{Admitted: spendAt(secs(1)), Period: PeriodDay, Reserved: res, Used: Amounts{1, 800, 0}})
		wantSpending(t, "after settling higher", sp.spending(spendAt(secs(1)), PeriodDay),
			Spending{Window: Window{2, 950, secs(60), secs(60)}, Spent: Amounts{2, 950, 0}})

		// Nothing goes below 0: neither the second nor the period.
		sp.admit(spendAt(secs(2)), a)
		sp.settle(Settlement{Admitted: spendAt(secs(2)), Period: PeriodDay, Reserved: Amounts{5, 9000, 7}, Used: Amounts{}})
		wantSpending(t, "after settling below 0", sp.spending(spendAt(secs(2)), PeriodDay),
			Spending{Window: Window{3, 950, secs(60), secs(60)}, Spent: Amounts{}})

		// A second that left the window stays gone; the budget still
		// takes the difference.
		sp.admit(spendAt(secs(3)), a)
		wantSpending(t, "window gone", sp.spending(spendAt(secs(64)), PeriodDay),
			Spending{Spent: Amounts{1, 500, 0}})
		sp.settle(Settlement{Admitted: spendAt(secs(3)), Period: PeriodDay, Reserved: res, Used: Amounts{1, 100, 0}})
		wantSpending(t, "settled after the window", sp.spending(spendAt(secs(64)), PeriodDay),
			Spending{Spent: Amounts{1, 100, 0}})

		// A settlement goes to its admission's period, whenever it comes.
		late := Admission{Allowance: Allowance{BudgetTokens: 10000, Period: PeriodDay}, PromptTokens: 10, MaxOutput: 90}
		midnight := time.Date(2035, 3, 15, 0, 0, 0, 0, time.UTC)
		before := midnight.Add(-time.Second)
		sp.admit(before, late)
		sp.admit(midnight, late)
		sp.settle(Settlement{Admitted: before, Period: PeriodDay, Reserved: Amounts{1, 100, 0}, Used: Amounts{1, 30, 0}})
		if got := sp.spending(before, PeriodDay).Spent; got != (Amounts{2, 130, 0}) {
			t.Errorf("the day settled: %+v, want 2 requests, 130 tokens", got)
		}
		if got := sp.spending(midnight, PeriodDay).Spent; got != (Amounts{1, 100, 0}) {
			t.Errorf("the next day: %+v, want its reservation only", got)
		}
	})

	t.Run("SpendBudgetRequests", func(t *testing.T) {
		sp := newSpender(t, newStore(t), "breq")
		a := Admission{Allowance: Allowance{BudgetRequests: 2, Period: PeriodDay}, MaxOutput: -1}
		for i := range 2 {
			wantVerdict(t, fmt.Sprintf("request %d", i+1), sp.admit(spendAt(0), a),
				admitted(-1, reqs(1), Window{Requests: int64(i + 1), RequestsReset: time.Minute}, reqs(int64(i+1))))
		}
		// The period ends at midnight, 12 hours after spendT0.
		wantVerdict(t, "request 3", sp.admit(spendAt(time.Second), a),
			denied(DeniedBudgetRequests, 12*time.Hour-time.Second, Window{Requests: 2, RequestsReset: secs(59)}, reqs(2)))
		if got := sp.spending(spendAt(0), PeriodDay).Spent; got != reqs(2) {
			t.Errorf("day spent %+v, want 2 requests", got)
		}
		if got := sp.spending(spendAt(0), PeriodMonth).Spent; got != (Amounts{}) {
			t.Errorf("month spent %+v: periods of different lengths are separate budgets", got)
		}
	})

	t.Run("SpendBudgetTokens", func(t *testing.T) {
		sp := newSpender(t, newStore(t), "btok")
		a := func(prompt int64) Admission {
			return Admission{Allowance: Allowance{BudgetTokens: 1000, Period: PeriodWeek}, PromptTokens: prompt, MinOutput: 1, MaxOutput: -1}
		}
		// The week of Wednesday 2035-03-14 ends on Monday 2035-03-19.
		weekLeft := time.Date(2035, 3, 19, 0, 0, 0, 0, time.UTC).Sub(spendT0)
		wantVerdict(t, "first", sp.admit(spendAt(0), a(300)),
			admitted(700, Amounts{1, 1000, 0}, Window{1, 1000, secs(60), secs(60)}, Amounts{1, 1000, 0}))
		wantVerdict(t, "spent", sp.admit(spendAt(secs(1)), a(1)),
			denied(DeniedBudgetTokens, weekLeft-time.Second, Window{1, 1000, secs(59), secs(59)}, Amounts{1, 1000, 0}))
		sp.settle(Settlement{Admitted: spendAt(0), Period: PeriodWeek, Reserved: Amounts{1, 1000, 0}, Used: Amounts{1, 400, 0}})
		wantVerdict(t, "after settling", sp.admit(spendAt(secs(1)), a(300)),
			admitted(300, Amounts{1, 600, 0}, Window{2, 1000, secs(60), secs(60)}, Amounts{2, 1000, 0}))
	})

	t.Run("SpendBudgetUSD", func(t *testing.T) {
		sp := newSpender(t, newStore(t), "busd")
		a := func(prompt, minOut int64) Admission {
			return Admission{
				Allowance:    Allowance{BudgetNanoUSD: 1_000_000}, // a tenth of a cent a month
				PromptTokens: prompt, MinOutput: minOut, MaxOutput: -1,
				InputNanoUSD: 150, OutputNanoUSD: 600,
			}
		}
		monthLeft := time.Date(2035, 4, 1, 0, 0, 0, 0, time.UTC).Sub(spendT0)
		// 1000 prompt tokens cost 150000; 850000 buy 1416 output tokens
		// (849600).
		wantVerdict(t, "first", sp.admit(spendAt(0), a(1000, 1)),
			admitted(1416, Amounts{1, 2416, 999_600}, Window{1, 2416, secs(60), secs(60)}, Amounts{1, 2416, 999_600}))
		// 400 left: a prompt token (150) leaves 250, not one output token.
		wantVerdict(t, "no output left", sp.admit(spendAt(0), a(1, 1)),
			denied(DeniedBudgetUSD, monthLeft, Window{1, 2416, secs(60), secs(60)}, Amounts{1, 2416, 999_600}))
		// Without output (an embedding) it fits.
		wantVerdict(t, "no output needed", sp.admit(spendAt(0), a(1, 0)),
			admitted(0, Amounts{1, 1, 150}, Window{2, 2417, secs(60), secs(60)}, Amounts{2, 2417, 999_750}))
		// 250 left: not 2 prompt tokens, whatever the output.
		wantVerdict(t, "prompt too dear", sp.admit(spendAt(0), a(2, 0)),
			denied(DeniedBudgetUSD, monthLeft, Window{2, 2417, secs(60), secs(60)}, Amounts{2, 2417, 999_750}))
		// The settlement returns what the answer did not use.
		// It used 100 output tokens: 210000 instead of 999600.
		sp.settle(Settlement{Admitted: spendAt(0), Reserved: Amounts{1, 2416, 999_600}, Used: Amounts{1, 1100, 150_000 + 100*600}})
		wantSpending(t, "after settling", sp.spending(spendAt(0), ""),
			Spending{Window: Window{2, 1101, secs(60), secs(60)}, Spent: Amounts{2, 1101, 210_150}})
		// 789850 left: 639850 after the prompt buy 1066 output tokens.
		wantVerdict(t, "after settling", sp.admit(spendAt(0), a(1000, 1)),
			admitted(1066, Amounts{1, 2066, 789_600}, Window{3, 3167, secs(60), secs(60)}, Amounts{3, 3167, 999_750}))
	})

	t.Run("SpendBudgetUSDFractions", func(t *testing.T) {
		// Prices below a nano-dollar a token: costs round up.
		sp := newSpender(t, newStore(t), "busdfrac")
		a := Admission{
			Allowance:    Allowance{BudgetNanoUSD: 100, Period: PeriodTotal},
			PromptTokens: 7, MinOutput: 1, MaxOutput: 40,
			InputNanoUSD: 0.15, OutputNanoUSD: 0.6,
		}
		// 7 * 0.15 = 1.05 -> 2; 40 * 0.6 = 24; together ceil(25.05) = 26.
		wantVerdict(t, "first", sp.admit(spendAt(0), a),
			admitted(40, Amounts{1, 47, 26}, Window{1, 47, secs(60), secs(60)}, Amounts{1, 47, 26}))
		// 74 left - 2 = 72: 120 output tokens, capped at 40.
		a.MaxOutput = -1
		wantVerdict(t, "uncapped", sp.admit(spendAt(0), a),
			admitted(120, Amounts{1, 127, 74}, Window{2, 174, secs(60), secs(60)}, Amounts{2, 174, 100}))
		wantVerdict(t, "spent", sp.admit(spendAt(0), a),
			denied(DeniedBudgetUSD, 0, Window{2, 174, secs(60), secs(60)}, Amounts{2, 174, 100}))
	})

	t.Run("SpendBudgetUSDFreeOutput", func(t *testing.T) {
		// Output costs nothing, so nothing bounds it; the prompt's price
		// is still reserved, or requests at once would each spend what
		// only one was checked against.
		sp := newSpender(t, newStore(t), "busdfree")
		a := Admission{
			Allowance:    Allowance{BudgetNanoUSD: 1000},
			PromptTokens: 5, MinOutput: 1, MaxOutput: -1, InputNanoUSD: 100,
		}
		wantVerdict(t, "first", sp.admit(spendAt(0), a),
			admitted(-1, Amounts{1, 5, 500}, Window{1, 5, secs(60), secs(60)}, Amounts{1, 5, 500}))
		wantVerdict(t, "second", sp.admit(spendAt(0), a),
			admitted(-1, Amounts{1, 5, 500}, Window{2, 10, secs(60), secs(60)}, Amounts{2, 10, 1000}))
		wantVerdict(t, "third", sp.admit(spendAt(0), a),
			denied(DeniedBudgetUSD, time.Date(2035, 4, 1, 0, 0, 0, 0, time.UTC).Sub(spendT0), Window{2, 10, secs(60), secs(60)}, Amounts{2, 10, 1000}))
	})

	t.Run("SpendNoTokenLimit", func(t *testing.T) {
		// With no token limit, nothing but the request is held back, and
		// the client's cap is no business of the ledger's.
		sp := newSpender(t, newStore(t), "notok")
		a := Admission{Allowance: Allowance{RPM: 10, BudgetRequests: 10}, PromptTokens: 100, MinOutput: 1, MaxOutput: 50, InputNanoUSD: 1, OutputNanoUSD: 2}
		wantVerdict(t, "capped client", sp.admit(spendAt(0), a),
			admitted(-1, reqs(1), Window{Requests: 1, RequestsReset: secs(60)}, reqs(1)))
		sp.settle(Settlement{Admitted: spendAt(0), Reserved: reqs(1), Used: Amounts{1, 120, 200}})
		wantSpending(t, "after settling", sp.spending(spendAt(0), ""),
			Spending{Window: Window{1, 120, secs(60), secs(60)}, Spent: Amounts{1, 120, 200}})
	})

	t.Run("SpendExtremes", func(t *testing.T) {
		// Limits and prices at their bounds: the ledgers agree, Lua's
		// doubles included, and nothing overflows.
		sp := newSpender(t, newStore(t), "extremes")
		huge := Admission{Allowance: Allowance{TPM: MaxLimit}, MinOutput: 1, MaxOutput: -1, InputNanoUSD: 1e5, OutputNanoUSD: 1e5}
		wantVerdict(t, "largest tpm, dearest tokens", sp.admit(spendAt(0), huge),
			admitted(MaxLimit, Amounts{1, MaxLimit, maxReservedNanoUSD}, Window{1, MaxLimit, secs(60), secs(60)}, Amounts{1, MaxLimit, maxReservedNanoUSD}))
		// A cap above MaxLimit is none; free output leaves nothing else.
		free := Admission{Allowance: Allowance{BudgetNanoUSD: 1e15, Period: PeriodTotal}, PromptTokens: 3, MinOutput: 1, MaxOutput: math.MaxInt64, InputNanoUSD: 1}
		wantVerdict(t, "free output, huge cap", sp.admit(spendAt(secs(100)), free),
			admitted(-1, Amounts{1, 3, 3}, Window{1, 3, secs(60), secs(60)}, Amounts{1, 3, 3}))
		// Nearly free output: the bound stops at MaxLimit.
		free.OutputNanoUSD, free.MaxOutput = 1e-9, -1
		v := sp.admit(spendAt(secs(100)), free)
		if v.Denied != "" || v.Output != MaxLimit || v.Reserved.Tokens != MaxLimit+3 {
			t.Errorf("nearly free output: %+v, want an output of MaxLimit", v)
		}
	})

	t.Run("SpendPeriods", func(t *testing.T) {
		for _, tc := range []struct {
			period      Period
			last, first time.Time // the last instant of a period, the first of the next
		}{
			{PeriodDay, time.Date(2035, 3, 14, 23, 59, 59, 500e6, time.UTC), time.Date(2035, 3, 15, 0, 0, 0, 0, time.UTC)},
			// A week ends on Sunday night, UTC, whatever the zone of the time.
			{PeriodWeek, time.Date(2035, 3, 18, 23, 59, 59, 500e6, time.UTC), time.Date(2035, 3, 19, 1, 0, 0, 0, time.FixedZone("CET", 3600))},
			{PeriodMonth, time.Date(2035, 1, 31, 23, 59, 59, 500e6, time.UTC), time.Date(2035, 2, 1, 0, 0, 0, 0, time.UTC)},
			{PeriodMonth, time.Date(2035, 12, 31, 23, 59, 59, 500e6, time.UTC), time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)},
		} {
			t.Run(string(tc.period), func(t *testing.T) {
				sp := newSpender(t, newStore(t), "periods")
				a := Admission{Allowance: Allowance{BudgetRequests: 1, Period: tc.period}, MaxOutput: -1}
				if v := sp.admit(tc.last, a); v.Denied != "" {
					t.Fatalf("first: %+v", v)
				}
				// 400ms later, 100ms before the period ends.
				if v := sp.admit(tc.last.Add(msec(400)), a); v.Denied != DeniedBudgetRequests || v.RetryAfter != msec(100) {
					t.Errorf("same period: %+v, want denied for 100ms", v)
				}
				v := sp.admit(tc.first, a)
				if v.Denied != "" || v.Spent != reqs(1) {
					t.Errorf("next period: %+v, want admitted with 1 request spent", v)
				}
				if got := sp.spending(tc.last, tc.period).Spent; got != reqs(1) {
					t.Errorf("the first period holds %+v", got)
				}
			})
		}
		t.Run("total", func(t *testing.T) {
			sp := newSpender(t, newStore(t), "periods")
			a := Admission{Allowance: Allowance{BudgetRequests: 1, Period: PeriodTotal}, MaxOutput: -1}
			if v := sp.admit(spendAt(0), a); v.Denied != "" {
				t.Fatalf("first: %+v", v)
			}
			// It never resets, so there is no time to retry at.
			later := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
			wantVerdict(t, "years later", sp.admit(later, a), denied(DeniedBudgetRequests, 0, Window{}, reqs(1)))
			wantSpending(t, "years later", sp.spending(later, PeriodTotal), Spending{Spent: reqs(1)})
		})
	})

	t.Run("SpendMaxParallel", func(t *testing.T) {
		sp := newSpender(t, newStore(t), "parallel")
		a := func(lease string) Admission {
			return Admission{Allowance: Allowance{MaxParallel: 2}, Lease: lease, MaxOutput: -1}
		}
		inFlight := func(now time.Time) int64 { t.Helper(); return sp.spending(now, "").InFlight }
		for _, l := range []string{"a", "b"} {
			if v := sp.admit(spendAt(0), a(l)); v.Denied != "" {
				t.Fatalf("lease %s: %+v", l, v)
			}
		}
		wantVerdict(t, "third", sp.admit(spendAt(secs(1)), a("c")),
			denied(DeniedParallel, time.Second, Window{Requests: 2, RequestsReset: secs(59)}, reqs(2)))
		if n := inFlight(spendAt(secs(1))); n != 2 {
			t.Errorf("in flight: %d, want 2", n)
		}

		// Settling lets the lease go.
		sp.settle(Settlement{Admitted: spendAt(0), Lease: "a", Reserved: reqs(1), Used: reqs(1)})
		if v := sp.admit(spendAt(secs(2)), a("c")); v.Denied != "" {
			t.Errorf("after settling a: %+v", v)
		}
		if v := sp.admit(spendAt(secs(2)), a("d")); v.Denied != DeniedParallel {
			t.Errorf("b and c in flight: %+v, want denied", v)
		}

		// c renews before it lapses; b does not, and lapses at LeaseTTL.
		sp.renew("c", spendAt(9*time.Minute))
		if n := inFlight(spendAt(LeaseTTL - time.Millisecond)); n != 2 {
			t.Errorf("in flight just before b lapses: %d, want 2", n)
		}
		if n := inFlight(spendAt(LeaseTTL)); n != 1 {
			t.Errorf("in flight when b lapses: %d, want 1", n)
		}
		// c would have lapsed at LeaseTTL+2s; renewed, at 19m.
		if n := inFlight(spendAt(LeaseTTL + 3*time.Second)); n != 1 {
			t.Errorf("in flight after c's first term: %d, want 1", n)
		}
		// A lapsed lease stays lapsed, renewed or not.
		sp.renew("b", spendAt(LeaseTTL+4*time.Second))
		if n := inFlight(spendAt(LeaseTTL + 5*time.Second)); n != 1 {
			t.Errorf("in flight after renewing lapsed b: %d, want 1", n)
		}
		if v := sp.admit(spendAt(LeaseTTL+5*time.Second), a("e")); v.Denied != "" {
			t.Errorf("with c alone in flight: %+v", v)
		}
		if n := inFlight(spendAt(19*time.Minute - time.Millisecond)); n != 2 {
			t.Errorf("in flight before c's second term ends: %d, want 2", n)
		}
		if n := inFlight(spendAt(19 * time.Minute)); n != 1 {
			t.Errorf("in flight when c lapses: %d, want 1 (e)", n)
		}
		// Settling a lapsed lease, or renewing a settled one, is harmless.
		sp.settle(Settlement{Admitted: spendAt(secs(2)), Lease: "c", Reserved: reqs(1), Used: reqs(1)})
		sp.renew("a", spendAt(19*time.Minute))
		if n := inFlight(spendAt(19 * time.Minute)); n != 1 {
			t.Errorf("in flight at the end: %d, want 1 (e)", n)
		}
	})

	t.Run("SpendRenewUnpruned", func(t *testing.T) {
		// Renewing a lease that lapsed, with no call in between that
		// would have dropped it, must not bring it back.
		sp := newSpender(t, newStore(t), "renew")
		a := Admission{Allowance: Allowance{MaxParallel: 1}, Lease: "x", MaxOutput: -1}
		if v := sp.admit(spendAt(0), a); v.Denied != "" {
			t.Fatal(v)
		}
		sp.renew("x", spendAt(LeaseTTL+time.Second))
		if n := sp.spending(spendAt(LeaseTTL+time.Second), "").InFlight; n != 0 {
			t.Errorf("in flight: %d, want 0", n)
		}
	})

	t.Run("SpendDenialReservesNothing", func(t *testing.T) {
		sp := newSpender(t, newStore(t), "denial")
		all := Allowance{RPM: 2, TPM: 1000, MaxParallel: 2, BudgetRequests: 100, BudgetTokens: 5000, BudgetNanoUSD: 1e6, Period: PeriodDay}
		a := func(lease string, prompt int64) Admission {
			return Admission{Allowance: all, Lease: lease, PromptTokens: prompt, MinOutput: 1, MaxOutput: 100, InputNanoUSD: 10, OutputNanoUSD: 20}
		}
		v := sp.admit(spendAt(0), a("a", 100))
		if v.Denied != "" {
			t.Fatal(v)
		}
		before := sp.spending(spendAt(secs(1)), PeriodDay)
		for _, tc := range []struct {
			a    Admission
			want Denial
		}{
			{a("b", 2000), DeniedTooLarge},
			{a("b", 900), DeniedTokens},
			{func() Admission { x := a("b", 10); x.BudgetNanoUSD = 100; return x }(), DeniedBudgetUSD},
			{func() Admission { x := a("b", 10); x.BudgetTokens = 210; return x }(), DeniedBudgetTokens},
			{func() Admission { x := a("b", 10); x.BudgetRequests = 1; return x }(), DeniedBudgetRequests},
			{func() Admission { x := a("b", 10); x.MaxParallel = 1; return x }(), DeniedParallel},
			{func() Admission { x := a("b", 10); x.RPM = 1; return x }(), DeniedRequests},
		} {
			if v := sp.admit(spendAt(secs(1)), tc.a); v.Denied != tc.want || v.Reserved != (Amounts{}) || v.Output != -1 {
				t.Errorf("got %+v, want denied by %s, nothing reserved", v, tc.want)
			}
		}
		wantSpending(t, "after the denials", sp.spending(spendAt(secs(1)), PeriodDay), before)
		if before.InFlight != 1 || before.Window.Requests != 1 || before.Spent != v.Reserved {
			t.Errorf("before the denials: %+v, want the first request alone", before)
		}
	})

	t.Run("SpendChecksInOrder", func(t *testing.T) {
		// Each limit is checked only when the ones before it hold:
		// max_parallel, rpm, budget requests, then tokens: tpm, budget
		// tokens, budget USD.
		sp := newSpender(t, newStore(t), "order")
		full := Admission{
			Allowance: Allowance{RPM: 1, TPM: 100, MaxParallel: 1, BudgetRequests: 1, BudgetTokens: 100, BudgetNanoUSD: 100},
			Lease:     "a", PromptTokens: 50, MinOutput: 1, MaxOutput: 50, InputNanoUSD: 1, OutputNanoUSD: 1,
		}
		if v := sp.admit(spendAt(0), full); v.Denied != "" || v.Reserved != (Amounts{1, 100, 100}) {
			t.Fatalf("first: %+v", v)
		}
		for _, tc := range []struct {
			drop func(*Allowance)
			want Denial
		}{
			{func(*Allowance) {}, DeniedParallel},
			{func(a *Allowance) { a.MaxParallel = 0 }, DeniedRequests},
			{func(a *Allowance) { a.RPM = 0 }, DeniedBudgetRequests},
			{func(a *Allowance) { a.BudgetRequests = 0 }, DeniedTokens},
			{func(a *Allowance) { a.TPM = 0 }, DeniedBudgetTokens},
			{func(a *Allowance) { a.BudgetTokens = 0 }, DeniedBudgetUSD},
		} {
			tc.drop(&full.Allowance)
			full.Lease = "b"
			if v := sp.admit(spendAt(secs(1)), full); v.Denied != tc.want {
				t.Errorf("got %+v, want denied by %s", v, tc.want)
			}
		}
	})

	t.Run("SpendUserIDs", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		a := Admission{Allowance: Allowance{RPM: 1, BudgetRequests: 5}, MaxOutput: -1}
		mustCreate(t, s, "reborn")
		old, err := s.GetUser(ctx, "reborn")
		if err != nil {
			t.Fatal(err)
		}
		first := spender{t: t, s: s, name: old.Name, id: old.ID}
		if v := first.admit(spendAt(0), a); v.Denied != "" {
			t.Fatal(v)
		}
		if v := first.admit(spendAt(0), a); v.Denied != DeniedRequests {
			t.Fatalf("second request: %+v", v)
		}
		// Deleted and created again, the user has a new ID, and its
		// spending starts afresh.
		if err := s.DeleteUser(ctx, "reborn"); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, s, "reborn")
		again, err := s.GetUser(ctx, "reborn")
		if err != nil || again.ID == old.ID {
			t.Fatalf("re-created user: %+v, %v; want a new ID", again, err)
		}
		second := spender{t: t, s: s, name: again.Name, id: again.ID}
		wantSpending(t, "re-created user", second.spending(spendAt(0), ""), Spending{})
		wantVerdict(t, "re-created user", second.admit(spendAt(0), a),
			admitted(-1, reqs(1), Window{Requests: 1, RequestsReset: secs(60)}, reqs(1)))
		wantSpending(t, "old ID", first.spending(spendAt(0), ""),
			Spending{Window: Window{Requests: 1, RequestsReset: secs(60)}, Spent: reqs(1)})
	})

	t.Run("SpendConcurrent", func(t *testing.T) {
		const n = 10
		s := newStore(t)
		for _, tc := range []struct {
			name  string
			allow Allowance
		}{
			{"rpm", Allowance{RPM: n}},
			{"max_parallel", Allowance{MaxParallel: n}},
			{"budget_tokens", Allowance{BudgetTokens: 100 * n}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := admitAtOnce(t, []Store{s}, "concurrent-"+tc.name, NewUserID(), 3*n,
					Admission{Allowance: tc.allow, PromptTokens: 60, MinOutput: 40, MaxOutput: 40})
				if got != n {
					t.Errorf("%d of %d admitted, want %d", got, 3*n, n)
				}
			})
		}
	})
}

// admitAtOnce admits total requests of one user ID at once, spread over
// stores, all at spendT0, each with its own lease, and returns how many
// were admitted.
func admitAtOnce(t *testing.T, stores []Store, name, id string, total int, a Admission) int {
	t.Helper()
	a.User, a.UserID, a.Now = name, id, spendT0
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range total {
		wg.Go(func() {
			a := a
			a.Lease = fmt.Sprintf("lease-%d", i)
			<-start
			v, err := stores[i%len(stores)].Admit(context.Background(), a)
			if err != nil {
				t.Errorf("Admit: %v", err)
				return
			}
			if v.Denied == "" {
				ok.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(ok.Load())
}
