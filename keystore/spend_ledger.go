package keystore

// spend_ledger.go: the spend ledger's rules, in process. The file store
// keeps its ledger this way; the Redis store runs the same rules as Lua
// scripts (redis_spend.go), and the conformance suite holds both to them.

import (
	"math"
	"sort"
	"sync"
	"time"
)

// windowSeconds is the sliding window's length in its one-second steps.
const windowSeconds = int64(WindowLength / time.Second)

// userSpend is one user ID's spending.
type userSpend struct {
	// buckets holds the requests and tokens admitted in each second of
	// the window; older seconds are dropped as they leave it.
	buckets map[int64]*[2]int64
	leases  map[string]time.Time // lease -> when it lapses
	periods map[string]*periodSpend
}

// periodSpend is a budget period's spending, and whether it changed since
// it was last written to disk.
type periodSpend struct {
	Amounts
	end   time.Time // zero for total
	dirty bool
}

// spendLedger is the ledger of one process. Everything happens under one
// mutex: an admission is a few map operations.
type spendLedger struct {
	mu    sync.Mutex
	users map[string]*userSpend // by user ID
	// load reads a period's stored spending (persistence); nil: none.
	load func(userID, period string) (Amounts, bool)
}

func newSpendLedger(load func(userID, period string) (Amounts, bool)) *spendLedger {
	return &spendLedger{users: make(map[string]*userSpend), load: load}
}

func (l *spendLedger) user(id string) *userSpend {
	u := l.users[id]
	if u == nil {
		u = &userSpend{
			buckets: make(map[int64]*[2]int64),
			leases:  make(map[string]time.Time),
			periods: make(map[string]*periodSpend),
		}
		l.users[id] = u
	}
	return u
}

// period returns the user's spending in the period holding t.
func (l *spendLedger) period(id string, u *userSpend, p Period, t time.Time) *periodSpend {
	key, end := p.Span(t)
	ps := u.periods[key]
	if ps == nil {
		ps = &periodSpend{end: end}
		if l.load != nil {
			ps.Amounts, _ = l.load(id, key)
		}
		u.periods[key] = ps
	}
	return ps
}

// prune drops the seconds that left the window and the leases that lapsed.
func (u *userSpend) prune(now time.Time) {
	oldest := now.Unix() - windowSeconds
	for s := range u.buckets {
		if s <= oldest {
			delete(u.buckets, s)
		}
	}
	for id, until := range u.leases {
		if !now.Before(until) {
			delete(u.leases, id)
		}
	}
}

// window sums the sliding minute. Both resets run until the newest
// second with an admission leaves (the Redis ledger keeps that second, not
// the newest with tokens left after settling).
func (u *userSpend) window(now time.Time) Window {
	var w Window
	var newest int64 = -1
	for s, b := range u.buckets {
		w.Requests += b[0]
		w.Tokens += b[1]
		newest = max(newest, s)
	}
	if w.Requests > 0 {
		w.RequestsReset = leavesAt(newest, now)
	}
	if w.Tokens > 0 {
		w.TokensReset = leavesAt(newest, now)
	}
	return w
}

// leavesAt is how long until the second s leaves the window (0 for -1).
func leavesAt(s int64, now time.Time) time.Duration {
	if s < 0 {
		return 0
	}
	return max(time.Unix(s+windowSeconds, 0).Sub(now), 0)
}

// waitFor is how long until the window, dropping its oldest seconds as
// they leave, holds at most limit-need of what idx picks (0: requests,
// 1: tokens). At least a second.
func (u *userSpend) waitFor(now time.Time, idx int, need, limit int64) time.Duration {
	secs := make([]int64, 0, len(u.buckets))
	var sum int64
	for s, b := range u.buckets {
		secs = append(secs, s)
		sum += b[idx]
	}
	sort.Slice(secs, func(i, j int) bool { return secs[i] < secs[j] })
	for _, s := range secs {
		sum -= u.buckets[s][idx]
		if sum+need <= limit {
			return max(leavesAt(s, now), time.Second)
		}
	}
	return WindowLength
}

// admit implements Store.Admit.
func (l *spendLedger) admit(a Admission) Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.user(a.UserID)
	u.prune(a.Now)
	period := a.BudgetPeriod()
	ps := l.period(a.UserID, u, period, a.Now)
	w := u.window(a.Now)
	deny := func(d Denial, after time.Duration) Verdict {
		return Verdict{Denied: d, RetryAfter: after, Output: -1, Window: w, Spent: ps.Amounts}
	}
	untilReset := time.Duration(0)
	if !ps.end.IsZero() {
		untilReset = ps.end.Sub(a.Now)
	}

	if a.MaxParallel > 0 && int64(len(u.leases)) >= a.MaxParallel {
		return deny(DeniedParallel, time.Second)
	}
	if a.RPM > 0 && w.Requests+1 > a.RPM {
		return deny(DeniedRequests, u.waitFor(a.Now, 0, 1, a.RPM))
	}
	if a.BudgetRequests > 0 && ps.Requests+1 > a.BudgetRequests {
		return deny(DeniedBudgetRequests, untilReset)
	}
	out, denial := outputRoom(a, w.Tokens, ps.Amounts)
	switch denial {
	case "":
	case DeniedTokens:
		return deny(denial, u.waitFor(a.Now, 1, a.PromptTokens+a.MinOutput, a.TPM))
	case DeniedTooLarge:
		return deny(denial, 0)
	default:
		return deny(denial, untilReset)
	}

	v := Verdict{Output: out, Reserved: reservation(a, out)}
	b := u.buckets[a.Now.Unix()]
	if b == nil {
		b = new([2]int64)
		u.buckets[a.Now.Unix()] = b
	}
	b[0]++
	b[1] += v.Reserved.Tokens
	ps.Requests += v.Reserved.Requests
	ps.Tokens += v.Reserved.Tokens
	ps.NanoUSD += v.Reserved.NanoUSD
	ps.dirty = true
	if a.MaxParallel > 0 && a.Lease != "" {
		u.leases[a.Lease] = a.Now.Add(LeaseTTL)
	}
	v.Window = u.window(a.Now)
	v.Spent = ps.Amounts
	return v
}

// outputRoom is the most output tokens a may reserve given the window's
// tokens and the period's spending, or the denial when fewer than
// a.MinOutput fit. -1: nothing bounds the output (see Verdict.Output).
//
// A bound is at most MaxLimit, and a client's cap above it counts as none,
// so that counts stay exact in the Redis ledger's Lua, whose numbers are
// doubles.
func outputRoom(a Admission, windowTokens int64, spent Amounts) (int64, Denial) {
	if !a.CountsTokens() {
		return -1, ""
	}
	out := a.MaxOutput
	if out < 0 || out > MaxLimit {
		out = math.MaxInt64
	}
	if a.TPM > 0 {
		if a.PromptTokens+a.MinOutput > a.TPM {
			return 0, DeniedTooLarge
		}
		room := a.TPM - windowTokens - a.PromptTokens
		if room < a.MinOutput {
			return 0, DeniedTokens
		}
		out = min(out, room)
	}
	if a.BudgetTokens > 0 {
		room := a.BudgetTokens - spent.Tokens - a.PromptTokens
		if room < a.MinOutput {
			return 0, DeniedBudgetTokens
		}
		out = min(out, room)
	}
	if a.BudgetNanoUSD > 0 {
		left := float64(a.BudgetNanoUSD-spent.NanoUSD) - math.Ceil(float64(a.PromptTokens)*a.InputNanoUSD)
		room := int64(math.MaxInt64)
		if a.OutputNanoUSD > 0 && left >= 0 {
			room = int64(min(math.Floor(left/a.OutputNanoUSD), float64(MaxLimit)))
		}
		if left < 0 || room < a.MinOutput {
			return 0, DeniedBudgetUSD
		}
		out = min(out, room)
	}
	if out == math.MaxInt64 {
		return -1, ""
	}
	return out, ""
}

// maxReservedNanoUSD caps a reservation's price: more than any USD budget
// (MaxBudgetUSD), it keeps a price of absurd limits and prices from
// overflowing int64, and stays exact in Lua's doubles.
const maxReservedNanoUSD = 1 << 53

// reservation is what an admitted request reserves: itself, its prompt and
// output bound, and their price. An unbounded output (out < 0) under a
// token limit still reserves the prompt, so that requests admitted at once
// cannot each spend what only one of them was checked against.
func reservation(a Admission, out int64) Amounts {
	r := Amounts{Requests: 1}
	if !a.CountsTokens() {
		return r // no token limit: nothing to hold back
	}
	out = max(out, 0)
	r.Tokens = a.PromptTokens + out
	// The conversions keep the compiler from fusing the multiply-add,
	// which would round differently from the Redis ledger's Lua.
	price := float64(float64(a.PromptTokens)*a.InputNanoUSD) + float64(float64(out)*a.OutputNanoUSD)
	r.NanoUSD = int64(min(math.Ceil(price), maxReservedNanoUSD))
	return r
}

// settle implements Store.Settle.
func (l *spendLedger) settle(s Settlement) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.user(s.UserID)
	if s.Lease != "" {
		delete(u.leases, s.Lease)
	}
	if b := u.buckets[s.Admitted.Unix()]; b != nil {
		b[1] = max(b[1]+s.Used.Tokens-s.Reserved.Tokens, 0)
	}
	period := s.Period
	if period == "" {
		period = PeriodMonth
	}
	ps := l.period(s.UserID, u, period, s.Admitted)
	ps.Requests = max(ps.Requests+s.Used.Requests-s.Reserved.Requests, 0)
	ps.Tokens = max(ps.Tokens+s.Used.Tokens-s.Reserved.Tokens, 0)
	ps.NanoUSD = max(ps.NanoUSD+s.Used.NanoUSD-s.Reserved.NanoUSD, 0)
	ps.dirty = true
}

// renew implements Store.RenewLease.
func (l *spendLedger) renew(userID, lease string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.users[userID]; u != nil {
		// A lease that lapsed stays lapsed, whether or not it was pruned
		// yet: its request no longer counts, and renewing must not bring
		// it back.
		if until, ok := u.leases[lease]; ok && now.Before(until) {
			u.leases[lease] = now.Add(LeaseTTL)
		} else if ok {
			delete(u.leases, lease)
		}
	}
}

// spending implements Store.Spending.
func (l *spendLedger) spending(q SpendQuery) Spending {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.user(q.UserID)
	u.prune(q.Now)
	period := q.Period
	if period == "" {
		period = PeriodMonth
	}
	ps := l.period(q.UserID, u, period, q.Now)
	return Spending{Window: u.window(q.Now), Spent: ps.Amounts, InFlight: int64(len(u.leases))}
}

// dirtyPeriod is a period's spending to write to disk.
type dirtyPeriod struct {
	userID, period string
	Amounts
	end time.Time
}

// takeDirty returns the periods changed since the last call, and forgets
// users with nothing left in memory worth keeping: no window, no lease, no
// unwritten period (a period ended long ago is dropped; it is on disk).
func (l *spendLedger) takeDirty(now time.Time) []dirtyPeriod {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []dirtyPeriod
	for id, u := range l.users {
		u.prune(now)
		took := false
		for key, ps := range u.periods {
			if ps.dirty {
				took = true
				out = append(out, dirtyPeriod{userID: id, period: key, Amounts: ps.Amounts, end: ps.end})
				ps.dirty = false
			} else if !ps.end.IsZero() && now.After(ps.end) {
				delete(u.periods, key)
			}
		}
		// A user whose periods were all on disk before this pass is read
		// back from there when it comes again; one just taken waits for
		// the next pass, when its write is done.
		if !took && len(u.buckets) == 0 && len(u.leases) == 0 {
			delete(l.users, id)
		}
	}
	return out
}

// markDirty puts back periods whose write failed, so the next one retries.
func (l *spendLedger) markDirty(failed []dirtyPeriod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range failed {
		u := l.user(d.userID)
		ps := u.periods[d.period]
		if ps == nil {
			ps = &periodSpend{Amounts: d.Amounts, end: d.end}
			u.periods[d.period] = ps
		}
		ps.dirty = true
	}
}
