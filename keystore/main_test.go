package keystore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/aiproxy/aiproxy/internal/testutil"
)

// testRedis is the redis-server shared by every test of this package.
var testRedis *testutil.Redis

func TestMain(m *testing.M) {
	r, err := testutil.StartRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keystore tests:", err)
		os.Exit(1)
	}
	testRedis = r
	code := m.Run()
	r.Close()
	os.Exit(code)
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
