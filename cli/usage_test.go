package cli_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

func TestUsageAfterProxiedRequests(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	alice := strings.TrimSpace(s.runOK("users", "add", "alice").stdout)
	bob := strings.TrimSpace(s.runOK("users", "add", "bob").stdout)
	prompts := map[string][]string{alice: {"one two three", "four five"}, bob: {"six"}}
	want := map[string]mockopenai.Usage{}
	for key, list := range prompts {
		for _, p := range list {
			if code := s.chat(key, p); code != http.StatusOK {
				t.Fatalf("chat: %d", code)
			}
			u := mockopenai.ExpectedUsage(p)
			w := want[key]
			w.PromptTokens += u.PromptTokens
			w.CompletionTokens += u.CompletionTokens
			w.TotalTokens += u.TotalTokens
			want[key] = w
		}
	}

	// The table: a row per user and model of the day, then the total.
	r := s.runOK("usage")
	rows := lines(r.stdout)
	if len(rows) != 4 || !strings.HasPrefix(rows[0], "DATE ") || !strings.HasPrefix(rows[3], "total ") {
		t.Fatalf("want a header, 2 rows and a total: %v", r)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	a := strings.Fields(rows[1])
	wa := want[alice]
	if a[0] != today || a[1] != "alice" || !strings.HasPrefix(a[2], "gpt-4o-mini") || a[3] != "2" ||
		a[4] != itoa(wa.PromptTokens) || a[5] != itoa(wa.CompletionTokens) || a[6] != itoa(wa.TotalTokens) {
		t.Errorf("alice's row %q, want 2 requests and %+v", rows[1], wa)
	}
	total := strings.Fields(rows[3])
	if total[1] != "-" || total[3] != "3" || total[6] != itoa(wa.TotalTokens+want[bob].TotalTokens) {
		t.Errorf("total %q", rows[3])
	}

	// --user, --from and --to go to the API.
	r = s.runOK("usage", "--user", "bob", "--from", today, "--to", today)
	if rows := lines(r.stdout); len(rows) != 2 || !strings.Contains(rows[1], " bob ") {
		t.Errorf("--user bob: %v", r)
	}
	r = s.runOK("usage", "--from", "2020-01-01", "--to", "2020-01-31")
	if r.stdout != "" || !strings.Contains(r.stderr, "No usage") {
		t.Errorf("an empty range: %v", r)
	}

	// --json and --csv are the site's reports.
	r = s.runOK("usage", "--json")
	var report struct {
		Data []struct {
			User     string `json:"user"`
			Requests int64  `json:"requests"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || len(report.Data) != 2 || report.Data[0].Requests != 2 {
		t.Errorf("--json: %v (%v)", r, err)
	}
	r = s.runOK("usage", "--csv", "--user", "alice")
	if rows := lines(r.stdout); len(rows) != 2 || !strings.HasPrefix(rows[0], "date,user,user_id,model,requests") ||
		!strings.HasPrefix(rows[1], today+",alice,") {
		t.Errorf("--csv: %v", r)
	}

	// Bad input: the API's message; contradicting flags: a usage error.
	wantCode(t, s.run("usage", "--from", "yesterday"), 1, `"yesterday" is not a date like`, "400")
	wantCode(t, s.run("usage", "--from", "2026-02-01", "--to", "2026-01-01"), 1, "is after to")
	wantCode(t, s.run("usage", "--csv", "--json"), 2, "not both")
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
