package aiproxy

import "time"

// SetSpendClock makes admissions happen at the times now returns, until
// the returned function restores the clock.
func SetSpendClock(now func() time.Time) (restore func()) {
	old := spendClock
	spendClock = now
	return func() { spendClock = old }
}
