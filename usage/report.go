package usage

// report.go: usage statistics queries over HTTP, for the admin API (GET
// /admin/usage, any user) and self-service (GET /me/usage, the caller's
// own rows), in JSON or CSV.

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
)

// defaultDays is the range queried when from is not given: the last 30 days.
const defaultDays = 30

// ErrBusy is what a QueryFunc returns when too many reports run already.
var ErrBusy = errors.New("too many usage reports running")

// Owner is one user identity: a name and the ID of the user who has it now.
type Owner struct{ Name, ID string }

// QueryFunc returns the usage rows matching a filter, sorted by date, user
// and model.
type QueryFunc func(ctx context.Context, f keystore.UsageFilter) ([]keystore.UsageRow, error)

// Serve answers one query. Query parameters: user, model, from and to
// (YYYY-MM-DD, UTC, inclusive; default: the 30 days up to today) and
// format (json, the default, or csv). A non-zero only pins the user, whatever
// the user parameter says.
func Serve(w http.ResponseWriter, r *http.Request, query QueryFunc, only Owner, now time.Time) {
	f, err := ParseFilter(r.URL.Query(), now)
	if err != nil {
		apierror.Write(w, http.StatusBadRequest, apierror.TypeInvalidRequest, "invalid_usage_query", err.Error())
		return
	}
	if only != (Owner{}) {
		f.User, f.UserID = only.Name, only.ID
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		apierror.Write(w, http.StatusBadRequest, apierror.TypeInvalidRequest, "invalid_usage_query",
			fmt.Sprintf("format %q: use json or csv", format))
		return
	}
	rows, err := query(r.Context(), f)
	if errors.Is(err, ErrBusy) {
		w.Header().Set("Retry-After", "2")
		apierror.Write(w, http.StatusTooManyRequests, apierror.TypeRateLimit, "rate_limit_exceeded",
			"too many usage reports are running on this gateway; try again in a few seconds")
		return
	}
	if err != nil {
		apierror.Write(w, http.StatusServiceUnavailable, apierror.TypeServer, "store_unavailable",
			"usage statistics are unavailable: the store cannot be reached; try again shortly")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if format == "csv" {
		writeCSV(w, rows)
		return
	}
	writeJSON(w, rows)
}

// writeJSON sends {"data":[rows...]} a row at a time: a year of a team's
// usage is tens of megabytes of JSON, which need not sit in memory whole.
func writeJSON(w http.ResponseWriter, rows []keystore.UsageRow) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString(`{"data":[`)
	for i, r := range rows {
		if i > 0 {
			bw.WriteByte(',')
		}
		raw, _ := json.Marshal(reportRow{UsageRow: r, CostUSD: json.Number(usdText(r.CostNanoUSD))}) // strings and numbers: cannot fail
		bw.Write(raw)
	}
	bw.WriteString("]}\n")
	_ = bw.Flush()
}

// reportRow is a usage row as reports show it: the stored counters, with
// the cost in US dollars in place of nano-dollars.
type reportRow struct {
	keystore.UsageRow
	// CostNanoUSD hides the stored counter of that name, which is never
	// set here: a report shows CostUSD.
	CostNanoUSD *struct{} `json:"cost_nano_usd,omitempty"`
	// CostUSD is what the row's requests cost in US dollars, exactly, as
	// a JSON number; absent when they cost nothing or had no price.
	CostUSD json.Number `json:"cost_usd,omitempty"`
}

// USD is nano-dollars as exact US dollars, a JSON number; "" for 0 (and
// less), which omitempty leaves out.
func USD(nano int64) json.Number { return json.Number(usdText(nano)) }

// usdText writes nano-dollars as exact US dollars, without trailing zeros
// or an exponent: 150000 is "0.00015"; 0 (and less) is "".
func usdText(nano int64) string {
	if nano <= 0 {
		return ""
	}
	frac := strings.TrimRight(fmt.Sprintf("%09d", nano%1e9), "0")
	if frac == "" {
		return strconv.FormatInt(nano/1e9, 10)
	}
	return strconv.FormatInt(nano/1e9, 10) + "." + frac
}

// ParseFilter reads user, model, from and to from query parameters.
func ParseFilter(q url.Values, now time.Time) (keystore.UsageFilter, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	to, err := parseDate(q.Get("to"), today)
	if err != nil {
		return keystore.UsageFilter{}, fmt.Errorf("to: %v", err)
	}
	from, err := parseDate(q.Get("from"), to.AddDate(0, 0, -(defaultDays-1)))
	if err != nil {
		return keystore.UsageFilter{}, fmt.Errorf("from: %v", err)
	}
	switch days := int(to.Sub(from).Hours()/24) + 1; {
	case days < 1:
		return keystore.UsageFilter{}, fmt.Errorf("from %s is after to %s", from.Format(time.DateOnly), to.Format(time.DateOnly))
	case days > keystore.MaxUsageRangeDays:
		return keystore.UsageFilter{}, fmt.Errorf("the range spans %d days; at most %d", days, keystore.MaxUsageRangeDays)
	}
	return keystore.UsageFilter{
		User:  q.Get("user"),
		Model: q.Get("model"),
		From:  from.Format(time.DateOnly),
		To:    to.Format(time.DateOnly),
	}, nil
}

func parseDate(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date like 2026-11-27", s)
	}
	return t, nil
}

// csvHeader names the columns, as the JSON fields are named.
var csvHeader = []string{"date", "user", "user_id", "model", "requests", "prompt_tokens", "completion_tokens",
	"total_tokens", "cached_tokens", "reasoning_tokens", "estimated_requests", "cost_usd"}

func writeCSV(w http.ResponseWriter, rows []keystore.UsageRow) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	for _, r := range rows {
		_ = cw.Write([]string{r.Date, csvText(r.User), r.UserID, csvText(r.Model), i(r.Requests), i(r.PromptTokens), i(r.CompletionTokens),
			i(r.TotalTokens), i(r.CachedTokens), i(r.ReasoningTokens), i(r.EstimatedRequests), usdText(r.CostNanoUSD)})
	}
	cw.Flush()
}

// csvText defuses a value a spreadsheet would run as a formula (model names
// come from clients) by putting a ' in front: one that starts with =, +, @,
// a tab or a carriage return, or with - unless it is a lone "-" or a plain
// negative number such as "-1" or "-0.5", which spreadsheets show as they
// are. "gpt-4" and "-" stay as they are; "-1+2" and "-cmd|..." do not.
func csvText(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '@', '\t', '\r':
		return "'" + s
	case '-':
		if s != "-" && !isDecimal(s[1:]) {
			return "'" + s
		}
	}
	return s
}

// isDecimal reports whether s is digits with at most one '.' among them.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for _, c := range []byte(s) {
		switch {
		case '0' <= c && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
