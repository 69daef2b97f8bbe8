package aiproxy

// reports.go: usage reports, for the admin API and self-service, run apart
// from the request path.

import (
	"context"
	"sync"
	"time"

	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/usage"
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
		return nil, usage.ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.usage.Query(ctx, f)
}

// A user's own reports are paced too: their cost grows with a year of rows,
// and a user looping them would otherwise spend the gateway's CPU at will.
// A report over the pace waits for its turn, up to selfReportMaxWait, so a
// page that asks for several gets them all, and a loop gets one report per
// selfReportEvery at the cost of a waiting connection, not of CPU.
const (
	// selfReportEvery is the pace of one user's reports, after a burst of
	// selfReportBurst.
	selfReportEvery = time.Second
	selfReportBurst = 5
	// selfReportMaxWait is the longest a report waits for its turn; one
	// that would wait longer gets 429. It also bounds the reports of one
	// user waiting at once (to about 2).
	selfReportMaxWait = 2 * time.Second
	// maxPacedUsers bounds the users the pace remembers; past it, it
	// starts afresh (a burst more for everyone, once).
	maxPacedUsers = 10000
)

// reportPace gives each user's reports turns, selfReportEvery apart after a
// burst: a user's "next free" time moves on by one interval per report.
type reportPace struct {
	mu   sync.Mutex
	next map[string]time.Time // user ID -> when the user's burst is whole again
}

// reserve takes user's next turn at now and returns how long to wait for
// it; ok is false, and wait how long until a turn within reach, when the
// turn lies more than selfReportMaxWait ahead (nothing is taken then).
func (p *reportPace) reserve(user string, now time.Time) (ok bool, wait time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == nil || len(p.next) >= maxPacedUsers {
		p.next = make(map[string]time.Time)
	}
	next := p.next[user]
	if next.Before(now) {
		next = now
	}
	turn := next.Add(-(selfReportBurst - 1) * selfReportEvery)
	if wait = turn.Sub(now); wait > selfReportMaxWait {
		return false, wait - selfReportMaxWait
	}
	p.next[user] = next.Add(selfReportEvery)
	return true, max(wait, 0)
}
