package usage

import (
	"cmp"
	"context"
	"slices"

	"github.com/aiproxy/aiproxy/keystore"
)

// Query answers a usage query exactly: the store's rows matching f plus the
// matching counts not written yet, so that a request is visible as soon as
// it is recorded. No flush can land between reading the store and taking the
// pending snapshot, so nothing is missed or counted twice. (A batch whose
// write failed ambiguously, and which the store did take, shows twice until
// its retry; the store itself never counts it twice.) Rows come sorted by
// date, user, user ID and model, as from keystore.Store.QueryUsage, whose signature
// Query shares.
func (a *Aggregator) Query(ctx context.Context, f keystore.UsageFilter) ([]keystore.UsageRow, error) {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	rows, err := a.store.QueryUsage(ctx, f)
	if err != nil {
		return nil, err
	}
	return mergePending(rows, a.Pending(), f), nil
}

// mergePending adds the pending counts that f selects to rows, sorted as
// the store sorts them.
func mergePending(rows []keystore.UsageRow, pending map[keystore.UsageKey]keystore.UsageCounts, f keystore.UsageFilter) []keystore.UsageRow {
	index := make(map[keystore.UsageKey]int, len(rows))
	for i, r := range rows {
		index[r.UsageKey] = i
	}
	added := false
	for k, c := range pending {
		if !f.Matches(k) {
			continue
		}
		if i, ok := index[k]; ok {
			rows[i].Add(c)
			continue
		}
		index[k] = len(rows)
		rows = append(rows, keystore.UsageRow{UsageKey: k, UsageCounts: c})
		added = true
	}
	if added {
		slices.SortFunc(rows, func(a, b keystore.UsageRow) int {
			return cmp.Or(cmp.Compare(a.Date, b.Date), cmp.Compare(a.User, b.User),
				cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Model, b.Model))
		})
	}
	return rows
}
