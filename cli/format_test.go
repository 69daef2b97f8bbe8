package cli

import (
	"math/big"
	"testing"
)

func TestParseSite(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://localhost:8080", "http://localhost:8080"},
		{"https://gpt.example.com/", "https://gpt.example.com"},
		{"https://example.com/ai/", "https://example.com/ai"},
		{"gpt.example.com", "https://gpt.example.com"},
		{"localhost:8080", "http://localhost:8080"},
		{"127.0.0.1:9080", "http://127.0.0.1:9080"},
		{"[::1]:9080", "http://[::1]:9080"},
		{"10.0.0.5:8080", "https://10.0.0.5:8080"},
		{"", ""},
		{"ftp://example.com", ""},
		{"https://", ""},
		{"https://example.com/?x=1", ""},
	} {
		u, err := parseSite(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%q: want an error, got %s", tc.in, u)
		case tc.want != "" && (err != nil || u.String() != tc.want):
			t.Errorf("%q: got %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
}

func TestUSDTotal(t *testing.T) {
	sum := new(big.Rat)
	for _, c := range []string{"0.0000045", "", "0.00000225", "1.1", "0.000000001"} {
		addUSD(sum, c)
	}
	if got := showUSD(sum); got != "1.100006751" {
		t.Errorf("got %s", got)
	}
	if got := showUSD(new(big.Rat)); got != "" {
		t.Errorf("zero: got %q", got)
	}
	two := new(big.Rat)
	addUSD(two, "2")
	if got := showUSD(two); got != "2" {
		t.Errorf("whole: got %q", got)
	}
}

func TestShowPolicy(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	usd := 7.5
	for _, tc := range []struct{ got, want string }{
		{showLimits(nil), ""},
		{showLimits(&limits{RPM: n(60), MaxParallel: n(0)}), "rpm 60, parallel 0"},
		{showBudget(nil), ""},
		{showBudget(&budget{USD: &usd, Requests: n(100), Period: "day"}), "$7.5, 100 requests / day"},
		{showBudget(&budget{Period: "total"}), "/ total"},
		{cell("llama\x1b[31m"), `"llama\x1b[31m"`},
		{cell("a\tb"), `"a\tb"`},
		{cell("gpt 4"), "gpt 4"},
		{cell(""), "-"},
		{showDuration(0.254), "250us"},
		{showDuration(85.402), "85ms"},
		{showDuration(2412.731), "2.4s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
