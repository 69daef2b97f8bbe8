package aiproxy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
	"github.com/aiproxy/aiproxy/internal/redistest"
)

// TestClusterFailoverUnderLoad: a Redis Cluster master is killed while
// requests flow. Users whose data lives on the other masters are served
// throughout; those on the killed one get 503 store_unavailable until its
// replica takes over, then are served again; and usage counts every
// answered request once.
func TestClusterFailoverUnderLoad(t *testing.T) {
	c, err := redistest.StartClusterReplicas(3, 1, "--cluster-require-full-coverage", "no")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	up := mockopenai.New(t, upstreamKey)
	const prefix = "fo:"
	store := fmt.Sprintf("store redis {\n\t\t\taddress %s\n\t\t\tkey_prefix %s\n\t\t}", strings.Join(c.Addrs, " "), prefix)
	s := &site{t: t, upstream: up, client: &http.Client{Timeout: 10 * time.Second}, store: store}
	s.load(siteOptions{})
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	defer cluster.Close()
	ctx := context.Background()

	// Users, and the masters of their record and of their key's entry.
	type user struct {
		name, key string
		masters   []string
	}
	var users []*user
	load := map[string]int{}
	for i := range 12 {
		u := &user{name: fmt.Sprintf("fo%02d", i)}
		u.key = s.register(u.name)
		sum := sha256.Sum256([]byte(u.key))
		for _, k := range []string{prefix + "{u:" + u.name + "}:user", prefix + "key:" + hex.EncodeToString(sum[:])} {
			m, err := cluster.MasterForKey(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			u.masters = append(u.masters, m.Options().Addr)
			load[m.Options().Addr]++
		}
		users = append(users, u)
	}
	var victim string
	for addr, n := range load {
		if victim == "" || n > load[victim] {
			victim = addr
		}
	}
	onVictim := func(u *user) bool { return u.masters[0] == victim || u.masters[1] == victim }

	var mu sync.Mutex
	answered := map[string]int{}  // 200s per user
	afterKill := map[string]int{} // 200s per user after the kill
	refused := 0                  // 503s of users on the killed master
	killed := false
	var bad []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := users[i%len(users)]
				start := time.Now()
				code, out := s.post(u.key, "/v1/chat/completions", chatBody("gpt-4o-mini", "keep going"))
				mu.Lock()
				switch {
				case code == 200:
					answered[u.name]++
					if killed {
						afterKill[u.name]++
					}
				case code == 503 && onVictim(u) && strings.Contains(string(out), "store_unavailable") && time.Since(start) < 3*time.Second:
					refused++
				default:
					bad = append(bad, fmt.Sprintf("%s: %d %.100s after %v", u.name, code, out, time.Since(start)))
				}
				mu.Unlock()
			}
		})
	}
	// Kill once every user has been served, then wait until every user
	// has been served again.
	waitFor := func(what string, done func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			ok := done()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s: not within 30 s (answered %v, after the kill %v)", what, answered, afterKill)
			}
			time.Sleep(50 * time.Millisecond) // the cluster's own timing, not ours
		}
	}
	everyone := func(m map[string]int) func() bool {
		return func() bool {
			for _, u := range users {
				if m[u.name] == 0 {
					return false
				}
			}
			return true
		}
	}
	waitFor("every user served", everyone(answered))
	mu.Lock()
	killed = true
	mu.Unlock()
	if err := c.WaitReplicated(); err != nil {
		t.Fatal(err) // a replica taking over without them would lose writes
	}
	c.KillAddr(victim)
	waitFor("every user served after the failover", everyone(afterKill))
	close(stop)
	wg.Wait()
	for _, b := range bad {
		t.Error(b)
	}
	total := 0
	for _, n := range answered {
		total += n
	}
	t.Logf("%d requests answered, %d refused with 503 while the shard failed over", total, refused)

	// Usage, as reports give it (written, and pending in this instance):
	// each answered request once. Reports read the store: once every node
	// agrees on the new master, they work again.
	if err := c.WaitSettled(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range users {
		for {
			code, _, out := s.request("GET", "/admin/usage?user="+u.name, nil, "Authorization", "Bearer "+adminToken)
			if code == 200 {
				var rows struct {
					Data []usageRow `json:"data"`
				}
				if err := json.Unmarshal(out, &rows); err != nil {
					t.Fatal(err)
				}
				var got int64
				for _, r := range rows.Data {
					got += r.Requests
				}
				if got != int64(answered[u.name]) {
					t.Errorf("%s: usage counts %d requests, the client got %d answers", u.name, got, answered[u.name])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("usage of %s: %d %s", u.name, code, out)
			}
			time.Sleep(50 * time.Millisecond) // the client's slot map catches up within a second
		}
	}
}
