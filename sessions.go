package aiproxy

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/aiproxy/aiproxy/keystore"
)

// defaultSessionCheck is how often the keys of open sessions are checked.
const defaultSessionCheck = 2 * time.Second

// The causes a session's context ends with when its key stops being valid.
var (
	errKeyRevoked = errors.New("the key was reset or deleted")
	errKeyExpired = errors.New("the key expired")
)

// sessionTable keeps the open upgraded connections (Realtime WebSockets)
// by key. A key is checked when a request starts, but an upgraded
// connection lasts as long as the client likes: the table lets a key that
// is reset, deleted or expires close the connections opened with it.
//
// It holds one entry per open connection, removed when the connection
// ends: it is as large as the connections Caddy itself holds. While any
// is open, a goroutine checks each distinct key against the store every
// interval (one lookup per key), and at once after a change made through
// this instance. The goroutine lives as long as the connections, not the
// config: after a reload with stream_close_delay, the old config's
// sessions are still checked until Caddy closes them.
//
// Ending a session's context is what closes it: Caddy's reverse proxy
// closes the provider's connection when the request context ends, its
// copy loop then fails and it closes the client's connection (a plain
// close, without a WebSocket Close frame).
type sessionTable struct {
	store    keystore.Store
	interval time.Duration
	now      func() time.Time
	logger   *zap.Logger
	outage   *outageLog

	mu      sync.Mutex
	byKey   map[string]map[*session]struct{} // key hash -> its open sessions
	running bool                             // the checking goroutine runs
	wake    chan struct{}                    // (buffer 1) check at once
}

// session is one open upgraded connection.
type session struct {
	user   string
	cancel context.CancelCauseFunc
}

func newSessionTable(store keystore.Store, interval time.Duration, logger *zap.Logger) *sessionTable {
	return &sessionTable{
		store:    store,
		interval: interval,
		now:      time.Now,
		logger:   logger,
		outage: newOutageLog(logger, zapcore.WarnLevel,
			"checking the keys of open WebSocket sessions failed; they stay open until the store answers",
			"checking the keys of open WebSocket sessions works again"),
		byKey: map[string]map[*session]struct{}{},
		wake:  make(chan struct{}, 1),
	}
}

// isUpgrade reports whether r asks for a connection that outlives the
// request: an HTTP/1.1 Upgrade (WebSocket), or an extended CONNECT
// (WebSocket over HTTP/2 or HTTP/3).
func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || r.Method == http.MethodConnect
}

// open registers a session of user's key. It returns the context to serve
// it with, which ends when the key stops being valid, and the function to
// call when the session is over.
func (t *sessionTable) open(ctx context.Context, user keystore.User) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &session{user: user.Name, cancel: cancel}
	hash := user.KeyHash
	t.mu.Lock()
	set := t.byKey[hash]
	if set == nil {
		set = map[*session]struct{}{}
		t.byKey[hash] = set
	}
	set[s] = struct{}{}
	if !t.running {
		t.running = true
		go t.run()
	}
	t.mu.Unlock()
	return ctx, func() {
		t.mu.Lock()
		delete(set, s)
		// set may be detached already (close), and another set may
		// stand under hash since: remove the entry only if it is empty.
		if len(t.byKey[hash]) == 0 {
			delete(t.byKey, hash)
		}
		t.mu.Unlock()
		cancel(nil)
	}
}

// recheck asks for a check at once: a key was just reset, deleted or given
// another expiry through this instance.
func (t *sessionTable) recheck() {
	select {
	case t.wake <- struct{}{}:
	default: // a check is already due
	}
}

// run checks the open sessions' keys until none is open.
func (t *sessionTable) run() {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-t.wake:
		}
		if !t.check() {
			return
		}
	}
}

// check looks up each distinct key of the open sessions once and closes
// the sessions of keys that are gone or expired. A store that fails keeps
// the sessions open: an outage must not cut every session. It reports
// whether any session is left open; when none is, the checking goroutine
// stops (under the lock, so that open starts another).
func (t *sessionTable) check() bool {
	t.mu.Lock()
	if len(t.byKey) == 0 {
		t.running = false
		t.mu.Unlock()
		return false
	}
	hashes := make([]string, 0, len(t.byKey))
	for hash := range t.byKey {
		hashes = append(hashes, hash)
	}
	t.mu.Unlock()

	for _, hash := range hashes {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		user, err := t.store.LookupKey(ctx, hash)
		cancel()
		switch {
		case errors.Is(err, keystore.ErrNotFound):
			t.close(hash, errKeyRevoked)
		case err != nil:
			// The other keys would fail alike: try again next time.
			t.outage.fail(err)
			return true
		case !user.ExpiresAt.IsZero() && !t.now().Before(user.ExpiresAt):
			t.close(hash, errKeyExpired)
		}
	}
	t.outage.ok()
	return true
}

// close ends the sessions of one key and forgets them, so that the next
// check neither looks the key up nor logs them again.
func (t *sessionTable) close(hash string, cause error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.byKey[hash] {
		t.logger.Info("closing a WebSocket session: "+cause.Error(), zap.String("user", s.user))
		s.cancel(cause)
	}
	delete(t.byKey, hash)
}
