package keystore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/aiproxy/aiproxy/internal/redistest"
)

// Redis servers shared by every test of this package: a single node, a
// Redis Cluster and a master behind Sentinel, the three kinds of deployment
// RedisStore supports.
var (
	testRedis    *redistest.Server
	testCluster  *redistest.Cluster
	testSentinel *redistest.Sentinel
)

// testClusterNodes is the size of testCluster: the fewest masters that
// redis-cli --cluster create accepts, enough for the stores' hash tags to
// land on different nodes.
const testClusterNodes = 3

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests starts the servers, runs the tests and stops the servers again,
// so that TestMain can exit with its result after the deferred Closes ran.
func runTests(m *testing.M) int {
	var err error
	if testRedis, err = redistest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "keystore tests:", err)
		return 1
	}
	defer testRedis.Close()
	if testCluster, err = redistest.StartCluster(testClusterNodes); err != nil {
		fmt.Fprintln(os.Stderr, "keystore tests:", err)
		return 1
	}
	defer testCluster.Close()
	if testSentinel, err = redistest.StartSentinel(); err != nil {
		fmt.Fprintln(os.Stderr, "keystore tests:", err)
		return 1
	}
	defer testSentinel.Close()
	return m.Run()
}

// module is what both store modules are to Caddy.
type module interface {
	caddy.Provisioner
	caddy.CleanerUpper
}

// provision provisions m the way Caddy does and cleans it up after the test.
func provision(tb testing.TB, m module) {
	tb.Helper()
	if err := provisionErr(tb, m); err != nil {
		tb.Fatalf("provision: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Cleanup(); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
}

// provisionErr provisions m and returns the error, if any.
func provisionErr(tb testing.TB, m module) error {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	return m.Provision(ctx)
}

// newFileStore returns a provisioned FileStore on a fresh file.
func newFileStore(tb testing.TB) *FileStore {
	s := &FileStore{Path: filepath.Join(tb.TempDir(), "aiproxy.db")}
	provision(tb, s)
	return s
}

var prefixSeq atomic.Int64

// uniquePrefix returns a key prefix no other test uses, so that tests share
// one redis-server without seeing each other's data.
func uniquePrefix() string {
	return fmt.Sprintf("test%d:", prefixSeq.Add(1))
}

// newRedisStore returns a provisioned RedisStore on the test server under a
// fresh key prefix.
func newRedisStore(tb testing.TB) *RedisStore {
	s := &RedisStore{Addresses: []string{testRedis.Addr}, KeyPrefix: uniquePrefix()}
	provision(tb, s)
	return s
}
