package aiproxy

// reports.go: usage reports, for the admin API and self-service, run apart
// from the request path.

import (
	"context"
	"time"

	"github.com/aiproxy/aiproxy/internal/usagequery"
	"github.com/aiproxy/aiproxy/keystore"
)

// Usage reports are bounded apart from the request path: a year of a
// team's usage is many rows, and reports must never take the store's
// capacity from proxied requests.
const (
	// maxConcurrentReports is how many usage reports run at once per
	// handler; more wait up to reportWait for a turn, then get 429.
	maxConcurrentReports = 2
	reportWait           = 2 * time.Second
	// reportTimeout bounds one report, the wait for its turn included.
	reportTimeout = 10 * time.Second
)

// queryUsage reads the stored usage plus what is counted but not yet
// written, so a query sees every request that has finished.
func (h *Handler) queryUsage(ctx context.Context, f keystore.UsageFilter) ([]keystore.UsageRow, error) {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	wait := time.NewTimer(reportWait)
	defer wait.Stop()
	select {
	case h.reports <- struct{}{}:
		defer func() { <-h.reports }()
	case <-wait.C:
		return nil, usagequery.ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.usage.Query(ctx, f)
}
