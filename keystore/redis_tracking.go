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
	t.cache.clear()
}

// onPush applies Redis's invalidations: the records named, or everything
// when the list is null (a FLUSHALL, or a replica's full resync).
func (t *keyTracking) onPush(v respValue) {
	if len(v.Elems) < 2 || v.Elems[0].Str != "invalidate" {
		return
	}
	if v.Elems[1].Null {
		t.cache.clear()
		return
	}
	records := make([]string, 0, len(v.Elems[1].Elems))
	for _, k := range v.Elems[1].Elems {
		records = append(records, k.Str)
	}
	t.cache.forget(records...)
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
// when it is lost, until stopped. A Cluster node that is not a master
// any more ends instead: lookups start its successor's.
func (n *trackedNode) run() {
	retry := trackingRetryMin
	logged := false
	for {
		c, err := n.connect()
		if err == nil {
			retry, logged = trackingRetryMin, false
			n.conn.Store(c)
			n.watch(c)
			n.conn.Store(nil)
		} else {
			var re respError
			if errors.As(err, &re) && cannotTrack(re) {
				n.t.off.Store(true)
				n.t.logger.Warn("redis key store: this Redis cannot track keys (it needs 6.0+ and RESP3), so keys are not cached",
					zap.Error(err))
				n.t.drop(n)
				return
			}
			if n.t.cluster() {
				n.t.drop(n)
				return
			}
			if !logged {
				n.t.logger.Warn("redis key store: the key cache is off until its tracking connection is back",
					zap.String("address", n.addr), zap.Error(err))
				logged = true
			}
		}
		select {
		case <-n.stop:
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, trackingRetryMax)
	}
}

// cannotTrack tells the errors of a Redis without RESP3 or tracking.
func cannotTrack(e respError) bool {
	s := string(e)
	return strings.HasPrefix(s, "NOPROTO") || strings.Contains(s, "unknown command") ||
		strings.Contains(s, "unknown subcommand")
}

// watch returns when c is lost or the node stops, checking every second
// that the connection answers and still reaches a master.
func (n *trackedNode) watch(c *respConn) {
	tick := time.NewTicker(trackingHealthEvery)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			c.close()
			return
		case <-c.done:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), n.t.conn.Timeout)
			err := checkMaster(ctx, c)
			cancel()
			if err != nil {
				c.fail(err)
				return
			}
		}
	}
}

// checkMaster fails unless the connection's server is a master.
func checkMaster(ctx context.Context, c *respConn) error {
	v, err := c.do(ctx, "ROLE")
	if err != nil {
		return err
	}
	if len(v.Elems) == 0 || v.Elems[0].Str != "master" {
		return errors.New("the tracked server is not a master any more")
	}
	return nil
}

// connect dials the master, switches to RESP3 with authentication, turns
// tracking on and checks the server is a master. Whatever the connection
// carried before is gone with it, so the cache is emptied when it ends.
func (n *trackedNode) connect() (*respConn, error) {
	timeout := n.t.conn.Timeout
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	addr := n.addr
	if addr == "" {
		var err error
		if addr, err = n.t.sentinelMaster(ctx); err != nil {
			return nil, err
		}
	}
	nc, err := n.t.dial(ctx, addr)
	if err != nil {
		return nil, err
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
			return nil, err
		}
	}
	if err := checkMaster(ctx, c); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
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

// sentinelMaster asks the Sentinels, in turn, where the master is now.
func (t *keyTracking) sentinelMaster(ctx context.Context) (string, error) {
	var last error
	for _, a := range t.conn.Addrs {
		opts := &redis.Options{Addr: a, DialTimeout: t.conn.Timeout, ReadTimeout: t.conn.Timeout,
			WriteTimeout: t.conn.Timeout, MaxRetries: -1}
		if t.conn.TLS {
			opts.TLSConfig = t.conn.tlsConfig()
		}
		sc := redis.NewSentinelClient(opts)
		hp, err := sc.GetMasterAddrByName(ctx, t.conn.MasterName).Result()
		sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("asking the Sentinels for master %q: %v", t.conn.MasterName, last)
}
