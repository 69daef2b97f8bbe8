package aiproxy

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// outageReminder is how often an outage that goes on is logged again.
const outageReminder = time.Minute

// outageLog turns a failure that many calls meet, such as a store outage
// that fails every request, into a few log lines for the operator: one when
// it starts, a reminder at most once a minute while it lasts (with the
// number of failures since the last line), and one at Info when it ends.
// Every failure is also logged at Debug. It is safe for concurrent use, and
// a success costs one atomic load while nothing is failing.
type outageLog struct {
	logger *zap.Logger
	level  zapcore.Level // of the start and the reminders
	failed string        // message while failing, e.g. "key lookups fail"
	back   string        // message when it works again
	now    func() time.Time

	failing atomic.Bool
	mu      sync.Mutex
	since   time.Time // when the outage started
	logged  time.Time // when it was last logged
	count   int       // failures since then
}

func newOutageLog(logger *zap.Logger, level zapcore.Level, failed, back string) *outageLog {
	return &outageLog{logger: logger, level: level, failed: failed, back: back, now: time.Now}
}

// fail records one failure.
func (o *outageLog) fail(err error, fields ...zap.Field) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	o.count++
	switch {
	case !o.failing.Load():
		o.failing.Store(true)
		o.since, o.logged, o.count = now, now, 0
		o.logger.Log(o.level, o.failed, append(fields, zap.Error(err))...)
	case now.Sub(o.logged) >= outageReminder:
		o.logger.Log(o.level, o.failed, append(fields, zap.Error(err),
			zap.Duration("outage", now.Sub(o.since)), zap.Int("failures_since_last_log", o.count))...)
		o.logged, o.count = now, 0
	default:
		o.logger.Debug(o.failed, append(fields, zap.Error(err))...)
	}
}

// ok records a success, which ends an outage.
func (o *outageLog) ok() {
	if !o.failing.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.failing.Load() {
		return
	}
	o.failing.Store(false)
	o.logger.Info(o.back, zap.Duration("outage", o.now().Sub(o.since)))
}
