package keystore

import (
	"context"
	"fmt"

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

// Printf implements go-redis' logging interface.
func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("go-redis").Warn(fmt.Sprintf(format, v...))
}
