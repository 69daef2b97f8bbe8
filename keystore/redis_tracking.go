package keystore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// keyTracking serves key lookups from memory with Redis's server-assisted
// client-side caching: user records are read on connections with CLIENT
// TRACKING on (RESP3), one per master that holds records, and Redis pushes
// an invalidation on that connection the moment a record it was read from
// changes, whoever changed it (another gateway, redis-cli). A connection
// lost takes every cached key with it, and until a new one is up lookups
// read Redis as they do without the cache: a revoked key is never served
// from a cache that may have missed its invalidation.
//
// go-redis' own client-side cache covers a single node only, and applies
// an idle connection's invalidations late; this covers Sentinel and
// Cluster alike and applies them as they arrive.
type keyTracking struct {
	cache  *keyCache
	conn   redisConn
	client redis.UniversalClient
	logger *zap.Logger

	// off is set when Redis cannot track (before 6.0, or tracking
	// refused): lookups then read Redis every time.
	off atomic.Bool

	mu      sync.Mutex
	nodes   map[string]*trackedNode // by address; "" for a Sentinel's master
	stopped bool
	wg      sync.WaitGroup

	// sentinels are asked where the master is, at each connect and each
	// check: made on first use by the one node of a Sentinel deployment,
	// closed by stop.
	sentinels []*redis.SentinelClient
}

// Tracking connections' timings.
const (
	trackingHealthEvery = time.Second
	trackingRetryMin    = 50 * time.Millisecond
	trackingRetryMax    = 2 * time.Second
	// maxTrackedNodes bounds the connections of a Cluster client, whose
	// masters may change over its life.
	maxTrackedNodes = 64
)

// errNotTracked says a record could not be read on a tracking connection
// now: the caller reads it the usual way and does not cache it.
var errNotTracked = errors.New("no tracking connection")

func newKeyTracking(conn redisConn, client redis.UniversalClient, logger *zap.Logger) *keyTracking {
	return &keyTracking{
		cache:  newKeyCache(),
		conn:   conn,
		client: client,
		logger: logger,
		nodes:  make(map[string]*trackedNode),
	}
}

// start connects at once where the master is known before any lookup: a
// single node, or Sentinel's. A Cluster's masters connect on first use.
func (t *keyTracking) start() {
	if !t.cluster() {
		t.node(context.Background(), "")
	}
}

// cluster reports whether records spread over a Cluster's masters.
func (t *keyTracking) cluster() bool { return t.conn.MasterName == "" && len(t.conn.Addrs) > 1 }

// read reads a user record on the tracking connection of the master that
// holds it, starting that connection if need be. errNotTracked when none
// is up; ErrNotFound when the record does not exist.
func (t *keyTracking) read(ctx context.Context, record string) ([]byte, error) {
	if t.off.Load() {
		return nil, errNotTracked
	}
	n, err := t.node(ctx, record)
	if err != nil {
		return nil, errNotTracked
	}
	c := n.current()
	if c == nil {
		return nil, errNotTracked
	}
	v, err := c.do(ctx, "GET", record)
	switch {
	case err != nil:
		// A MOVED slot or a lost connection: the usual read decides.
		return nil, errNotTracked
	case v.Null:
		return nil, ErrNotFound
	case v.Kind != '$':
		return nil, errNotTracked
	}
	return []byte(v.Str), nil
}

// node returns the tracked master for a record, started on first use.
func (t *keyTracking) node(ctx context.Context, record string) (*trackedNode, error) {
	addr := ""
	switch {
	case t.cluster():
		master, err := t.client.(*redis.ClusterClient).MasterForKey(ctx, record)
		if err != nil {
			return nil, err
		}
		addr = master.Options().Addr
	case t.conn.MasterName == "":
		addr = t.conn.Addrs[0]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.nodes[addr]; ok {
		return n, nil
	}
	if t.stopped || len(t.nodes) >= maxTrackedNodes {
		return nil, errNotTracked
	}
	n := &trackedNode{t: t, addr: addr, stop: make(chan struct{})}
	t.nodes[addr] = n
	t.wg.Go(n.run)
	return n, nil
}

// drop forgets a node that ended (a Cluster node no longer a master).
func (t *keyTracking) drop(n *trackedNode) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes[n.addr] == n {
		delete(t.nodes, n.addr)
	}
}

// stop closes every tracking connection and waits for their goroutines.
func (t *keyTracking) stop() {
	t.mu.Lock()
	t.stopped = true
	for _, n := range t.nodes {
		close(n.stop)
	}
	t.mu.Unlock()
	t.wg.Wait()
	for _, sc := range t.sentinels {
		sc.Close()
	}
	t.cache.clear()
}

// onPush applies Redis's invalidations: the keys named, or everything when
// the list is null (a FLUSHALL, or a replica's full resync) or not one.
func (t *keyTracking) onPush(v respValue) {
	if len(v.Elems) == 0 || v.Elems[0].Str != "invalidate" {
		return
	}
	if len(v.Elems) < 2 || v.Elems[1].Kind != '*' {
		t.cache.clear()
		return
	}
	keys := make([]string, 0, len(v.Elems[1].Elems))
	for _, k := range v.Elems[1].Elems {
		keys = append(keys, k.Str)
	}
	t.cache.forget(keys...)
}

// isMaster reports whether the client's current slot map (read again every
// second) has a master at addr.
func (t *keyTracking) isMaster(ctx context.Context, addr string) bool {
	var found atomic.Bool
	t.client.(*redis.ClusterClient).ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		if m.Options().Addr == addr {
			found.Store(true)
		}
		return nil
	})
	return found.Load()
}

// trackedNode is the tracking connection to one master, kept up by run.
type trackedNode struct {
	t    *keyTracking
	addr string // "" for a Sentinel's master, asked anew at each connect
	stop chan struct{}

	conn atomic.Pointer[respConn] // nil while down
}

// current returns the connection, when up.
func (n *trackedNode) current() *respConn {
	c := n.conn.Load()
	if c == nil {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
		return c
	}
}

// run connects, checks the connection every second, and connects again
// when it is lost, until stopped. A Cluster node that is no longer a
// master in the client's slot map ends instead: lookups start its
// successor's.
func (n *trackedNode) run() {
	retry := trackingRetryMin
	logged := false
	for {
		c, addr, err := n.connect()
		if err == nil {
			retry, logged = trackingRetryMin, false
			n.conn.Store(c)
			err = n.watch(c, addr)
			n.conn.Store(nil)
		}
		var refused respError
		if errors.As(err, &refused) && cannotTrack(refused) {
			n.t.off.Store(true)
			n.t.logger.Warn("redis key store: keys are not cached: this Redis cannot track them (it needs 6.0+, RESP3, and for the ACL user HELLO, CLIENT TRACKING, GET, SELECT and, on a Cluster, CLUSTER INFO)",
				zap.Error(err))
			n.t.drop(n)
			return
		}
		if n.t.cluster() && !n.t.isMaster(context.Background(), n.addr) {
			n.t.drop(n)
			return
		}
		if err != nil && !errors.Is(err, net.ErrClosed) && !logged {
			n.t.logger.Warn("redis key store: the key cache is off until its tracking connection is back",
				zap.String("address", addr), zap.Error(err))
			logged = true
		}
		select {
		case <-n.stop:
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, trackingRetryMax)
	}
}

// cannotTrack tells the errors of a Redis without RESP3 or tracking, or of
// an ACL user not allowed the commands tracking needs.
func cannotTrack(e respError) bool {
	s := string(e)
	return strings.HasPrefix(s, "NOPROTO") || strings.HasPrefix(s, "NOPERM") ||
		strings.Contains(s, "unknown command") || strings.Contains(s, "unknown subcommand")
}

// watch returns why c ended: lost, stopped (net.ErrClosed), or failing
// the check made every second.
func (n *trackedNode) watch(c *respConn, addr string) error {
	tick := time.NewTicker(trackingHealthEvery)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			c.close()
			return net.ErrClosed
		case <-c.done:
			return c.err
		case <-tick.C:
			// Room for a Sentinel check, which asks each in turn.
			ctx, cancel := context.WithTimeout(context.Background(),
				n.t.conn.Timeout*time.Duration(1+len(n.t.conn.Addrs)))
			err := n.check(ctx, c, addr)
			cancel()
			if err != nil {
				c.fail(err)
				return err
			}
		}
	}
}

// check fails unless the connection answers and its server is still where
// the deployment's records are written: a master, and, when a master may
// be replaced (Sentinel, Cluster), the one the others agree on. A master
// cut off from its peers but not from this instance would otherwise feed
// the cache records that the promoted one has changed since.
func (n *trackedNode) check(ctx context.Context, c *respConn, addr string) error {
	if err := checkRole(ctx, c); err != nil {
		return err
	}
	switch {
	case n.t.conn.MasterName != "":
		now, err := n.t.sentinelMaster(ctx)
		if err != nil {
			return err
		}
		if now != addr {
			return fmt.Errorf("the Sentinels name %s as the master now, not %s", now, addr)
		}
	case n.t.cluster():
		v, err := c.do(ctx, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if !strings.Contains(v.Str, "cluster_state:ok") {
			return errors.New("the tracked node reports the cluster down")
		}
		if !n.t.isMaster(ctx, addr) {
			return errors.New("the tracked node is no longer a master of the cluster")
		}
	}
	return nil
}

// checkRole fails unless the connection's server is a master. HELLO tells,
// and unlike ROLE it is not an admin command an ACL user may be denied.
func checkRole(ctx context.Context, c *respConn) error {
	v, err := c.do(ctx, "HELLO", "3")
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		if v.Elems[i].Str == "role" {
			if v.Elems[i+1].Str == "master" {
				return nil
			}
			break
		}
	}
	return errors.New("the tracked server is not a master")
}

// connect dials the master, switches to RESP3 with authentication, turns
// tracking on and checks the server is a master. Whatever the connection
// carried is dropped from the cache when it ends.
func (n *trackedNode) connect() (*respConn, string, error) {
	timeout := n.t.conn.Timeout
	addr := n.addr
	if addr == "" {
		var err error
		if addr, err = n.t.sentinelMaster(context.Background()); err != nil {
			return nil, "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	nc, err := n.t.dial(ctx, addr)
	if err != nil {
		return nil, addr, err
	}
	c := newRespConn(nc, n.t.onPush, n.t.cache.clear)
	hello := []string{"HELLO", "3"}
	if n.t.conn.Password != "" {
		user := n.t.conn.Username
		if user == "" {
			user = "default"
		}
		hello = append(hello, "AUTH", user, n.t.conn.Password)
	}
	hello = append(hello, "SETNAME", "aiproxy-tracking")
	steps := [][]string{hello}
	if n.t.conn.DB != 0 {
		steps = append(steps, []string{"SELECT", fmt.Sprint(n.t.conn.DB)})
	}
	steps = append(steps, []string{"CLIENT", "TRACKING", "ON"})
	for _, args := range steps {
		if _, err := c.do(ctx, args...); err != nil {
			c.close()
			return nil, addr, err
		}
	}
	if err := checkRole(ctx, c); err != nil {
		c.close()
		return nil, addr, err
	}
	return c, addr, nil
}

// dial opens a connection as go-redis would: TCP, then TLS when set.
func (t *keyTracking) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: t.conn.Timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil || !t.conn.TLS {
		return nc, err
	}
	cfg := t.conn.tlsConfig()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

// sentinelMaster asks the Sentinels, in turn and each within the timeout,
// where the master is now. Only the node's goroutine calls it.
func (t *keyTracking) sentinelMaster(ctx context.Context) (string, error) {
	if t.sentinels == nil {
		for _, a := range t.conn.Addrs {
			opts := &redis.Options{Addr: a, DialTimeout: t.conn.Timeout, ReadTimeout: t.conn.Timeout,
				WriteTimeout: t.conn.Timeout, MaxRetries: -1, PoolSize: 1}
			if t.conn.TLS {
				opts.TLSConfig = t.conn.tlsConfig()
			}
			t.sentinels = append(t.sentinels, redis.NewSentinelClient(opts))
		}
	}
	var last error
	for _, sc := range t.sentinels {
		qctx, cancel := context.WithTimeout(ctx, t.conn.Timeout)
		hp, err := sc.GetMasterAddrByName(qctx, t.conn.MasterName).Result()
		cancel()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("asking the Sentinels for master %q: %v", t.conn.MasterName, last)
}
