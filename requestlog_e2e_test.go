package aiproxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// loggedRequest is one record of GET /admin/requests, as clients decode it.
type loggedRequest struct {
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

var requestTimePattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// requestLogAt reads GET /admin/requests?query from the gateway at base.
func requestLogAt(t *testing.T, client *http.Client, base, query string) []loggedRequest {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/admin/requests?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Data []loggedRequest `json:"data"`
	}
	dec := json.NewDecoder(res.Body)
	dec.DisallowUnknownFields() // the shape is a contract
	if err := dec.Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /admin/requests?%s: %d %v", query, res.StatusCode, err)
	}
	for _, r := range out.Data {
		if !requestTimePattern.MatchString(r.Time) {
			t.Errorf("time %q is not UTC to the millisecond", r.Time)
		}
	}
	return out.Data
}

func (s *site) requestLog(query string) []loggedRequest {
	s.t.Helper()
	return requestLogAt(s.t, s.client, siteURL, query)
}

// users lists the records' users, newest first.
func logUsers(recs []loggedRequest) string {
	var names []string
	for _, r := range recs {
		names = append(names, r.User)
	}
	return strings.Join(names, " ")
}

// TestRequestLog: proxied requests, JSON and SSE, show in GET
// /admin/requests with what they were, newest first, by user, within the
// log's size, and from the store once written, on both stores.
func TestRequestLog(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := startSite(t, siteOptions{store: backend, extra: "request_log 4"})
			ann, ben := s.register("ann"), s.register("ben")
			upHost := mustHost(t, s.upstream.URL)

			// A query is no part of the logged path.
			code, _, _ := s.request("POST", "/v1/chat/completions?trace=1", strings.NewReader(chatBody("gpt-4o-mini", "log me please")),
				"Authorization", "Bearer "+ann, "Content-Type", "application/json")
			if code != 200 {
				t.Fatalf("chat: %d", code)
			}
			if code, _ := s.post(ben, "/v1/chat/completions", chatBody("gpt-4o-mini", "stream me", `"stream":true`)); code != 200 {
				t.Fatalf("stream: %d", code)
			}
			if code, _ := s.post(ann, "/v1/chat/completions", chatBody(mockopenai.ModelError500, "fail")); code != 500 {
				t.Fatalf("error model: %d", code)
			}

			recs := s.requestLog("")
			if got := logUsers(recs); got != "ann ben ann" {
				t.Fatalf("users newest first: %q, want ann ben ann", got)
			}
			failed, stream, plain := recs[0], recs[1], recs[2]
			u := mockopenai.ExpectedUsage("log me please")
			if plain.Model != "gpt-4o-mini" || plain.Host != upHost || plain.Path != "/v1/chat/completions" ||
				plain.Status != 200 || plain.PromptTokens != u.PromptTokens || plain.CompletionTokens != u.CompletionTokens ||
				plain.CostUSD == nil || plain.DurationMS <= 0 || plain.Stream {
				t.Errorf("JSON chat: %+v", plain)
			}
			u = mockopenai.ExpectedUsage("stream me")
			if stream.Status != 200 || !stream.Stream || stream.PromptTokens != u.PromptTokens ||
				stream.CompletionTokens != u.CompletionTokens || stream.CostUSD == nil {
				t.Errorf("stream: %+v", stream)
			}
			if failed.Status != 500 || failed.Model != "-" || failed.CostUSD != nil || failed.Stream {
				t.Errorf("failed: %+v", failed)
			}
			for i := 1; i < len(recs); i++ {
				if recs[i].Time > recs[i-1].Time {
					t.Errorf("record %d is newer than the one before: %s > %s", i, recs[i].Time, recs[i-1].Time)
				}
			}
			if got := logUsers(s.requestLog("user=ann")); got != "ann ann" {
				t.Errorf("ann's: %q", got)
			}
			if got := logUsers(s.requestLog("user=ann&limit=1")); got != "ann" {
				t.Errorf("ann's newest: %q", got)
			}

			// Beyond its size, the log keeps the newest.
			for range 3 {
				if code, _ := s.chat(ben); code != 200 {
					t.Fatalf("chat: %d", code)
				}
			}
			if got := logUsers(s.requestLog("limit=100")); got != "ben ben ben ann" {
				t.Errorf("capped log: %q", got)
			}
			// A reload writes the queue; the new config reads the store.
			s.load(siteOptions{extra: "request_log 4\n\t\tmax_attempts 3"})
			if got := logUsers(s.requestLog("")); got != "ben ben ben ann" {
				t.Errorf("stored log: %q", got)
			}
			if got := logUsers(s.requestLog("user=ann")); got != "ann" {
				t.Errorf("ann's stored: %q", got)
			}
		})
	}
}

func mustHost(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestRequestLogOff: request_log off writes nothing, and the route says
// the log is off.
func TestRequestLogOff(t *testing.T) {
	s := startSite(t, siteOptions{extra: "request_log off"})
	key := s.register("ann")
	if code, _ := s.chat(key); code != 200 {
		t.Fatalf("chat: %d", code)
	}
	code, _, body := s.request("GET", "/admin/requests", nil, "Authorization", "Bearer "+adminToken)
	if c, msg := apiError(t, body); code != 404 || c != "request_log_off" || !strings.Contains(msg, "request_log") {
		t.Errorf("GET /admin/requests: %d %s", code, body)
	}
	// Turned on over the same store: nothing was written while it was off.
	s.load(siteOptions{extra: "request_log 10"})
	if recs := s.requestLog(""); len(recs) != 0 {
		t.Errorf("records written while off: %+v", recs)
	}
}

// TestRequestLogAcrossTwoInstances: two gateways on one Redis store write
// one request log, which either shows whole.
func TestRequestLogAcrossTwoInstances(t *testing.T) {
	up := mockopenai.New(t, upstreamKey)
	store := storeLine(t, "redis")
	sites := []string{"http://localhost:9080", "http://localhost:9081"}
	config := func(grace string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "{\n\tskip_install_trust\n\tadmin localhost:2999\n\thttp_port 9080\n\thttps_port 9443\n\tgrace_period %s\n}\n", grace)
		for _, site := range sites {
			fmt.Fprintf(&b, "%s {\n\taiproxy {\n\t\tadmin_token %s\n\t\tupstream %s %s\n\t\t%s\n\t}\n}\n",
				site, adminToken, up.URL, upstreamKey, store)
		}
		return b.String()
	}
	tester := caddytest.NewTester(t)
	tester.InitServer(config("1ns"), "caddyfile")
	a := &site{t: t, upstream: up, client: &http.Client{Timeout: 10 * time.Second}}
	keys := map[string]string{"ann": a.register("ann"), "ben": a.register("ben")}

	// ann through the first instance, ben through the second, in turn.
	for i := range 6 {
		user := []string{"ann", "ben"}[i%2]
		req, _ := http.NewRequest("POST", sites[i%2]+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "two instances")))
		req.Header.Set("Authorization", "Bearer "+keys[user])
		req.Header.Set("Content-Type", "application/json")
		res, err := a.client.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("request via %s: %v %v", sites[i%2], res, err)
		}
		res.Body.Close()
	}
	// A reload writes both instances' queues, as a shutdown would.
	tester.InitServer(config("2ns"), "caddyfile")
	for _, base := range sites {
		recs := requestLogAt(t, a.client, base, "")
		if len(recs) != 6 || strings.Count(logUsers(recs), "ann") != 3 {
			t.Errorf("%s: %q, want 3 of ann's and 3 of ben's", base, logUsers(recs))
		}
		if got := logUsers(requestLogAt(t, a.client, base, "user=ben")); got != "ben ben ben" {
			t.Errorf("%s: ben's %q", base, got)
		}
	}
}
