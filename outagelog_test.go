package aiproxy

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestOutageLog: an outage is logged when it starts, reminded once a
// minute with the failures in between, and its end once; the failures in
// between go to Debug only.
func TestOutageLog(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := newOutageLog(zap.New(core), zapcore.ErrorLevel, "lookups fail", "lookups work again")
	o.now = func() time.Time { return now }
	down := errors.New("connection refused")

	o.ok() // no outage: nothing to say
	for range 100 {
		o.fail(down)
		now = now.Add(100 * time.Millisecond)
	}
	now = now.Add(time.Minute)
	o.fail(down) // a reminder
	o.fail(down)
	o.ok()
	o.ok()
	o.fail(down) // a new outage

	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+" "+e.Message)
	}
	want := []string{"error lookups fail", "error lookups fail", "info lookups work again", "error lookups fail"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	if n := logs.All()[1].ContextMap()["failures_since_last_log"]; n != int64(100) {
		t.Fatalf("the reminder counts %v failures, want 100", n)
	}
}
