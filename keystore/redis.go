package keystore

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(RedisStore{})
}

// Defaults of RedisStore.
const (
	// DefaultRedisAddress is dialed when no address is configured.
	DefaultRedisAddress = "127.0.0.1:6379"
	// DefaultRedisSentinelAddress is dialed when master_name is set but no
	// address is configured.
	DefaultRedisSentinelAddress = "127.0.0.1:26379"
	// DefaultRedisKeyPrefix starts every key: its hash tag is {aiproxy}.
	DefaultRedisKeyPrefix = "aiproxy:"
	// DefaultRedisTimeout bounds each dial, read, write and pool wait.
	DefaultRedisTimeout = 500 * time.Millisecond
)

// maxTxAttempts bounds the optimistic-locking retries of one mutation. Every
// round lets at least one contender through, so this is plenty for admin
// traffic; the call's deadline bounds the loop in time as well.
const maxTxAttempts = 32

// maxRetryBackoff caps go-redis' pause before its one retry, keeping a
// failing call within twice the timeout.
const maxRetryBackoff = 100 * time.Millisecond

// RedisStore keeps users and hosts in Redis: a single node, a Redis Cluster
// (several addresses) or a master found through Sentinel (master_name). Use it
// to run several Caddy instances on one set of users.
//
// The layout spreads over a Cluster's shards: what belongs to one user
// shares that user's hash tag, key index entries spread by the key's hash,
// and only admin-path data (the name sets, hosts) and the request log,
// written a batch at a time, share one global tag.
// With the default key_prefix "aiproxy:":
//
//	aiproxy:key:<sha256hex>         string, the user name the key belongs to
//	aiproxy:{u:<name>}:user         string, JSON User: the authority on the key
//	aiproxy:{u:<name>}:ids          set of the IDs users of this name have had
//	aiproxy:{u:<name>}:usage:<id>:<YYYY-MM>
//	                                hash, one month of one user's usage:
//	                                field "<DD>|<model>|<counter>", integer
//	aiproxy:{u:<name>}:applied      hash, usage writer -> "<seq> <unix time>"
//	aiproxy:{u:<name>}:win:<id>     hash, one user ID's sliding minute: fields
//	                                "r:<unix second>" (requests) and
//	                                "t:<unix second>" (tokens); expires 2
//	                                minutes after its last write
//	aiproxy:{u:<name>}:lease:<id>   hash, lease -> when it lapses (unix ms),
//	                                under a max_parallel limit
//	aiproxy:{u:<name>}:spend:<id>:<period>
//	                                hash, a budget period's requests, tokens
//	                                and nano_usd (period "d2026-12-01",
//	                                "w2026-11-30", "m2026-12" or "total");
//	                                expires 7 days after the period ends
//	{aiproxy}:users                 set of user names (may hold deleted ones)
//	{aiproxy}:owners                set of "<name>/<id>" of every user ever created
//	{aiproxy}:host:<name>           string, JSON Host (its upstream keys, in order)
//	{aiproxy}:hosts                 set of host names
//	{aiproxy}:requests              stream, the request log: fields "u" (user
//	                                name) and "r" (JSON RequestRecord),
//	                                trimmed with MAXLEN ~ <request_log size>
//	{aiproxy}:layout                "2": the layout version (redis_migrate.go)
//
// A key lookup reads the index entry, then the user record, and accepts the
// key only if the record still holds its hash (on a single node or Sentinel
// one script does both in one round trip). So no change needs a transaction
// across slots: a reset writes the new index entry, then switches the
// record in one WATCH/MULTI, then deletes the old entry; a delete removes
// the record, then the entry and the name. Whatever step fails, the record
// decides, so an old or deleted key is refused from the moment the record
// changed, on every instance, and there are never two working keys.
//
// The request log (redis_requestlog.go) is one stream that every instance
// appends to: one shard takes its writes, a pipeline of XADD per batch.
//
// Usage is added per user by one Lua script that checks the writer's last
// applied sequence number, validates every counter, and only then writes:
// each user's part of a batch is counted once, whole (see UsageBatch).
// Queries read just the month hashes of the users they select.
//
// The spend ledger (redis_spend.go) runs one Lua script per call over one
// user ID's window, lease and period hashes, so instances sharing the store
// admit requests as one ledger would.
//
// Every call gives up after twice the timeout plus 100ms at most, so a dead
// or unresponsive Redis makes requests fail fast (503) instead of hanging.
// Usage reports get a longer bound (reportTimeout) and are read in chunks.
type RedisStore struct {
	// Addresses (host:port) of the Redis servers. One address connects to a
	// single node; several connect to a Redis Cluster (any of its nodes will
	// do); with master_name they are the Sentinel addresses. Placeholders such
	// as {env.REDIS_ADDR} are expanded. Default: 127.0.0.1:6379, or
	// 127.0.0.1:26379 with master_name.
	Addresses []string `json:"addresses,omitempty"`

	// Username for Redis ACL authentication (Redis 6+). Placeholders are expanded.
	Username string `json:"username,omitempty"`

	// Password for Redis authentication. Use a placeholder such as
	// {env.REDIS_PASSWORD} to keep it out of the config.
	Password string `json:"password,omitempty"`

	// DB is the logical database to select. Redis Cluster only has DB 0.
	DB int `json:"db,omitempty"`

	// KeyPrefix starts every key aiproxy writes; it must not contain braces.
	// Its text without the trailing colon becomes the keys' hash tag, so use
	// different prefixes to keep several deployments apart on one Redis.
	// Default: "aiproxy:".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// MasterName is the name of the master monitored by Sentinel. Setting it
	// makes Addresses the Sentinel addresses, whatever their number.
	MasterName string `json:"master_name,omitempty"`

	// TLS enables TLS to Redis, verified against the system's roots.
	TLS bool `json:"tls,omitempty"`

	// TLSServerName overrides the name the server certificate is verified
	// against (default: the host of the address dialed). Implies tls.
	TLSServerName string `json:"tls_server_name,omitempty"`

	// TLSInsecureSkipVerify disables verification of the server certificate.
	// It allows a man in the middle to read every key: for testing only.
	// Implies tls.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty"`

	// Timeout for connecting to Redis, for each read and write, and for
	// waiting on a pooled connection. A call is retried once, so it fails
	// after about twice this at worst. Default: 500ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	client      redis.UniversalClient
	tracking    *keyTracking // the key cache; shared like client
	keys        redisKeys
	layout      *layoutGate            // set by Provision
	ownersSeen  *ownerCache            // set by Provision
	crashAfter  func(step string) bool // tests: stop a change after this step
	callTimeout time.Duration
	poolKey     redisPoolKey // set while this instance holds a reference
	logger      *zap.Logger
}

// redisConn is the resolved connection part of the config: stores that
// agree on it share one client, whatever their key prefix.
type redisConn struct {
	Addrs                 []string      `json:"addrs"`
	Username              string        `json:"username"`
	Password              string        `json:"password"`
	DB                    int           `json:"db"`
	MasterName            string        `json:"master_name"`
	TLS                   bool          `json:"tls"`
	TLSServerName         string        `json:"tls_server_name"`
	TLSInsecureSkipVerify bool          `json:"tls_insecure_skip_verify"`
	Timeout               time.Duration `json:"timeout"`
}

// poolKey digests the settings so that the password does not sit in a map key.
func (c redisConn) poolKey() redisPoolKey {
	raw, _ := json.Marshal(c) // plain fields: cannot fail
	sum := sha256.Sum256(raw)
	return redisPoolKey(hex.EncodeToString(sum[:]))
}

// clusterStateReload is how often a Cluster client reads the slot map
// again. With one retry per command (below), a client learns of a
// replica that took over a dead master's slots only this way: go-redis'
// default of a minute would refuse that shard's users for as long.
const clusterStateReload = time.Second

// newClient returns the go-redis client of the settings: Sentinel, Cluster
// or single node.
func (c redisConn) newClient() redis.UniversalClient {
	opts := c.options()
	if opts.MasterName == "" && len(opts.Addrs) > 1 {
		cluster := opts.Cluster()
		cluster.ClusterStateReloadInterval = clusterStateReload
		return redis.NewClusterClient(cluster)
	}
	return redis.NewUniversalClient(opts)
}

// options maps the settings onto go-redis, which picks the client kind:
// a master name means Sentinel, several addresses mean Cluster.
func (c redisConn) options() *redis.UniversalOptions {
	opts := &redis.UniversalOptions{
		Addrs:      c.Addrs,
		ClientName: "aiproxy",
		Username:   c.Username,
		Password:   c.Password,
		DB:         c.DB,
		MasterName: c.MasterName,

		// One dial attempt and one command retry, each bounded by the
		// timeout: go-redis' defaults (5 dial attempts, 3 retries, 5s
		// timeouts) would hold a request for half a minute on a dead Redis.
		DialTimeout:           c.Timeout,
		DialerRetries:         1,
		ReadTimeout:           c.Timeout,
		WriteTimeout:          c.Timeout,
		PoolTimeout:           c.Timeout,
		MaxRetries:            1,
		MaxRetryBackoff:       maxRetryBackoff,
		ContextTimeoutEnabled: true,
	}
	if c.TLS {
		opts.TLSConfig = c.tlsConfig()
	}
	return opts
}

// tlsConfig is the TLS configuration of every connection to Redis.
func (c redisConn) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.TLSServerName,
		InsecureSkipVerify: c.TLSInsecureSkipVerify, //nolint:gosec // explicit, documented opt-in
	}
}

// redisKeys holds the key names of one prefix, computed once.
type redisKeys struct {
	prefix        string // the configured prefix, e.g. "aiproxy:"
	global        string // the global hash tag, e.g. "{aiproxy}:"
	users, owners string // the global name sets
	hosts         string // the global host name set
	hostEntry     string // prefix of host records
	layout        string // the layout version
	requests      string // the request log stream
	keyEntry      string // prefix of key index entries
}

// newRedisKeys derives the key names from a prefix: "aiproxy:" -> "{aiproxy}:...".
func newRedisKeys(prefix string) redisKeys {
	global := "{" + strings.TrimSuffix(prefix, ":") + "}:"
	return redisKeys{
		prefix:    prefix,
		global:    global,
		users:     global + "users",
		owners:    global + "owners",
		hosts:     global + "hosts",
		hostEntry: global + "host:",
		layout:    global + "layout",
		requests:  global + "requests",
		keyEntry:  prefix + "key:",
	}
}

// userTag starts every key of one user: they share its hash tag.
func (k redisKeys) userTag(name string) string { return k.prefix + "{u:" + name + "}:" }

func (k redisKeys) user(name string) string    { return k.userTag(name) + "user" }
func (k redisKeys) userIDs(name string) string { return k.userTag(name) + "ids" }
func (k redisKeys) applied(name string) string { return k.userTag(name) + "applied" }
func (k redisKeys) key(hash string) string     { return k.keyEntry + hash }

// usageMonth is the hash of one user ID's usage in one month (YYYY-MM).
func (k redisKeys) usageMonth(name, id, month string) string {
	return k.userTag(name) + "usage:" + id + ":" + month
}

// CaddyModule returns the Caddy module information.
func (RedisStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "aiproxy.stores.redis",
		New: func() caddy.Module { return new(RedisStore) },
	}
}

// Provision expands placeholders, checks the settings and connects, sharing
// the client with any running config that has the same connection settings.
func (s *RedisStore) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()

	conn, prefix, err := s.resolve()
	if err != nil {
		return err
	}
	s.keys = newRedisKeys(prefix)
	s.layout = new(layoutGate)
	s.ownersSeen = new(ownerCache)
	s.callTimeout = 2*conn.Timeout + maxRetryBackoff

	key := conn.poolKey()
	val, loaded, err := handles.LoadOrNew(key, func() (caddy.Destructor, error) {
		client := conn.newClient()
		tracking := newKeyTracking(conn, client, s.logger)
		tracking.start()
		return redisHandle{client: client, tracking: tracking}, nil
	})
	if err != nil {
		return fmt.Errorf("redis key store: %v", err)
	}
	s.client = val.(redisHandle).client
	s.tracking = val.(redisHandle).tracking
	s.poolKey = key

	if conn.TLSInsecureSkipVerify {
		s.logger.Warn("redis key store: TLS certificate verification is disabled")
	}
	if !loaded {
		// Redis may come up after Caddy: warn now rather than refuse to
		// start; requests get 503 until it answers.
		pctx, cancel := context.WithTimeout(ctx, s.callTimeout)
		defer cancel()
		if err := s.client.Ping(pctx).Err(); err != nil {
			s.logger.Warn("redis key store is not reachable yet",
				zap.Strings("addresses", conn.Addrs), zap.Error(err))
			return nil // the first call migrates, if need be
		}
	}
	mctx, cancel := context.WithTimeout(ctx, migrationLockTTL+s.callTimeout)
	defer cancel()
	if err := s.ensureLayout(mctx); err != nil {
		s.logger.Warn("redis key store: checking the key layout failed; will retry at the next call", zap.Error(err))
	}
	return nil
}

// resolve returns the effective connection settings and key prefix:
// placeholders expanded, defaults applied, and combinations checked.
func (s *RedisStore) resolve() (redisConn, string, error) {
	repl := caddy.NewReplacer()
	expand := func(v string) string { return repl.ReplaceKnown(v, "") }

	c := redisConn{
		Username:              expand(s.Username),
		Password:              expand(s.Password),
		DB:                    s.DB,
		MasterName:            expand(s.MasterName),
		TLSServerName:         expand(s.TLSServerName),
		TLSInsecureSkipVerify: s.TLSInsecureSkipVerify,
		Timeout:               time.Duration(s.Timeout),
	}
	c.TLS = s.TLS || c.TLSServerName != "" || c.TLSInsecureSkipVerify
	for _, a := range s.Addresses {
		// One placeholder may hold several space-separated addresses.
		for _, a := range strings.Fields(expand(a)) {
			if _, _, err := net.SplitHostPort(a); err != nil || strings.Contains(a, "/") {
				return c, "", fmt.Errorf("redis key store: address %q: want host:port", a)
			}
			c.Addrs = append(c.Addrs, a)
		}
	}
	if len(c.Addrs) == 0 {
		c.Addrs = []string{DefaultRedisAddress}
		if c.MasterName != "" {
			c.Addrs = []string{DefaultRedisSentinelAddress}
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultRedisTimeout
	}
	if c.Timeout < 0 {
		return c, "", fmt.Errorf("redis key store: timeout must be positive, got %v", c.Timeout)
	}
	if c.DB < 0 {
		return c, "", fmt.Errorf("redis key store: db must not be negative, got %d", c.DB)
	}
	if c.DB != 0 && c.MasterName == "" && len(c.Addrs) > 1 {
		return c, "", fmt.Errorf("redis key store: several addresses mean Redis Cluster, which only has db 0")
	}

	prefix := expand(s.KeyPrefix)
	if prefix == "" {
		prefix = DefaultRedisKeyPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return c, "", fmt.Errorf("redis key store: key_prefix %q must not contain braces: they would break the hash tag", prefix)
	}
	return c, prefix, nil
}

// Cleanup releases this instance's reference to the client; the connections
// are closed when no config uses them any more. Calling it again does nothing.
func (s *RedisStore) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	key := s.poolKey
	s.poolKey = ""
	_, err := handles.Delete(key)
	return err
}

// call bounds one store operation in time, whatever go-redis does inside.
func (s *RedisStore) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.callTimeout)
}

// redisErr maps a go-redis error onto the package's errors.
func redisErr(err error) error {
	switch {
	case err == nil || isOwnError(err):
		return err
	case errors.Is(err, redis.Nil):
		return ErrNotFound
	default:
		return unavailable(err)
	}
}

// watch runs fn as an optimistic transaction over keys: fn reads, then
// writes with tx.TxPipelined, and is run again if another client changed a
// watched key in between.
func (s *RedisStore) watch(ctx context.Context, fn func(context.Context, *redis.Tx) error, keys ...string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.watchIn(ctx, fn, keys...)
}

// watchIn is watch within the caller's time bound, for a step of a call.
func (s *RedisStore) watchIn(ctx context.Context, fn func(context.Context, *redis.Tx) error, keys ...string) error {
	for range maxTxAttempts {
		err := s.client.Watch(ctx, func(tx *redis.Tx) error { return fn(ctx, tx) }, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return redisErr(err)
		}
	}
	return unavailable(fmt.Errorf("gave up after %d conflicting concurrent updates", maxTxAttempts))
}

// decodeUser decodes a stored user; a record that does not decode makes the
// store unusable for it, hence ErrUnavailable.
func decodeUser(raw []byte) (User, error) {
	var u User
	if err := json.Unmarshal(raw, &u); err != nil {
		return User{}, unavailable(fmt.Errorf("decoding user record: %w", err))
	}
	return u, nil
}

// decodeHost decodes a stored host, like decodeUser.
func decodeHost(raw []byte) (Host, error) {
	var h Host
	if err := json.Unmarshal(raw, &h); err != nil {
		return Host{}, unavailable(fmt.Errorf("decoding host record: %w", err))
	}
	return h, nil
}

// members returns the records of every name in the set, skipping names
// whose record was deleted between the two reads.
func (s *RedisStore) members(ctx context.Context, set, itemPrefix string) ([][]byte, error) {
	names, err := s.client.SMembers(ctx, set).Result()
	if err != nil || len(names) == 0 {
		return nil, redisErr(err)
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = itemPrefix + n
	}
	vals, err := s.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	raws := make([][]byte, 0, len(vals))
	for _, v := range vals {
		if str, ok := v.(string); ok {
			raws = append(raws, []byte(str))
		}
	}
	return raws, nil
}

// AddHostKey implements Store.
func (s *RedisStore) AddHostKey(ctx context.Context, host, baseURL, key string) (string, error) {
	hostKey := s.keys.hostEntry + host
	var id string
	err := s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
		h := Host{Name: host}
		raw, err := tx.Get(ctx, hostKey).Bytes()
		switch {
		case err == nil:
			if h, err = decodeHost(raw); err != nil {
				return err
			}
		case !errors.Is(err, redis.Nil):
			return err
		}
		id = addHostKey(&h, baseURL, key)
		if raw, err = json.Marshal(h); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, hostKey, raw, 0)
			p.SAdd(ctx, s.keys.hosts, host)
			return nil
		})
		return err
	}, hostKey)
	if err != nil {
		return "", err
	}
	return id, nil
}

// SetHostModels implements Store: the host's record holds its models.
func (s *RedisStore) SetHostModels(ctx context.Context, host string, models []string) (Host, error) {
	hostKey := s.keys.hostEntry + host
	var out Host
	err := s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
		raw, err := tx.Get(ctx, hostKey).Bytes()
		if err != nil {
			return err // redis.Nil: ErrNotFound
		}
		h, err := decodeHost(raw)
		if err != nil {
			return err
		}
		h.Models = models
		if raw, err = json.Marshal(h); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, hostKey, raw, 0)
			return nil
		})
		out = h
		return err
	}, hostKey)
	if err != nil {
		return Host{}, err
	}
	return out, nil
}

// ListHosts implements Store: the name set, then one MGET of the records.
func (s *RedisStore) ListHosts(ctx context.Context) ([]Host, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	raws, err := s.members(ctx, s.keys.hosts, s.keys.hostEntry)
	if err != nil {
		return nil, err
	}
	hosts := make([]Host, 0, len(raws))
	for _, raw := range raws {
		h, err := decodeHost(raw)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	return hosts, nil
}

// DeleteHostKey implements Store.
func (s *RedisStore) DeleteHostKey(ctx context.Context, host, id string) error {
	hostKey := s.keys.hostEntry + host
	return s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
		raw, err := tx.Get(ctx, hostKey).Bytes()
		if err != nil {
			return redisErr(err)
		}
		h, err := decodeHost(raw)
		if err != nil {
			return err
		}
		if !removeHostKey(&h, id) {
			return ErrNotFound
		}
		if raw, err = json.Marshal(h); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if len(h.Keys) == 0 {
				p.Del(ctx, hostKey)
				p.SRem(ctx, s.keys.hosts, host)
			} else {
				p.Set(ctx, hostKey, raw, 0)
			}
			return nil
		})
		return err
	}, hostKey)
}

// DeleteHost implements Store. Nothing is read first, so a plain
// MULTI/EXEC is enough.
func (s *RedisStore) DeleteHost(ctx context.Context, host string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var del *redis.IntCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, s.keys.hostEntry+host)
		p.SRem(ctx, s.keys.hosts, host)
		return nil
	})
	if err != nil {
		return redisErr(err)
	}
	if del.Val() == 0 {
		return ErrNotFound
	}
	return nil
}

// Interface guards
var (
	_ Store                 = (*RedisStore)(nil)
	_ caddy.Provisioner     = (*RedisStore)(nil)
	_ caddy.CleanerUpper    = (*RedisStore)(nil)
	_ caddyfile.Unmarshaler = (*RedisStore)(nil)
)
