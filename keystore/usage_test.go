package keystore

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestUsageRowJSON pins the flat JSON form the usage API serves.
func TestUsageRowJSON(t *testing.T) {
	raw, err := json.Marshal(row("ann", "m|1", "2030-01-02", 1))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"user":"ann","user_id":"` + idOf("ann") + `","model":"m|1","date":"2030-01-02","requests":1,"prompt_tokens":10,` +
		`"completion_tokens":20,"total_tokens":30,"cached_tokens":4,"reasoning_tokens":5,"estimated_requests":6,"cost_nano_usd":7}`
	if string(raw) != want {
		t.Errorf("JSON = %s\nwant %s", raw, want)
	}
}

func TestUsageCountsAdd(t *testing.T) {
	c := row("", "", "", 1).UsageCounts
	c.Add(row("", "", "", 2).UsageCounts)
	if c != row("", "", "", 3).UsageCounts {
		t.Errorf("Add = %+v", c)
	}
}

// TestUsageCountsAddSaturates: a sum stops at int64's bounds instead of
// wrapping around to a count of the other sign.
func TestUsageCountsAddSaturates(t *testing.T) {
	c := UsageCounts{Requests: 1, PromptTokens: math.MaxInt64 - 1, CompletionTokens: math.MinInt64 + 1, TotalTokens: 5, CostNanoUSD: math.MaxInt64}
	c.Add(UsageCounts{Requests: 1, PromptTokens: 2, CompletionTokens: -2, TotalTokens: -7, CostNanoUSD: 1})
	want := UsageCounts{Requests: 2, PromptTokens: math.MaxInt64, CompletionTokens: math.MinInt64, TotalTokens: -2, CostNanoUSD: math.MaxInt64}
	if c != want {
		t.Errorf("Add = %+v, want %+v", c, want)
	}
	c.Add(UsageCounts{PromptTokens: math.MaxInt64, CompletionTokens: math.MaxInt64})
	if c.PromptTokens != math.MaxInt64 || c.CompletionTokens != -1 {
		t.Errorf("Add at the bounds = %+v", c)
	}
}

func TestUsageDate(t *testing.T) {
	at := time.Date(2030, 1, 1, 23, 30, 0, 0, time.FixedZone("X", -3600))
	if got := UsageDate(at); got != "2030-01-02" {
		t.Errorf("UsageDate = %s, want the UTC day 2030-01-02", got)
	}
}

func TestUsageFilterDays(t *testing.T) {
	days, err := UsageFilter{From: "2028-02-27", To: "2028-03-01"}.days()
	want := []string{"2028-02-27", "2028-02-28", "2028-02-29", "2028-03-01"}
	if err != nil || len(days) != len(want) {
		t.Fatalf("days = %v, %v; want %v", days, err, want)
	}
	for i := range want {
		if days[i] != want[i] {
			t.Errorf("days = %v, want %v", days, want)
		}
	}
	if days, err := (UsageFilter{From: "2028-01-01", To: "2028-12-31"}).days(); err != nil || len(days) != MaxUsageRangeDays {
		t.Errorf("a leap year: %d days, %v", len(days), err)
	}
}
