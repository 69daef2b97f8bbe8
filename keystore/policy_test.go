package keystore

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPeriodSpan(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		period Period
		at     string
		key    string
		end    string // "" for none
	}{
		{PeriodDay, "2026-12-01T00:00:00Z", "d2026-12-01", "2026-12-02T00:00:00Z"},
		{PeriodDay, "2026-12-01T23:59:59.999999999Z", "d2026-12-01", "2026-12-02T00:00:00Z"},
		// UTC days, whatever the time's zone.
		{PeriodDay, "2026-12-01T23:30:00-05:00", "d2026-12-02", "2026-12-03T00:00:00Z"},
		{PeriodDay, "2026-12-02T00:30:00+02:00", "d2026-12-01", "2026-12-02T00:00:00Z"},
		{PeriodDay, "2028-02-28T12:00:00Z", "d2028-02-28", "2028-02-29T00:00:00Z"},
		// Weeks from Monday: 2026-11-30 is one.
		{PeriodWeek, "2026-11-30T00:00:00Z", "w2026-11-30", "2026-12-07T00:00:00Z"},
		{PeriodWeek, "2026-12-01T15:04:05Z", "w2026-11-30", "2026-12-07T00:00:00Z"},
		{PeriodWeek, "2026-12-06T23:59:59.999Z", "w2026-11-30", "2026-12-07T00:00:00Z"},
		{PeriodWeek, "2026-12-07T00:00:00Z", "w2026-12-07", "2026-12-14T00:00:00Z"},
		{PeriodWeek, "2026-11-29T23:59:59Z", "w2026-11-23", "2026-11-30T00:00:00Z"}, // a Sunday
		{PeriodWeek, "2027-01-01T08:00:00Z", "w2026-12-28", "2027-01-04T00:00:00Z"}, // across the year
		{PeriodWeek, "2026-12-07T00:30:00+01:00", "w2026-11-30", "2026-12-07T00:00:00Z"},
		{PeriodMonth, "2026-12-01T00:00:00Z", "m2026-12", "2027-01-01T00:00:00Z"},
		{PeriodMonth, "2026-12-31T23:59:59.999Z", "m2026-12", "2027-01-01T00:00:00Z"},
		{PeriodMonth, "2028-02-29T10:00:00Z", "m2028-02", "2028-03-01T00:00:00Z"},
		{PeriodMonth, "2027-02-01T00:00:00+01:00", "m2027-01", "2027-02-01T00:00:00Z"},
		{PeriodTotal, "2026-12-01T00:00:00Z", "total", ""},
		{PeriodTotal, "2099-06-15T00:00:00Z", "total", ""},
	} {
		key, end := tc.period.Span(utc(tc.at))
		wantEnd := time.Time{}
		if tc.end != "" {
			wantEnd = utc(tc.end)
		}
		if key != tc.key || !end.Equal(wantEnd) || (!end.IsZero() && end.Location() != time.UTC) {
			t.Errorf("%s.Span(%s) = %q, %v; want %q, %v", tc.period, tc.at, key, end, tc.key, wantEnd)
		}
	}
}

func TestPeriodValidate(t *testing.T) {
	for _, p := range []Period{PeriodDay, PeriodWeek, PeriodMonth, PeriodTotal} {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []Period{"", "year", "Day", "month "} {
		if err := p.Validate(); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	if got := (Allowance{}).BudgetPeriod(); got != PeriodMonth {
		t.Errorf("default period %q, want month", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	usd := func(v float64) *float64 { return &v }
	many := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = "m" + strings.Repeat("x", i%5)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		p    Policy
		want string // a part of the error; "" for none
	}{
		{"empty", Policy{}, ""},
		{"all set", Policy{
			Models: []string{"gpt-4o", "meta-llama/*"},
			Limits: &Limits{RPM: n(60), TPM: n(100000), MaxParallel: n(4)},
			Budget: &Budget{Tokens: n(1e6), Requests: n(1000), USD: usd(25.5), Period: PeriodWeek},
		}, ""},
		{"zeros mean no limit", Policy{Limits: &Limits{RPM: n(0)}, Budget: &Budget{USD: usd(0)}}, ""},
		{"largest", Policy{Limits: &Limits{RPM: n(MaxLimit), TPM: n(MaxLimit), MaxParallel: n(MaxLimit)},
			Budget: &Budget{Tokens: n(MaxLimit), Requests: n(MaxLimit), USD: usd(MaxBudgetUSD)}}, ""},
		{"empty period takes the default", Policy{Budget: &Budget{Period: ""}}, ""},

		{"no models", Policy{Models: []string{}}, "models"},
		{"too many models", Policy{Models: many(MaxModelPatterns + 1)}, "models"},
		{"negative rpm", Policy{Limits: &Limits{RPM: n(-1)}}, "limits.rpm"},
		{"huge tpm", Policy{Limits: &Limits{TPM: n(MaxLimit + 1)}}, "limits.tpm"},
		{"negative max_parallel", Policy{Limits: &Limits{MaxParallel: n(-5)}}, "limits.max_parallel"},
		{"huge budget tokens", Policy{Budget: &Budget{Tokens: n(math.MaxInt64)}}, "budget.tokens"},
		{"negative budget requests", Policy{Budget: &Budget{Requests: n(-1)}}, "budget.requests"},
		{"negative usd", Policy{Budget: &Budget{USD: usd(-0.01)}}, "budget.usd"},
		{"huge usd", Policy{Budget: &Budget{USD: usd(MaxBudgetUSD + 1)}}, "budget.usd"},
		{"NaN usd", Policy{Budget: &Budget{USD: usd(math.NaN())}}, "budget.usd"},
		{"infinite usd", Policy{Budget: &Budget{USD: usd(math.Inf(1))}}, "budget.usd"},
		{"bad period", Policy{Budget: &Budget{Period: "year"}}, "budget.period"},
	} {
		err := tc.p.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error about %s", tc.name, err, tc.want)
		}
	}
}

func TestValidModelPatterns(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		ok       bool
	}{
		{[]string{"*"}, true},
		{[]string{"gpt-4o", "gpt-4.1*", "meta-llama/*", "o?-mini", "gpt-[34]*", "claude-[^0-9]*"}, true},
		{[]string{strings.Repeat("m", MaxModelPatternLen)}, true},
		{make([]string, MaxModelPatterns), false}, // empty entries
		{nil, false},
		{[]string{}, false},
		{[]string{""}, false},
		{[]string{"gpt-4o", ""}, false},
		{[]string{strings.Repeat("m", MaxModelPatternLen+1)}, false},
		{[]string{"gpt\x01"}, false},
		{[]string{"gpt\n4"}, false},
		{[]string{"gpt\x7f"}, false},
		{[]string{"gpt-\xff"}, false},
		{[]string{"gpt-["}, false},
		{[]string{"gpt-[4"}, false},
		{[]string{"gpt-\\"}, false},
	} {
		if err := ValidModelPatterns(tc.patterns); (err == nil) != tc.ok {
			t.Errorf("ValidModelPatterns(%q) = %v, want ok %v", tc.patterns, err, tc.ok)
		}
	}
	full := make([]string, MaxModelPatterns)
	for i := range full {
		full[i] = "model-" + strings.Repeat("x", i)[:min(i, 100)]
	}
	if err := ValidModelPatterns(full); err != nil {
		t.Errorf("%d entries: %v", MaxModelPatterns, err)
	}
	if err := ValidModelPatterns(append(full, "one more")); err == nil {
		t.Errorf("%d entries accepted", MaxModelPatterns+1)
	}
}

func TestMatchModel(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		model    string
		want     bool
	}{
		// '*' matches '/' too: model names are not paths.
		{[]string{"meta-llama/*"}, "meta-llama/Llama-3.3-70B-Instruct", true},
		{[]string{"meta-llama/*"}, "meta-llama/sub/model", true},
		{[]string{"meta-llama/*"}, "meta-llama", false},
		{[]string{"meta-llama/*"}, "other/Llama-3", false},
		{[]string{"*"}, "gpt-4o", true},
		{[]string{"*"}, "meta-llama/Llama-3", true},
		{[]string{"*/*"}, "meta-llama/Llama-3", true},
		{[]string{"*/*"}, "gpt-4o", false},
		{[]string{"gpt-4.1*"}, "gpt-4.1", true},
		{[]string{"gpt-4.1*"}, "gpt-4.1-mini", true},
		{[]string{"gpt-4.1*"}, "gpt-4x1", false}, // '.' is a dot
		{[]string{"gpt-4.1*"}, "gpt-4o", false},
		{[]string{"gpt-4o-mini"}, "gpt-4o-mini", true},
		{[]string{"gpt-4o-mini"}, "gpt-4o-mini-2024-07-18", false},
		{[]string{"gpt-4o-mini"}, "gpt-4o", false},
		{[]string{"gpt-4o-mini"}, "GPT-4o-mini", false}, // case counts
		{[]string{"o?-mini"}, "o3-mini", true},
		{[]string{"o?-mini"}, "o-mini", false},
		{[]string{"o?-mini"}, "o10-mini", false},
		{[]string{"a?b"}, "a/b", true}, // '?' matches '/' too
		{[]string{"gpt-[34]*"}, "gpt-3.5-turbo", true},
		{[]string{"gpt-[34]*"}, "gpt-4o", true},
		{[]string{"gpt-[34]*"}, "gpt-5", false},
		{[]string{"o[0-9]-mini"}, "o4-mini", true},
		{[]string{"o[0-9]-mini"}, "ox-mini", false},
		{[]string{"claude-[^0-9]*"}, "claude-sonnet-4", true},
		{[]string{"claude-[^0-9]*"}, "claude-3-opus", false},
		// A name equal to a pattern matches it, glob characters and all.
		{[]string{"weird[1]"}, "weird[1]", true},
		{[]string{"weird[1]"}, "weird1", true},
		{[]string{"gpt-4o", "meta-llama/*"}, "meta-llama/x", true},
		{[]string{"gpt-4o", "meta-llama/*"}, "mistral/x", false},
		{nil, "gpt-4o", false},
	} {
		if got := MatchModel(tc.patterns, tc.model); got != tc.want {
			t.Errorf("MatchModel(%q, %q) = %v, want %v", tc.patterns, tc.model, got, tc.want)
		}
	}
}
