package aiproxy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aiproxy/aiproxy/usage"
)

// TestLongModelNameCutOnCharacterBoundary: a model name longer than the
// 128 bytes kept, whose cut falls inside a character, or that is not valid
// UTF-8 at all, is answered normally, JSON and stream alike, and counted
// under a valid name.
func TestLongModelNameCutOnCharacterBoundary(t *testing.T) {
	s := startSite(t, siteOptions{siteDir: "handle /metrics {\n\t\tmetrics\n\t}"})
	key := s.register("longname")
	a127 := strings.Repeat("a", 127)
	msg := `"messages":[{"role":"user","content":"a b"}]`
	for _, body := range []string{
		`{"model":"` + a127 + `é",` + msg + `}`,
		`{"model":"` + a127 + `é","stream":true,` + msg + `}`,
		`{"model":"` + a127 + "\xff" + `",` + msg + `}`, // raw invalid UTF-8
	} {
		code, out := s.post(key, "/v1/chat/completions", body)
		if code != 200 {
			t.Fatalf("%q: %d %s", body, code, out)
		}
		if !json.Valid(out) && !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
			t.Fatalf("%q: a cut answer: %s", body, out)
		}
	}
	rows := s.usage("user=longname")
	for _, r := range rows {
		if !utf8.ValidString(r.Model) || len(r.Model) > 128 {
			t.Errorf("a row's model %q is not valid UTF-8 of at most 128 bytes", r.Model)
		}
	}
	if got := s.usageFor("longname", a127); got.Requests != 3 {
		t.Fatalf("want 3 requests under %q, rows %+v", a127, rows)
	}
	_, _, metrics := s.request("GET", "/metrics", nil)
	if want := `aiproxy_requests_total{kind="chat",model="` + a127 + `",status="200",user="longname"} 3`; !strings.Contains(string(metrics), want) {
		t.Fatalf("metrics lack %s:\n%s", want, grepLines(metrics, "aiproxy_"))
	}
}

// TestModelNamesBoundedPerUserAndDay: a user's first 100 distinct models of
// a day get rows of their own; requests naming further models are counted
// under "(other)", and another user is not affected.
func TestModelNamesBoundedPerUserAndDay(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("curious")
	ask := func(key, model string) {
		t.Helper()
		if code, out := s.post(key, "/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`); code != 200 {
			t.Fatalf("%s: %d %s", model, code, out)
		}
	}
	for i := range usage.MaxModelsPerUser + 3 {
		ask(key, fmt.Sprintf("model-%d", i))
	}
	ask(key, "model-0")
	rows := s.usage("user=curious")
	if len(rows) != usage.MaxModelsPerUser+1 {
		t.Fatalf("%d rows, want %d models and %s", len(rows), usage.MaxModelsPerUser, usage.OtherModel)
	}
	if got := s.usageFor("curious", usage.OtherModel); got.Requests != 3 {
		t.Fatalf("%s counted %d requests, want 3", usage.OtherModel, got.Requests)
	}
	if got := s.usageFor("curious", "model-0"); got.Requests != 2 {
		t.Fatalf("model-0 counted %d requests, want 2", got.Requests)
	}
	ask(s.register("other"), fmt.Sprintf("model-%d", usage.MaxModelsPerUser))
	if got := s.usageFor("other", fmt.Sprintf("model-%d", usage.MaxModelsPerUser)); got.Requests != 1 {
		t.Fatalf("another user's model: %+v", got)
	}
}

// TestUsageCountsTheAnsweredModel: a request is counted under the model the
// provider answered with, not the alias the client asked for.
func TestUsageCountsTheAnsweredModel(t *testing.T) {
	dated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[],`+
			`"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	}))
	defer dated.Close()
	s := startSite(t, siteOptions{extra: "host dated.test {\n\t\t\tbase_url " + dated.URL + "\n\t\t\tkey k\n\t\t}"})
	key := s.register("aliased")
	code, _, out := s.request("POST", "/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[]}`),
		"Authorization", "Bearer "+key, "X-Host-Final", "dated.test", "Content-Type", "application/json")
	if code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	if rows := s.usage("user=aliased"); len(rows) != 1 || rows[0].Model != "gpt-4o-mini-2024-07-18" || rows[0].PromptTokens != 3 {
		t.Fatalf("rows %+v, want one of gpt-4o-mini-2024-07-18", rows)
	}
}
