package keystore

// spend.go: the contract of the spend ledger, where each store keeps what
// users spend against their limits: requests and tokens in the sliding
// minute, requests in flight, and budgets per calendar period. A request is
// admitted and its upper bound reserved in one atomic step; when it ends,
// the reservation is settled to what it used.

import (
	"fmt"
	"time"
)

// Period is a budget's calendar period.
type Period string

// The budget periods. Boundaries are UTC; a week starts on Monday.
const (
	PeriodDay   Period = "day"
	PeriodWeek  Period = "week"
	PeriodMonth Period = "month"
	PeriodTotal Period = "total" // never resets
)

// Validate reports whether p is one of the periods.
func (p Period) Validate() error {
	switch p {
	case PeriodDay, PeriodWeek, PeriodMonth, PeriodTotal:
		return nil
	}
	return fmt.Errorf("%q is not a period: use day, week, month or total", string(p))
}

// Span returns the period that holds t: a key naming it ("d2026-12-01",
// "w2026-11-30" for the week starting that Monday, "m2026-12", "total") and
// when it ends (zero for PeriodTotal).
func (p Period) Span(t time.Time) (key string, end time.Time) {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case PeriodDay:
		return "d" + day.Format(time.DateOnly), day.AddDate(0, 0, 1)
	case PeriodWeek:
		monday := day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
		return "w" + monday.Format(time.DateOnly), monday.AddDate(0, 0, 7)
	case PeriodMonth:
		first := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return "m" + first.Format("2006-01"), first.AddDate(0, 1, 0)
	}
	return "total", time.Time{}
}

// Allowance is what one user may spend, as checked on each request: the
// user's Policy over the site's defaults. A zero field means no limit.
type Allowance struct {
	RPM         int64 // requests per sliding minute
	TPM         int64 // tokens per sliding minute
	MaxParallel int64 // requests in flight

	BudgetRequests int64  // requests per period
	BudgetTokens   int64  // tokens per period
	BudgetNanoUSD  int64  // spend per period, in 1e-9 US dollars
	Period         Period // the budget's period; PeriodMonth when empty
}

// Limited reports whether any limit is set, that is, whether a request of
// this user goes through the ledger at all.
func (a Allowance) Limited() bool {
	return a.RPM|a.TPM|a.MaxParallel|a.BudgetRequests|a.BudgetTokens|a.BudgetNanoUSD != 0
}

// CountsTokens reports whether an axis limits tokens (or their cost), so a
// request needs an upper bound of its tokens before it is sent.
func (a Allowance) CountsTokens() bool {
	return a.TPM|a.BudgetTokens|a.BudgetNanoUSD != 0
}

// BudgetPeriod is a's period, PeriodMonth when unset.
func (a Allowance) BudgetPeriod() Period {
	if a.Period == "" {
		return PeriodMonth
	}
	return a.Period
}

// Amounts are what a request spends on each budget axis.
type Amounts struct {
	Requests int64 `json:"requests"`
	Tokens   int64 `json:"tokens"`
	NanoUSD  int64 `json:"nano_usd"`
}

// Admission asks the ledger to admit one request of a user.
type Admission struct {
	User   string // the user's name (the store's key prefix)
	UserID string // the user's ID: spending is kept per ID
	Allowance
	// Now is the request's time. Windows and periods are computed from it,
	// so instances sharing a store need clocks in step (NTP).
	Now time.Time
	// Lease names the request among the user's requests in flight, when
	// MaxParallel is set: unique, such as a random hex string.
	Lease string
	// PromptTokens bounds the request's input tokens from above.
	PromptTokens int64
	// MinOutput is the fewest output tokens worth sending the request for:
	// 1 for a completion, 0 for an embedding or an endpoint without output
	// tokens.
	MinOutput int64
	// MaxOutput is the client's own cap on output tokens, all choices
	// together, or -1 when it set none.
	MaxOutput int64
	// InputNanoUSD and OutputNanoUSD are the model's prices per token, in
	// 1e-9 US dollars, for the USD budget.
	InputNanoUSD, OutputNanoUSD float64
}

// Why a request was refused.
type Denial string

// The denials, one per limit.
const (
	DeniedRequests       Denial = "rpm"             // requests in the sliding minute
	DeniedTokens         Denial = "tpm"             // tokens in the sliding minute
	DeniedTooLarge       Denial = "tpm_too_large"   // more tokens than the whole tpm
	DeniedParallel       Denial = "max_parallel"    // requests in flight
	DeniedBudgetRequests Denial = "budget_requests" // requests in the period
	DeniedBudgetTokens   Denial = "budget_tokens"   // tokens in the period
	DeniedBudgetUSD      Denial = "budget_usd"      // spend in the period
)

// Verdict is the ledger's answer to an Admission.
type Verdict struct {
	// Denied is empty when the request was admitted and its amounts
	// reserved; otherwise it names the limit that refused it, and nothing
	// was reserved.
	Denied Denial
	// RetryAfter is, for a denial by a rate limit, when the same request
	// would fit; for a budget, when the period ends (0 for total).
	RetryAfter time.Duration
	// Output is the output tokens reserved: the most the answer may
	// produce for the reservation to hold. -1 when no limit bounds it: no
	// token limit applies, or the only one is a USD budget and output is
	// free, and the client set no cap (or one above MaxLimit).
	Output int64
	// Reserved is what was reserved.
	Reserved Amounts
	// Window is the sliding minute with this request in it.
	Window Window
	// Spent is the period's spending with this reservation in it.
	Spent Amounts
}

// Window is a user's sliding minute.
type Window struct {
	Requests int64 // requests in the last minute
	Tokens   int64 // tokens in the last minute, reservations included
	// RequestsReset and TokensReset are how long until the window holds
	// no requests, and no tokens, if nothing more comes.
	RequestsReset, TokensReset time.Duration
}

// Settlement replaces a reservation by what the request used.
type Settlement struct {
	User, UserID string
	// Admitted is the Admission's Now: the reservation's minute and period.
	Admitted time.Time
	Period   Period
	// Lease is the Admission's lease, let go now ("" when none).
	Lease    string
	Reserved Amounts // the Verdict's Reserved
	Used     Amounts // what the request used, as metered
}

// SpendQuery asks for a user's spending now.
type SpendQuery struct {
	User, UserID string
	Period       Period
	Now          time.Time
}

// Spending is a user's spending now.
type Spending struct {
	Window   Window
	Spent    Amounts // in the current period, reservations included
	InFlight int64   // requests in flight (counted only under a max_parallel limit)
}

// LeaseTTL bounds how long a request counts as in flight when its instance
// stops before it ends (a crash): after it, the lease lapses. Longer
// requests renew it.
const LeaseTTL = 10 * time.Minute

// WindowLength is the rate limits' sliding window, kept in one-second steps.
const WindowLength = time.Minute
