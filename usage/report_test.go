package usage

import (
	"context"
	"encoding/json"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/keystore"
)

// TestCSVText: only what a spreadsheet would run as a formula gets the '
// in front; names that merely contain or start with a dash stay readable.
func TestCSVText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"gpt-4o-mini", "gpt-4o-mini"},
		{"-", "-"}, // failed requests' model
		{"(none)", "(none)"},
		{"-1", "-1"},
		{"-0.5", "-0.5"},
		{"janlay@example.com", "janlay@example.com"},
		{"=1+2", "'=1+2"},
		{"+1", "'+1"},
		{"@SUM(A1:A2)", "'@SUM(A1:A2)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"-1+2", "'-1+2"},
		{"-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"},
		{"-a", "'-a"},
		{"--", "'--"},
		{"-1.2.3", "'-1.2.3"},
		{"-.", "'-."},
	} {
		if got := csvText(c.in); got != c.want {
			t.Errorf("csvText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestUSDText: nano-dollars shown as exact dollars.
func TestUSDText(t *testing.T) {
	for _, c := range []struct {
		nano int64
		want string
	}{
		{0, ""},
		{-5, ""},
		{1, "0.000000001"},
		{150000, "0.00015"},
		{1e9, "1"},
		{12_500_000_000, "12.5"},
		{math.MaxInt64, "9223372036.854775807"},
	} {
		if got := usdText(c.nano); got != c.want {
			t.Errorf("usdText(%d) = %q, want %q", c.nano, got, c.want)
		}
	}
}

// serveRows answers a report of rows in format ("json" or "csv").
func serveRows(t *testing.T, format string, rows ...keystore.UsageRow) string {
	t.Helper()
	query := func(context.Context, keystore.UsageFilter) ([]keystore.UsageRow, error) { return rows, nil }
	w := httptest.NewRecorder()
	Serve(w, httptest.NewRequest("GET", "/admin/usage?format="+format, nil), query, Owner{}, time.Now())
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	return w.Body.String()
}

var costRows = []keystore.UsageRow{
	{UsageKey: keystore.UsageKey{User: "ann", UserID: "0123456789abcdef", Model: "gpt-4o-mini", Date: "2030-01-02"},
		UsageCounts: keystore.UsageCounts{Requests: 2, PromptTokens: 1000, TotalTokens: 1000, CostNanoUSD: 150000}},
	{UsageKey: keystore.UsageKey{User: "ann", UserID: "0123456789abcdef", Model: "local", Date: "2030-01-02"},
		UsageCounts: keystore.UsageCounts{Requests: 1}},
}

// TestReportJSONCost: a JSON row shows what its requests cost in dollars,
// cost_usd, and only when they cost something; never the stored
// nano-dollars.
func TestReportJSONCost(t *testing.T) {
	body := serveRows(t, "json", costRows...)
	want := `{"data":[` +
		`{"user":"ann","user_id":"0123456789abcdef","model":"gpt-4o-mini","date":"2030-01-02","requests":2,"prompt_tokens":1000,` +
		`"completion_tokens":0,"total_tokens":1000,"cached_tokens":0,"reasoning_tokens":0,"estimated_requests":0,"cost_usd":0.00015},` +
		`{"user":"ann","user_id":"0123456789abcdef","model":"local","date":"2030-01-02","requests":1,"prompt_tokens":0,` +
		`"completion_tokens":0,"total_tokens":0,"cached_tokens":0,"reasoning_tokens":0,"estimated_requests":0}]}` + "\n"
	if body != want {
		t.Errorf("JSON report:\n%s\nwant\n%s", body, want)
	}
	var parsed struct {
		Data []struct {
			CostUSD float64 `json:"cost_usd"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &parsed); err != nil || parsed.Data[0].CostUSD != 0.00015 {
		t.Errorf("cost_usd read back as %+v, %v; want 0.00015", parsed, err)
	}
}

// TestReportCSVCost: CSV gains a last column, cost_usd, empty when the
// requests cost nothing.
func TestReportCSVCost(t *testing.T) {
	want := "date,user,user_id,model,requests,prompt_tokens,completion_tokens,total_tokens,cached_tokens,reasoning_tokens,estimated_requests,cost_usd\n" +
		"2030-01-02,ann,0123456789abcdef,gpt-4o-mini,2,1000,0,1000,0,0,0,0.00015\n" +
		"2030-01-02,ann,0123456789abcdef,local,1,0,0,0,0,0,0,\n"
	if body := serveRows(t, "csv", costRows...); body != want {
		t.Errorf("CSV report:\n%s\nwant\n%s", body, want)
	}
}
