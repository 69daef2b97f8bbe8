package aiproxy

import (
	"strconv"
	"testing"
	"time"
)

// TestReportPace: a burst of selfReportBurst reports at once, then turns
// selfReportEvery apart, waited for up to selfReportMaxWait, per user; the
// table of users is bounded.
func TestReportPace(t *testing.T) {
	var p reportPace
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range selfReportBurst {
		if ok, wait := p.reserve("u1", now); !ok || wait != 0 {
			t.Fatalf("report %d of the burst: %v, wait %v", i+1, ok, wait)
		}
	}
	for i := 1; i <= int(selfReportMaxWait/selfReportEvery); i++ {
		if ok, wait := p.reserve("u1", now); !ok || wait != time.Duration(i)*selfReportEvery {
			t.Fatalf("report past the burst: %v, wait %v; want a turn %v ahead", ok, wait, time.Duration(i)*selfReportEvery)
		}
	}
	if ok, _ := p.reserve("u1", now); ok {
		t.Fatal("a turn further than selfReportMaxWait ahead was given")
	}
	if ok, wait := p.reserve("u2", now); !ok || wait != 0 {
		t.Fatal("another user paced by the first one's reports")
	}
	later := now.Add(10 * selfReportEvery)
	if ok, wait := p.reserve("u1", later); !ok || wait != 0 {
		t.Fatalf("a report after a quiet spell: %v, wait %v", ok, wait)
	}
	for i := range 2 * maxPacedUsers {
		p.reserve(strconv.Itoa(i), now)
	}
	if len(p.next) > maxPacedUsers {
		t.Fatalf("%d users remembered, bound %d", len(p.next), maxPacedUsers)
	}
}
