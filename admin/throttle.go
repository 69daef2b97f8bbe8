package admin

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/apierror"
)

// Guessing the admin token is slowed down per client: a client that fails
// authentication maxAuthFailures times within failureWindow is refused for
// blockDuration. A refused client is refused with the right token too;
// otherwise guessing would go on at full speed, the right guess still
// getting through.
const (
	maxAuthFailures = 10
	failureWindow   = time.Minute
	blockDuration   = time.Minute

	// maxThrottledClients bounds the clients remembered (about 200 bytes
	// each). When it is reached, the client whose last failure is oldest
	// is forgotten.
	maxThrottledClients = 10000
)

// authThrottle counts failed admin authentications per client. A client is
// an IPv4 address or an IPv6 /64, the block one host usually has, so that
// walking through the addresses of one's own /64 does not reset the count.
// It is safe for concurrent use.
type authThrottle struct {
	now func() time.Time

	mu       sync.Mutex
	clients  map[netip.Prefix]*list.Element // of *clientFailures
	order    list.List                      // most recent failure first
	lastWarn time.Time                      // when a block was last logged
	blocks   int                            // blocks since then
}

type clientFailures struct {
	client       netip.Prefix
	windowStart  time.Time // of the failures counted
	failures     int
	blockedUntil time.Time
}

func newAuthThrottle(now func() time.Time) *authThrottle {
	return &authThrottle{now: now, clients: make(map[netip.Prefix]*list.Element)}
}

// blocked returns how much longer client is refused, or 0.
func (t *authThrottle) blocked(client netip.Prefix) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.clients[client]
	if !ok {
		return 0
	}
	return max(0, el.Value.(*clientFailures).blockedUntil.Sub(t.now()))
}

// fail counts a failed authentication by client. When it starts a block,
// warn says whether to log it (at most once per blockDuration for all
// clients), and blocks is how many blocks that log line reports.
func (t *authThrottle) fail(client netip.Prefix) (warn bool, blocks int) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.clients[client]
	if !ok {
		if t.order.Len() >= maxThrottledClients {
			oldest := t.order.Back()
			delete(t.clients, oldest.Value.(*clientFailures).client)
			t.order.Remove(oldest)
		}
		el = t.order.PushFront(&clientFailures{client: client, windowStart: now})
		t.clients[client] = el
	}
	t.order.MoveToFront(el)
	c := el.Value.(*clientFailures)
	if now.Before(c.blockedUntil) {
		return false, 0 // refused before authenticating; not counted
	}
	if now.Sub(c.windowStart) >= failureWindow {
		c.windowStart, c.failures = now, 0
	}
	c.failures++
	if c.failures < maxAuthFailures {
		return false, 0
	}
	c.blockedUntil = now.Add(blockDuration)
	c.windowStart, c.failures = c.blockedUntil, 0
	t.blocks++
	if now.Sub(t.lastWarn) < blockDuration {
		return false, 0
	}
	t.lastWarn, blocks, t.blocks = now, t.blocks, 0
	return true, blocks
}

// succeed forgets client's failures after a successful authentication.
func (t *authThrottle) succeed(client netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.clients[client]; ok {
		delete(t.clients, client)
		t.order.Remove(el)
	}
}

// len returns how many clients are remembered.
func (t *authThrottle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.order.Len()
}

// clientOf returns the client a request is counted under: its IP address
// (as ClientIP, or else RemoteAddr, gives it), IPv6 addresses by their /64.
// Requests whose address cannot be read share the zero Prefix.
func (h *Handler) clientOf(r *http.Request) netip.Prefix {
	var ip string
	if h.ClientIP != nil {
		ip = h.ClientIP(r)
	}
	if ip == "" {
		ip, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	ip, _, _ = strings.Cut(ip, "%") // an IPv6 zone
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return netip.PrefixFrom(addr, 32)
	}
	p, _ := addr.Prefix(64)
	return p
}

// authFailed counts a failed authentication by client and logs a block
// when one starts (never the token tried).
func (h *Handler) authFailed(client netip.Prefix) {
	if warn, blocks := h.throttle.fail(client); warn {
		h.logger.Warn("too many failed admin authentications; refusing the client for a while",
			zap.String("client", client.String()), zap.Int("clients_blocked", blocks),
			zap.Duration("for", blockDuration))
	}
}

// writeThrottled answers a REST request from a blocked client.
func writeThrottled(w http.ResponseWriter, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	apierror.Write(w, http.StatusTooManyRequests, apierror.TypeRateLimit, "rate_limit_exceeded",
		"too many failed admin authentications from your address; try again in "+strconv.Itoa(secs)+" seconds")
}
