package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/internal/storetest"
	"github.com/aiproxy/aiproxy/keystore"
)

// requestJSON is a request log record as clients decode it: exactly these
// fields, which a dashboard and the CLI rely on.
type requestJSON struct {
	Time             string       `json:"time"`
	User             string       `json:"user"`
	Model            string       `json:"model"`
	Host             string       `json:"host"`
	Path             string       `json:"path"`
	Status           int          `json:"status"`
	PromptTokens     int64        `json:"prompt_tokens"`
	CompletionTokens int64        `json:"completion_tokens"`
	CostUSD          *json.Number `json:"cost_usd"`
	DurationMS       float64      `json:"duration_ms"`
	Stream           bool         `json:"stream"`
}

// withRequestLog gives env's handler a request log of size over its store,
// recording each read's user and limit.
func withRequestLog(env *testEnv, size int) *[]keystore.RequestQuery {
	var reads []keystore.RequestQuery
	env.h.RequestLogSize = size
	env.h.Requests = func(ctx context.Context, user string, limit int) ([]keystore.RequestRecord, error) {
		q := keystore.RequestQuery{User: user, Limit: limit, Scan: size}
		reads = append(reads, q)
		return env.store.RecentRequests(ctx, q)
	}
	return &reads
}

func TestRESTRequests(t *testing.T) {
	env := newTestEnv(t)
	reads := withRequestLog(env, 50)
	at := time.Date(2026, 12, 1, 2, 3, 4, 123_000_000, time.UTC)
	err := env.store.AppendRequests(t.Context(), 50, []keystore.RequestRecord{
		{Time: at.Add(-time.Second), User: "ben", Model: "-", Host: "api.groq.com", Path: "/v1/models", Status: 401,
			Duration: 2 * time.Millisecond},
		{Time: at, User: "ann", Model: "gpt-4o-mini", Host: "api.openai.com", Path: "/v1/chat/completions", Status: 200,
			PromptTokens: 9, CompletionTokens: 4, CostNanoUSD: 3750, Duration: 12500 * time.Microsecond, Stream: true},
	})
	if err != nil {
		t.Fatal(err)
	}

	out := decode[struct{ Data []requestJSON }](t, env.rest(t, "GET", "/admin/requests", ""), http.StatusOK)
	if len(out.Data) != 2 {
		t.Fatalf("data = %+v, want 2 records", out.Data)
	}
	ann, ben := out.Data[0], out.Data[1]
	if ann.Time != "2026-12-01T02:03:04.123Z" || ann.User != "ann" || ann.Model != "gpt-4o-mini" ||
		ann.Host != "api.openai.com" || ann.Path != "/v1/chat/completions" || ann.Status != 200 ||
		ann.PromptTokens != 9 || ann.CompletionTokens != 4 || ann.CostUSD == nil || ann.CostUSD.String() != "0.00000375" ||
		ann.DurationMS != 12.5 || !ann.Stream {
		t.Errorf("newest = %+v", ann)
	}
	if ben.Time != "2026-12-01T02:03:03.123Z" || ben.User != "ben" || ben.Status != 401 || ben.CostUSD != nil ||
		ben.DurationMS != 2 || ben.Stream {
		t.Errorf("oldest = %+v", ben)
	}

	out = decode[struct{ Data []requestJSON }](t, env.rest(t, "GET", "/admin/requests?user=ben&limit=5", ""), http.StatusOK)
	if len(out.Data) != 1 || out.Data[0].User != "ben" {
		t.Errorf("ben's = %+v", out.Data)
	}
	decode[struct{ Data []requestJSON }](t, env.rest(t, "GET", "/admin/requests?limit=1000", ""), http.StatusOK)
	want := []keystore.RequestQuery{
		{Limit: 50, Scan: 50},             // the default, 100, within the log's size
		{User: "ben", Limit: 5, Scan: 50}, // as asked
		{Limit: 50, Scan: 50},             // more than the log holds: all of it
	}
	if len(*reads) != len(want) {
		t.Fatalf("reads = %+v, want %+v", *reads, want)
	}
	for i := range want {
		if (*reads)[i] != want[i] {
			t.Errorf("read %d = %+v, want %+v", i, (*reads)[i], want[i])
		}
	}

	for target, code := range map[string]string{
		"/admin/requests?limit=0":     "invalid_limit",
		"/admin/requests?limit=-1":    "invalid_limit",
		"/admin/requests?limit=ten":   "invalid_limit",
		"/admin/requests?limit=1.5":   "invalid_limit",
		"/admin/requests?user=a%20b":  "invalid_name",
		"/admin/requests?user=a%2Fb":  "invalid_name",
		"/admin/requests?limit=1e999": "invalid_limit",
	} {
		wantError(t, env.rest(t, "GET", target, ""), http.StatusBadRequest, code)
	}
	wantError(t, env.rest(t, "POST", "/admin/requests", ""), http.StatusMethodNotAllowed, "method_not_allowed")

	env.store.FailNext("RecentRequests", 1, storetest.ErrOutage)
	wantError(t, env.rest(t, "GET", "/admin/requests", ""), http.StatusServiceUnavailable, "store_unavailable")
}

// TestRESTRequestsOff: with the request log off, the route says so.
func TestRESTRequestsOff(t *testing.T) {
	env := newTestEnv(t)
	e := wantError(t, env.rest(t, "GET", "/admin/requests", ""), http.StatusNotFound, "request_log_off")
	if want := "the request log is off"; len(e.Error.Message) < len(want) || e.Error.Message[:len(want)] != want {
		t.Errorf("message %q", e.Error.Message)
	}
	wantError(t, env.restAuth(t, "GET", "/admin/requests", "", ""), http.StatusUnauthorized, "invalid_admin_token")
}
