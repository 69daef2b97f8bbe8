package aiproxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// TestUsageExactAcrossTwoInstances: two gateways, each with its own usage
// writer, share one Redis store; concurrent requests through both, for the
// same users, are counted exactly once each, and a report on either
// instance shows them all.
func TestUsageExactAcrossTwoInstances(t *testing.T) {
	up := mockopenai.New(t, upstreamKey)
	store := storeLine(t, "redis")
	config := func(grace string) string {
		gateway := func(site string) string {
			return fmt.Sprintf("%s {\n\taiproxy {\n\t\tadmin_token %s\n\t\tupstream %s %s\n\t\t%s\n\t}\n}\n",
				site, adminToken, up.URL, upstreamKey, store)
		}
		return "{\n\tskip_install_trust\n\tadmin localhost:2999\n\thttp_port 9080\n\thttps_port 9443\n\tgrace_period " + grace + "\n}\n" +
			gateway("http://localhost:9080") + gateway("http://localhost:9081")
	}
	tester := caddytest.NewTester(t)
	tester.InitServer(config("1ns"), "caddyfile")
	a := &site{t: t, upstream: up, client: &http.Client{Timeout: 10 * time.Second}}

	users := []string{"ann", "ben", "cy"}
	keys := make(map[string]string)
	for _, u := range users {
		keys[u] = a.register(u)
	}
	prompt := "two instances count once"
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":%q}]}`, prompt)
	const workers, perWorker = 6, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				site := []string{"http://localhost:9080", "http://localhost:9081"}[(w+i)%2]
				user := users[(w+i)%len(users)]
				req, _ := http.NewRequest("POST", site+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+keys[user])
				req.Header.Set("Content-Type", "application/json")
				res, err := a.client.Do(req)
				if err != nil || res.StatusCode != 200 {
					t.Errorf("request via %s: %v %v", site, res, err)
					return
				}
				res.Body.Close()
			}
		})
	}
	wg.Wait()
	// A reload flushes both instances' pending counts, as a shutdown would.
	// (Caddy skips loading a config identical to the running one.)
	tester.InitServer(config("2ns"), "caddyfile")

	want := make(map[string]int64)
	for w := range workers {
		for i := range perWorker {
			want[users[(w+i)%len(users)]]++
		}
	}
	for _, site := range []string{"http://localhost:9080", "http://localhost:9081"} {
		for _, u := range users {
			req, _ := http.NewRequest("GET", site+"/admin/usage?user="+u, nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			res, err := a.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var out struct{ Data []usageRow }
			err = json.NewDecoder(res.Body).Decode(&out)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("%s: usage of %s: %d %v", site, u, res.StatusCode, err)
			}
			if len(out.Data) != 1 {
				t.Fatalf("%s: usage of %s: %+v", site, u, out.Data)
			}
			wantUsage(t, out.Data[0], want[u], mockopenai.ExpectedUsage(prompt), 0)
		}
	}
}
