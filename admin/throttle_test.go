package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/aiproxy/aiproxy/internal/storetest"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var (
	clientA = netip.MustParsePrefix("192.0.2.1/32")
	clientB = netip.MustParsePrefix("192.0.2.2/32")
)

func TestAuthThrottleBlocksAfterTenFailuresInAMinute(t *testing.T) {
	clock := &fakeClock{now: testNow}
	th := newAuthThrottle(clock.Now)
	for i := 1; i < maxAuthFailures; i++ {
		th.fail(clientA)
		clock.Advance(5 * time.Second)
		if d := th.blocked(clientA); d != 0 {
			t.Fatalf("blocked after %d failures", i)
		}
	}
	th.fail(clientA)
	if d := th.blocked(clientA); d != blockDuration {
		t.Fatalf("after %d failures: blocked for %v, want %v", maxAuthFailures, d, blockDuration)
	}
	if d := th.blocked(clientB); d != 0 {
		t.Fatalf("another client is blocked for %v", d)
	}
	// Failures while blocked neither count nor extend the block.
	clock.Advance(blockDuration - time.Second)
	th.fail(clientA)
	if d := th.blocked(clientA); d != time.Second {
		t.Fatalf("near the end of the block: %v left, want 1s", d)
	}
	clock.Advance(time.Second)
	if d := th.blocked(clientA); d != 0 {
		t.Fatalf("still blocked for %v after the block", d)
	}
	// The count starts again from zero.
	for range maxAuthFailures - 1 {
		th.fail(clientA)
	}
	if d := th.blocked(clientA); d != 0 {
		t.Fatalf("blocked again after %d failures", maxAuthFailures-1)
	}
}

func TestAuthThrottleForgetsOldFailures(t *testing.T) {
	clock := &fakeClock{now: testNow}
	th := newAuthThrottle(clock.Now)
	for range maxAuthFailures - 1 {
		th.fail(clientA)
	}
	clock.Advance(failureWindow)
	for range maxAuthFailures - 1 {
		th.fail(clientA)
	}
	if d := th.blocked(clientA); d != 0 {
		t.Fatalf("failures in two windows blocked the client for %v", d)
	}
	// A success forgets the failures.
	th.succeed(clientA)
	th.fail(clientA)
	if d := th.blocked(clientA); d != 0 || th.len() != 1 {
		t.Fatalf("after a success: blocked %v, %d clients", d, th.len())
	}
}

func TestAuthThrottleIsBounded(t *testing.T) {
	clock := &fakeClock{now: testNow}
	th := newAuthThrottle(clock.Now)
	for range maxAuthFailures {
		th.fail(clientA)
	}
	if th.blocked(clientA) == 0 {
		t.Fatal("client A is not blocked")
	}
	clock.Advance(time.Second)
	for i := range maxThrottledClients {
		th.fail(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
		if n := th.len(); n > maxThrottledClients {
			t.Fatalf("%d clients remembered, the bound is %d", n, maxThrottledClients)
		}
	}
	if n := th.len(); n != maxThrottledClients {
		t.Fatalf("%d clients remembered, want the bound %d", n, maxThrottledClients)
	}
	// Client A failed longest ago, so it was forgotten first.
	if d := th.blocked(clientA); d != 0 {
		t.Fatalf("the oldest client was kept (blocked for %v)", d)
	}
	if d := th.blocked(netip.MustParsePrefix("10.0.0.0/32")); d != 0 {
		t.Fatalf("a client with one failure is blocked for %v", d)
	}
}

func TestAuthThrottleConcurrentUse(t *testing.T) {
	th := newAuthThrottle(time.Now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				c := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i % 16)}), 32)
				th.fail(c)
				th.blocked(c)
				if i%7 == 0 {
					th.succeed(c)
				}
			}
		})
	}
	wg.Wait()
	if n := th.len(); n > maxThrottledClients {
		t.Fatalf("%d clients", n)
	}
}

func TestClientOf(t *testing.T) {
	for _, tc := range []struct {
		remoteAddr, clientIP, want string
	}{
		{"192.0.2.7:4321", "", "192.0.2.7/32"},
		{"192.0.2.7:4321", "203.0.113.9", "203.0.113.9/32"}, // Caddy's client IP, behind a trusted proxy
		{"[::ffff:192.0.2.7]:4321", "", "192.0.2.7/32"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "", "2001:db8:1:2::/64"}, // same /64, same client
		{"[fe80::1%eth0]:443", "", "fe80::/64"},
		{"@", "", "invalid Prefix"},
	} {
		h := &Handler{}
		if tc.clientIP != "" {
			h.ClientIP = func(*http.Request) string { return tc.clientIP }
		}
		r := httptest.NewRequest("GET", "/admin/users", nil)
		r.RemoteAddr = tc.remoteAddr
		if got := h.clientOf(r).String(); got != tc.want {
			t.Errorf("clientOf(%s, %q) = %s, want %s", tc.remoteAddr, tc.clientIP, got, tc.want)
		}
	}
}

// throttleEnv is a Handler whose clock tests move and whose requests come
// from the address they name.
func throttleEnv(t *testing.T) (*Handler, *fakeClock, *observer.ObservedLogs) {
	t.Helper()
	clock := &fakeClock{now: testNow}
	core, logs := observer.New(zap.DebugLevel)
	return &Handler{Store: storetest.New(t), Token: testToken, Now: clock.Now, Logger: zap.New(core)}, clock, logs
}

func restFrom(h *Handler, remoteAddr, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/admin/users", nil)
	req.RemoteAddr = remoteAddr
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeREST(rec, req)
	return rec
}

func TestRESTThrottlesWrongTokens(t *testing.T) {
	h, clock, logs := throttleEnv(t)
	const attacker, admin = "198.51.100.7:5555", "198.51.100.8:5555"
	for i := range maxAuthFailures {
		// A missing token is no guess: it does not count.
		restFrom(h, attacker, "")
		rec := restFrom(h, attacker, fmt.Sprintf("Bearer guess-%d", i))
		wantError(t, rec, http.StatusUnauthorized, "invalid_admin_token")
	}
	for _, auth := range []string{"Bearer wrong", "Bearer " + testToken, ""} {
		rec := restFrom(h, attacker, auth)
		wantError(t, rec, http.StatusTooManyRequests, "rate_limit_exceeded")
		if got := rec.Header().Get("Retry-After"); got != "60" {
			t.Errorf("Retry-After %q, want 60", got)
		}
	}
	if rec := restFrom(h, admin, "Bearer "+testToken); rec.Code != http.StatusOK {
		t.Fatalf("another client: %d %s", rec.Code, rec.Body)
	}
	clock.Advance(blockDuration - 1500*time.Millisecond)
	if got := restFrom(h, attacker, "Bearer wrong").Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q 1.5 s before the end, want 2 (rounded up)", got)
	}
	clock.Advance(1500 * time.Millisecond)
	if rec := restFrom(h, attacker, "Bearer "+testToken); rec.Code != http.StatusOK {
		t.Fatalf("after the block: %d %s", rec.Code, rec.Body)
	}

	entries := logs.FilterMessageSnippet("too many failed admin authentications").All()
	if len(entries) != 1 || entries[0].ContextMap()["client"] != "198.51.100.7/32" {
		t.Fatalf("block log entries: %v", entries)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.ContextMap()), "guess-") {
			t.Fatalf("a tried token was logged: %v", e.ContextMap())
		}
	}
}

func workerRouteFrom(h *Handler, remoteAddr, target string) (*httptest.ResponseRecorder, bool) {
	req := httptest.NewRequest("GET", target, nil)
	req.RemoteAddr = remoteAddr
	rec := httptest.NewRecorder()
	return rec, h.ServeWorkerRoutes(rec, req)
}

func TestWorkerRoutesThrottlesGuessesWithoutAnOracle(t *testing.T) {
	h, clock, _ := throttleEnv(t)
	const attacker, admin = "198.51.100.7:5555", "198.51.100.8:5555"
	// Short first segments cannot be the token: ordinary site paths, not counted.
	for range 3 * maxAuthFailures {
		if _, handled := workerRouteFrom(h, attacker, "/index.html"); handled {
			t.Fatal("/index.html handled")
		}
	}
	if _, handled := workerRouteFrom(h, attacker, workerPrefix+"/register/early"); !handled {
		t.Fatal("the right token from a client with only short misses was refused")
	}
	for i := range maxAuthFailures {
		// Any shape: the right token answers every path, so any path is a guess.
		if _, handled := workerRouteFrom(h, attacker, fmt.Sprintf("/a-guess-of-token-size-%d", i)); handled {
			t.Fatal("a wrong token was handled")
		}
	}
	// The right token now looks like a wrong one: an unknown path.
	rec, handled := workerRouteFrom(h, attacker, workerPrefix+"/register/bob")
	if handled || rec.Body.Len() != 0 || len(rec.Header()) != 0 {
		t.Fatalf("blocked client with the right token: handled %v, %d %q", handled, rec.Code, rec.Body)
	}
	if _, err := h.Store.GetUser(t.Context(), "bob"); err == nil {
		t.Fatal("a blocked client registered a user")
	}
	// The throttle is shared with the REST API.
	wantError(t, restFrom(h, attacker, "Bearer "+testToken), http.StatusTooManyRequests, "rate_limit_exceeded")
	if _, handled := workerRouteFrom(h, admin, workerPrefix+"/register/carol"); !handled {
		t.Fatal("another client was refused")
	}
	clock.Advance(blockDuration)
	if _, handled := workerRouteFrom(h, attacker, workerPrefix+"/register/bob"); !handled {
		t.Fatal("the right token after the block was refused")
	}
}
