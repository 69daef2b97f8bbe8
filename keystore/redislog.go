package keystore

import (
	"context"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// go-redis writes its own diagnostics (failed dials, pool trouble) with the
// standard library logger straight to stderr, outside Caddy's structured
// logs. Its logger is process-wide, so it is set once here; caddy.Log() is
// looked up at each call so that the running config's logging applies.
func init() {
	redis.SetLogger(redisLogger{})
}

// redisLogger hands go-redis' messages to Caddy's default logger.
type redisLogger struct{}

// Printf implements go-redis' logging interface. Sentinel's routine news
// (a master found, an address chosen) is Info; the rest is trouble: Warn.
func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	logger := caddy.Log().Named("go-redis")
	if strings.HasPrefix(msg, "sentinel: new master") || strings.HasPrefix(msg, "sentinel: selected addr") {
		logger.Info(msg)
		return
	}
	logger.Warn(msg)
}
