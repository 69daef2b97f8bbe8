package aiproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
	"github.com/aiproxy/aiproxy/internal/netfault"
)

// failingProvider is a provider in front of a mock: it answers status
// (with Retry-After when asked) to requests with key, or to all when key
// is "", and passes the others on to the mock. It counts what it refused.
func failingProvider(t *testing.T, up *mockopenai.Server, key string, status int, retryAfter string) (*httptest.Server, *atomic.Int64) {
	target, _ := url.Parse(up.URL)
	pass := httputil.NewSingleHostReverseProxy(target)
	var refused atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key == "" || r.Header.Get("Authorization") == "Bearer "+key {
			refused.Add(1)
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"provider says %d","type":"server_error","param":null,"code":"failing_%d"}}`, status, status)
			return
		}
		pass.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &refused
}

// TestRateLimitedKeyRests: a host with a key the provider rate-limits and a
// good one: every request succeeds, and the limited key is tried once in
// its rest period (the provider's Retry-After), not once a request.
func TestRateLimitedKeyRests(t *testing.T) {
	s := startSite(t, siteOptions{})
	limited, refused := failingProvider(t, s.upstream, "sk-limited", http.StatusTooManyRequests, "60")
	s.load(siteOptions{extra: fmt.Sprintf("host keys.test {\n\t\t\tbase_url %s\n\t\t\tkey sk-limited %s\n\t\t}", limited.URL, upstreamKey)})
	key := s.register("ann")
	for i := range 10 {
		code, _, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi", `"stream":true`)),
			"Authorization", "Bearer "+key, "Content-Type", "application/json", "X-Host-Final", "keys.test")
		if code != 200 || !strings.Contains(string(out), "[DONE]") {
			t.Fatalf("request %d: %d %s", i, code, out)
		}
	}
	if n := refused.Load(); n != 1 {
		t.Fatalf("the rate-limited key was tried %d times in its rest period, want once", n)
	}
	if u := s.usageFor("ann", "gpt-4o-mini"); u.Requests != 10 {
		t.Fatalf("usage %+v, want one request per client request", u)
	}

	// The admin sees the resting key, why, and until when; restoring the
	// host's keys puts it back in use.
	_, hosts := s.adminJSON("GET", "/admin/hosts", nil)
	var state map[string]any
	for _, h := range hosts["data"].([]any) {
		host := h.(map[string]any)
		if host["name"] != "keys.test" {
			continue
		}
		for _, k := range host["keys"].([]any) {
			if st, ok := k.(map[string]any)["state"].(map[string]any); ok {
				state = st
			}
		}
	}
	if state == nil || state["status"] != "resting" || state["reason"] != "429" || state["errors"] != 1.0 || state["until"] == nil {
		t.Fatalf("key state in GET /admin/hosts: %v", hosts)
	}
	if code, out := s.adminJSON("POST", "/admin/hosts/keys.test/restore", nil); code != 200 || out["restored"] != 1.0 {
		t.Fatalf("restore: %d %v", code, out)
	}
	for range 2 {
		s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")),
			"Authorization", "Bearer "+key, "Content-Type", "application/json", "X-Host-Final", "keys.test")
	}
	if n := refused.Load(); n != 2 {
		t.Fatalf("after restoring, the key was tried %d times in all, want 2", n)
	}
}

// TestFailingHostFallsBack: a host answering 500 for a model another host
// serves too: every request succeeds through the other, JSON and streams;
// when every try fails, the client gets the last provider error as it was.
func TestFailingHostFallsBack(t *testing.T) {
	s := startSite(t, siteOptions{})
	broken, refused := failingProvider(t, s.upstream, "", http.StatusInternalServerError, "")
	backup := mockopenai.New(t, "sk-backup")
	s.load(siteOptions{extra: fmt.Sprintf(`host broken.test {
			base_url %s
			key sk-broken
			models llama-* guard-*
		}
		host backup.test {
			base_url %s
			key sk-backup
			models llama-*
		}`, broken.URL, backup.URL)})
	key := s.register("ann")
	for i, extra := range [][]string{nil, {`"stream":true`}, nil} {
		code, out := s.post(key, "/v1/chat/completions", chatBody("llama-2-7b", "fall back", extra...))
		if code != 200 {
			t.Fatalf("request %d: %d %s", i, code, out)
		}
	}
	if refused.Load() != 3 || len(backup.Requests()) != 3 { // equal patterns: the first host first
		t.Fatalf("broken host tried %d times, backup %d; want 3 and 3", refused.Load(), len(backup.Requests()))
	}
	if u := s.usageFor("ann", "llama-2-7b"); u.Requests != 3 {
		t.Fatalf("usage %+v, want 3 requests", u)
	}

	// Only the broken host serves this one: its error, untouched.
	code, hdr, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("guard-1", "no luck")),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	if c, _ := apiError(t, out); code != 500 || c != "failing_500" || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("last error: %d %v %s", code, hdr, out)
	}
}

// TestStreamNotRetriedAfterItStarted: a provider that fails mid-stream is
// not asked again: the client has part of the answer already.
func TestStreamNotRetriedAfterItStarted(t *testing.T) {
	s := startSite(t, siteOptions{})
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection is cut
	}))
	defer cut.Close()
	backup := withBackupHost(t, s, cut.URL)
	key := s.register("ann")
	req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(chatBody("llama-2-7b", "hi", `"stream":true`)))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body) // cut short, as the provider's was
	res.Body.Close()
	if !strings.Contains(string(out), "par") {
		t.Fatalf("the started stream did not reach the client: %s", out)
	}
	if n := len(backup.Requests()); n != 0 {
		t.Fatalf("a started stream was tried again: the backup got %d requests", n)
	}
}

// TestUnreachableHostFallsBack: a host that cannot be reached is passed
// over for the next one serving the model, and the client never sees 502.
func TestUnreachableHostFallsBack(t *testing.T) {
	s := startSite(t, siteOptions{})
	port, err := netfault.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	backup := withBackupHost(t, s, fmt.Sprintf("http://127.0.0.1:%d", port))
	key := s.register("ann")
	if code, out := s.post(key, "/v1/chat/completions", chatBody("llama-3.1-8b", "anyone there")); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	if len(backup.Requests()) != 1 {
		t.Fatal("the backup host was not tried")
	}
}

// TestRefusedKeySetAside: a key the provider refuses (401) is set aside
// after its first refusal: later requests go to the host's other key, and
// the admin sees why.
func TestRefusedKeySetAside(t *testing.T) {
	s := startSite(t, siteOptions{})
	refusing, refused := failingProvider(t, s.upstream, "sk-revoked", http.StatusUnauthorized, "")
	s.load(siteOptions{extra: fmt.Sprintf("host keys.test {\n\t\t\tbase_url %s\n\t\t\tkey sk-revoked %s\n\t\t}", refusing.URL, upstreamKey)})
	key := s.register("ann")
	failed := 0
	for range 6 {
		code, _, _ := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")),
			"Authorization", "Bearer "+key, "Content-Type", "application/json", "X-Host-Final", "keys.test")
		if code != 200 {
			failed++
		}
	}
	if refused.Load() > 1 || failed > 1 {
		t.Fatalf("the refused key was tried %d times (%d requests failed), want at most once", refused.Load(), failed)
	}
	_, hosts := s.adminJSON("GET", "/admin/hosts", nil)
	if !strings.Contains(fmt.Sprint(hosts), "status:set_aside") && refused.Load() == 1 {
		t.Fatalf("GET /admin/hosts does not show the key set aside: %v", hosts)
	}
}

// withBackupHost loads the site with two hosts serving llama-*: first the
// one at url (key sk-broken), then a mock, returned, as its backup.
func withBackupHost(t *testing.T, s *site, url string) *mockopenai.Server {
	t.Helper()
	backup := mockopenai.New(t, "sk-backup")
	s.load(siteOptions{extra: fmt.Sprintf(`host broken.test {
			base_url %s
			key sk-broken
			models llama-*
		}
		host backup.test {
			base_url %s
			key sk-backup
			models llama-*
		}`, url, backup.URL)})
	return backup
}
