package aiproxy

import (
	"testing"
	"time"
)

// TestReportPace: a burst of selfReportBurst reports, then one per
// selfReportEvery, per user; the table of users is bounded.
func TestReportPace(t *testing.T) {
	var p reportPace
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range selfReportBurst {
		if ok, _ := p.allow("u1", now); !ok {
			t.Fatalf("report %d of the burst refused", i+1)
		}
	}
	ok, wait := p.allow("u1", now)
	if ok || wait <= 0 || wait > selfReportEvery {
		t.Fatalf("past the burst: %v, wait %v", ok, wait)
	}
	if ok, _ := p.allow("u2", now); !ok {
		t.Fatal("another user paced by the first one's reports")
	}
	if ok, _ := p.allow("u1", now.Add(selfReportEvery)); !ok {
		t.Fatal("a report an interval later refused")
	}
	if ok, _ := p.allow("u1", now.Add(selfReportEvery)); ok {
		t.Fatal("two reports in one interval after the burst")
	}
	for i := range 2 * maxPacedUsers {
		p.allow(string(rune(i)), now)
	}
	if len(p.next) > maxPacedUsers {
		t.Fatalf("%d users remembered, bound %d", len(p.next), maxPacedUsers)
	}
}
