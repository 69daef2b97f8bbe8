package aiproxy

// spending.go: what a user may spend and has left now, as GET /me and
// GET /admin/users/{name} show it.

import (
	"context"

	"github.com/aiproxy/aiproxy/admin"
	"github.com/aiproxy/aiproxy/keystore"
)

// spendObject reads what u has spent and tells what is left of each limit.
func (h *Handler) spendObject(ctx context.Context, u keystore.User) (*admin.SpendObject, error) {
	policy := h.userPolicy(u)
	obj := &admin.SpendObject{Effective: policy}
	a := policy.Allowance()
	if !a.Limited() {
		return obj, nil
	}
	now := spendClock()
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	s, err := h.store.Spending(ctx, keystore.SpendQuery{User: u.Name, UserID: u.ID, Period: a.BudgetPeriod(), Now: now})
	if err != nil {
		return nil, err
	}
	left := &obj.Left
	leftOf := func(limit, used int64) *int64 {
		if limit == 0 {
			return nil
		}
		n := max(limit-used, 0)
		return &n
	}
	left.RequestsThisMinute = leftOf(a.RPM, s.Window.Requests)
	left.TokensThisMinute = leftOf(a.TPM, s.Window.Tokens)
	left.Parallel = leftOf(a.MaxParallel, s.InFlight)
	left.BudgetRequests = leftOf(a.BudgetRequests, s.Spent.Requests)
	left.BudgetTokens = leftOf(a.BudgetTokens, s.Spent.Tokens)
	if a.BudgetNanoUSD > 0 {
		usd := float64(max(a.BudgetNanoUSD-s.Spent.NanoUSD, 0)) / 1e9
		left.BudgetUSD = &usd
	}
	if a.BudgetRequests|a.BudgetTokens|a.BudgetNanoUSD != 0 {
		left.Period = string(a.BudgetPeriod())
		if _, end := a.BudgetPeriod().Span(now); !end.IsZero() {
			left.ResetsAt = &end
		}
	}
	return obj, nil
}

// checkPolicy checks a user's policy as this site applies it: over the
// defaults, a USD budget needs a price for every model the user may name
// exactly.
func (h *Handler) checkPolicy(p keystore.Policy) error {
	effective := p
	if h.DefaultLimits != nil {
		effective = p.Over(*h.DefaultLimits)
	}
	return checkPriced(effective, h.prices)
}
