package aiproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// TestMetricsTwoSitesPerUserOnAndOff: one config may hold a site with
// metrics_per_user on and one with it off; both count into the same
// counters, the second with an empty user label.
func TestMetricsTwoSitesPerUserOnAndOff(t *testing.T) {
	up := mockopenai.New(t, upstreamKey)
	tester := caddytest.NewTester(t)
	tester.InitServer(fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
http://localhost:9080 {
	aiproxy {
		admin_token %[1]s
		upstream %[2]s %[3]s
		store file %[4]s
	}
}
http://localhost:9081 {
	aiproxy {
		admin_token %[1]s
		upstream %[2]s %[3]s
		store file %[5]s
		metrics_per_user off
	}
}
`, adminToken, up.URL, upstreamKey, filepath.Join(t.TempDir(), "on.db"), filepath.Join(t.TempDir(), "off.db")), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	for _, site := range []string{"http://localhost:9080", "http://localhost:9081"} {
		key := registerAt(t, site, "twin")
		req, _ := http.NewRequest("POST", site+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a b"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", site, res.StatusCode)
		}
	}
	body := adminMetrics(t)
	for _, want := range []string{
		`aiproxy_requests_total{kind="chat",model="gpt-4o-mini",status="200",user="twin"} 1`,
		`aiproxy_requests_total{kind="chat",model="gpt-4o-mini",status="200",user=""} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %s:\n%s", want, grepLines([]byte(body), "aiproxy_"))
		}
	}
}

// registerAt creates a user through a site's worker route and returns its key.
func registerAt(t *testing.T, site, name string) string {
	t.Helper()
	res, err := http.Get(site + "/" + adminToken + "/register/" + name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	key := strings.TrimSpace(string(b))
	if !keyPattern.MatchString(key) {
		t.Fatalf("register %s at %s: %d %q", name, site, res.StatusCode, b)
	}
	return key
}

// adminMetrics returns Caddy's metrics from its admin endpoint.
func adminMetrics(t *testing.T) string {
	t.Helper()
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRedisKeyLookupsMetric: Redis store lookups are counted by where they
// were answered, and a key used again is answered from memory.
func TestRedisKeyLookupsMetric(t *testing.T) {
	s := startSite(t, siteOptions{store: "redis"})
	key := s.register("ann")
	count := func(from string) float64 {
		m := regexp.MustCompile(`(?m)^aiproxy_redis_key_lookups_total\{from="` + from + `"\} (\S+)$`).FindStringSubmatch(adminMetrics(t))
		if m == nil {
			t.Fatalf("no aiproxy_redis_key_lookups_total{from=%q}", from)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := count("memory")
	// The first lookups may come before the tracking connection is up.
	deadline := time.Now().Add(10 * time.Second)
	for count("memory") < before+3 {
		if time.Now().After(deadline) {
			t.Fatalf("no lookup answered from memory: %v from memory, %v from Redis", count("memory"), count("redis"))
		}
		if code, body := s.chat(key); code != 200 {
			t.Fatalf("chat: %d %s", code, body)
		}
	}
}
