package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterCreateTimeout bounds redis-cli --cluster create, which polls once a
// second until the nodes have met.
const clusterCreateTimeout = 30 * time.Second

// spawnAttempts is how often a server is started on fresh ports when it
// fails to: another process may take a free port before the server binds it.
const spawnAttempts = 3

// Cluster is a Redis Cluster of masters without replicas, started for
// tests. Like Server, it keeps nothing on disk beyond temporary directories.
type Cluster struct {
	// Addrs are the nodes' host:port on 127.0.0.1, in no particular order
	// of slots. Any of them lets a cluster client discover the others.
	Addrs []string

	nodes    []*Server
	replicas int // per master
	once     sync.Once
}

// Kill stops node i at once, as kill -9 would; the others go on.
func (c *Cluster) Kill(i int) { c.nodes[i].Close() }

// WaitReplicated returns once every replica has every write its master
// took: Redis replicates asynchronously, and a replica that takes over
// before it caught up loses the writes it lacked.
func (c *Cluster) WaitReplicated() error {
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	for _, node := range c.nodes {
		select {
		case <-node.exited:
			continue // killed
		default:
		}
		rdb := probeClient(node.Addr)
		err := caughtUp(ctx, rdb, node.exited)
		rdb.Close()
		if err != nil {
			return fmt.Errorf("redis cluster node %s: %v", node.Addr, err)
		}
	}
	return nil
}

// WaitSettled returns once every live node sees every slot served by a
// live master, the same one: after a failover, nodes learn of the new
// master by gossip, and a client may read an old slot map from one that
// has not yet.
func (c *Cluster) WaitSettled() error {
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	var live []*Server
	for _, node := range c.nodes {
		select {
		case <-node.exited:
		default:
			live = append(live, node)
		}
	}
	return poll(ctx, nil, func() error {
		var first string
		for _, node := range live {
			rdb := probeClient(node.Addr)
			shards, err := rdb.ClusterShards(ctx).Result()
			rdb.Close()
			if err != nil {
				return err
			}
			var view []string
			covered := 0
			for _, sh := range shards {
				if len(sh.Slots) == 0 {
					continue // a dead master's shard, its slots gone
				}
				owner := ""
				for _, n := range sh.Nodes {
					if n.Role == "master" {
						owner = fmt.Sprintf("%s:%d", n.IP, n.Port)
					}
				}
				if !slices.ContainsFunc(live, func(n *Server) bool { return n.Addr == owner }) {
					return fmt.Errorf("%s sees slots %v on %q, which is down", node.Addr, sh.Slots, owner)
				}
				for _, r := range sh.Slots {
					covered += int(r.End - r.Start + 1)
					view = append(view, fmt.Sprintf("%d-%d@%s", r.Start, r.End, owner))
				}
			}
			slices.Sort(view)
			if covered != 16384 {
				return fmt.Errorf("%s sees %d slots covered", node.Addr, covered)
			}
			if v := strings.Join(view, " "); first == "" {
				first = v
			} else if v != first {
				return fmt.Errorf("nodes disagree on the slots: %s / %s", first, v)
			}
		}
		return nil
	})
}

// KillAddr stops the node at addr at once, as kill -9 would.
func (c *Cluster) KillAddr(addr string) {
	for _, n := range c.nodes {
		if n.Addr == addr {
			n.Close()
		}
	}
}

// StartCluster starts n cluster-enabled redis-server processes on free
// 127.0.0.1 ports, joins them with redis-cli --cluster create (no replicas,
// slots spread evenly) and returns once every node reports cluster_state:ok.
// n must be at least 3, the fewest masters redis-cli accepts. Call it once
// per test binary, from TestMain, and Close the result before os.Exit.
// Without redis-server and redis-cli on PATH it fails: Debian's redis-server
// package brings both.
func StartCluster(n int) (*Cluster, error) {
	return StartClusterWith(n)
}

// StartClusterWith is StartCluster with more redis-server arguments for
// every node, such as "--cluster-require-full-coverage", "no" (the other
// masters keep serving while one is down).
func StartClusterWith(n int, args ...string) (*Cluster, error) {
	return startCluster(n, 0, args)
}

// StartClusterReplicas starts a cluster of masters with replicas each,
// as StartClusterWith does; which nodes are masters is up to redis-cli
// (see Masters).
func StartClusterReplicas(masters, replicas int, args ...string) (*Cluster, error) {
	return startCluster(masters, replicas, args)
}

func startCluster(n, replicas int, args []string) (*Cluster, error) {
	if n < 3 {
		return nil, fmt.Errorf("redis cluster: need at least 3 masters, got %d", n)
	}
	server, err := lookRedis("redis-server")
	if err != nil {
		return nil, err
	}
	cli, err := lookRedis("redis-cli")
	if err != nil {
		return nil, err
	}

	c := &Cluster{replicas: replicas}
	for range n * (1 + replicas) {
		node, err := startClusterNode(server, args...)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.nodes = append(c.nodes, node)
		c.Addrs = append(c.Addrs, node.Addr)
	}
	if err := c.create(cli); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.waitOK(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// startClusterNode starts one empty cluster-enabled node, retrying on fresh
// ports if it cannot bind.
func startClusterNode(bin string, extra ...string) (*Server, error) {
	var lastErr error
	for range spawnAttempts {
		// Both ports are chosen explicitly: the default bus port, port+10000,
		// is neither known to be free nor always below 65536.
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "aiproxy-redis-cluster-")
		if err != nil {
			return nil, err
		}
		node, err := spawn(bin, ports[0], dir, append([]string{
			"--port", strconv.Itoa(ports[0]),
			"--bind", "127.0.0.1",
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(ports[1]),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--daemonize", "no",
			"--protected-mode", "yes",
			"--loglevel", "warning",
			// Replicas sync at once, not 5 s after they ask.
			"--repl-diskless-sync-delay", "0",
		}, extra...)...)
		if err == nil {
			return node, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// create assigns the slots and makes the nodes meet.
func (c *Cluster) create(cli string) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(c.replicas), "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("redis-cli --cluster create %s: %v; its output:\n%s%s",
			strings.Join(c.Addrs, " "), err, out.String(), c.output())
	}
	return nil
}

// waitOK polls CLUSTER INFO on every node until each one knows all nodes
// and reports cluster_state:ok. redis-cli returns once the nodes agree on
// the slots, but a node only turns ok after its own state update, a moment
// later; a client sent there earlier gets CLUSTERDOWN.
func (c *Cluster) waitOK() error {
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	want := []string{"cluster_state:ok", "cluster_known_nodes:" + strconv.Itoa(len(c.nodes))}
	for _, node := range c.nodes {
		rdb := probeClient(node.Addr)
		err := poll(ctx, node.exited, func() error {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			lines := strings.Fields(info)
			for _, w := range want {
				if !slices.Contains(lines, w) {
					return fmt.Errorf("no %s in CLUSTER INFO:\n%s", w, info)
				}
			}
			// A replica that has not synced yet could not take over.
			repl, err := rdb.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return fmt.Errorf("replica not in sync yet:\n%s", repl)
			}
			return nil
		})
		rdb.Close()
		if err != nil {
			return fmt.Errorf("redis cluster node %s not ready: %v%s", node.Addr, err, c.output())
		}
	}
	return nil
}

// output collects the nodes' output for an error message.
func (c *Cluster) output() string {
	var b strings.Builder
	for _, node := range c.nodes {
		fmt.Fprintf(&b, "\nnode %s output:\n%s", node.Addr, node.output.String())
	}
	return b.String()
}

// Close kills every node, waits for them to exit and removes their
// directories. It is safe to call more than once.
func (c *Cluster) Close() {
	c.once.Do(func() {
		for _, node := range c.nodes {
			node.Close()
		}
	})
}

// Sentinel is a master redis-server watched by one Sentinel, started for
// tests: a client given SentinelAddr and MasterName finds the master through
// the Sentinel.
type Sentinel struct {
	// SentinelAddr is the Sentinel's host:port on 127.0.0.1.
	SentinelAddr string
	// MasterName is the name the Sentinel monitors the master under.
	MasterName string
	// MasterAddr is the master's host:port on 127.0.0.1, for looking at the
	// data directly.
	MasterAddr string

	master, sentinel *Server
	once             sync.Once
}

// sentinelMasterName is the master's name in the Sentinel's configuration.
const sentinelMasterName = "mymaster"

// StartSentinel starts a master redis-server and a Sentinel (redis-server
// in sentinel mode, so no redis-sentinel package is needed) monitoring it
// with a quorum of 1, and returns once the Sentinel gives the master's
// address. Call it once per test binary, from TestMain, and Close the result
// before os.Exit. Without redis-server on PATH it fails.
func StartSentinel() (*Sentinel, error) {
	bin, err := lookRedis("redis-server")
	if err != nil {
		return nil, err
	}
	master, err := Start()
	if err != nil {
		return nil, err
	}
	s := &Sentinel{MasterName: sentinelMasterName, MasterAddr: master.Addr, master: master}
	var lastErr error
	for range spawnAttempts {
		if s.sentinel, lastErr = startSentinel(bin, master.Addr); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		s.Close()
		return nil, lastErr
	}
	s.SentinelAddr = s.sentinel.Addr
	if err := s.waitMaster(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// SentinelFailover is a master, a replica of it and a Sentinel that
// promotes the replica a second after the master stops answering.
type SentinelFailover struct {
	*Sentinel
	replica *Server
}

// StartSentinelFailover starts a master, a replica of it and a Sentinel
// with a quick failover (down after 1 s), and returns once the replica is
// in sync and the Sentinel knows the master. Close it at the end.
func StartSentinelFailover() (*SentinelFailover, error) {
	bin, err := lookRedis("redis-server")
	if err != nil {
		return nil, err
	}
	master, err := start(bin, "--repl-diskless-sync-delay", "0")
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(master.Addr)
	replica, err := start(bin, "--replicaof", host, port)
	if err != nil {
		master.Close()
		return nil, err
	}
	f := &SentinelFailover{Sentinel: &Sentinel{MasterName: sentinelMasterName, MasterAddr: master.Addr, master: master}, replica: replica}
	for range spawnAttempts {
		if f.sentinel, err = startSentinel(bin, master.Addr,
			"sentinel down-after-milliseconds "+sentinelMasterName+" 1000",
			"sentinel failover-timeout "+sentinelMasterName+" 5000"); err == nil {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	f.SentinelAddr = f.sentinel.Addr
	if err := f.waitMaster(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.WaitReplicated(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// WaitReplicated returns once the replica has every write the master took.
func (f *SentinelFailover) WaitReplicated() error {
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	rdb := probeClient(f.master.Addr)
	defer rdb.Close()
	if err := poll(ctx, f.master.exited, func() error {
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:1") {
			return fmt.Errorf("replica not connected:\n%s", info)
		}
		return nil
	}); err != nil {
		return err
	}
	return caughtUp(ctx, rdb, f.master.exited)
}

// caughtUp returns once every replica of the master rdb talks to (if it
// is one) has what the master had written when it was called: writes
// that go on meanwhile are not waited for.
func caughtUp(ctx context.Context, rdb *redis.Client, exited <-chan struct{}) error {
	target := int64(-1)
	return poll(ctx, exited, func() error {
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master") {
			return nil
		}
		for _, line := range strings.Fields(info) {
			if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok && target < 0 {
				target, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		for _, line := range strings.Fields(info) {
			_, fields, ok := strings.Cut(line, ":")
			if !ok || !strings.HasPrefix(line, "slave") || !strings.Contains(fields, "offset=") {
				continue
			}
			for _, kv := range strings.Split(fields, ",") {
				if v, ok := strings.CutPrefix(kv, "offset="); ok {
					if n, _ := strconv.ParseInt(v, 10, 64); n < target {
						return fmt.Errorf("replica behind: %s (master was at %d)", line, target)
					}
				}
			}
		}
		return nil
	})
}

// KillMaster stops the master at once, as kill -9 would.
func (f *SentinelFailover) KillMaster() { f.master.Close() }

// Close stops them all.
func (f *SentinelFailover) Close() {
	f.Sentinel.Close()
	if f.replica != nil {
		f.replica.Close()
	}
}

// startSentinel starts a Sentinel on a free port monitoring masterAddr,
// with more config lines.
func startSentinel(bin, masterAddr string, lines ...string) (*Server, error) {
	host, masterPort, err := net.SplitHostPort(masterAddr)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "aiproxy-redis-sentinel-")
	if err != nil {
		return nil, err
	}
	// Sentinel refuses to start without a config file it can rewrite: it
	// records its id and what it learns there.
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nloglevel warning\nsentinel monitor %s %s %s 1\n",
		ports[0], dir, sentinelMasterName, host, masterPort)
	for _, l := range lines {
		text += l + "\n"
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return spawn(bin, ports[0], dir, conf, "--sentinel")
}

// waitMaster polls the Sentinel until it names the master, which is what a
// failover client asks first.
func (s *Sentinel) waitMaster() error {
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	sc := redis.NewSentinelClient(&redis.Options{
		Addr:        s.SentinelAddr,
		DialTimeout: time.Second,
		ReadTimeout: time.Second,
		MaxRetries:  -1,
	})
	defer sc.Close()
	err := poll(ctx, s.sentinel.exited, func() error {
		addr, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		if err != nil {
			return err
		}
		if len(addr) != 2 || net.JoinHostPort(addr[0], addr[1]) != s.MasterAddr {
			return fmt.Errorf("master %s is at %v, want %s", s.MasterName, addr, s.MasterAddr)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis sentinel on %s not ready: %v; its output:\n%s", s.SentinelAddr, err, s.sentinel.output.String())
	}
	return nil
}

// Close kills the Sentinel and the master, waits for them to exit and
// removes their directories. It is safe to call more than once.
func (s *Sentinel) Close() {
	s.once.Do(func() {
		if s.sentinel != nil {
			s.sentinel.Close()
		}
		s.master.Close()
	})
}

// lookRedis finds one of Redis' programs on PATH.
func lookRedis(name string) (string, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH: install it (e.g. apt-get install -y redis-server): %v", name, err)
	}
	return bin, nil
}

// probeClient returns a go-redis client for readiness polls: short
// timeouts and no retries, since poll retries.
func probeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:        addr,
		DialTimeout: time.Second,
		ReadTimeout: time.Second,
		MaxRetries:  -1,
	})
}

// poll calls check with growing pauses until it succeeds, the process
// behind exited exits, or ctx ends; the error then says why.
func poll(ctx context.Context, exited <-chan struct{}, check func() error) error {
	backoff := 5 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before being ready")
		case <-ctx.Done():
			return fmt.Errorf("%v; last error: %v", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}
