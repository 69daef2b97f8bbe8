// Package admin serves aiproxy's two admin interfaces over one key store:
//
//   - the JSON REST API under /admin/, authenticated with
//     "Authorization: Bearer <admin_token>" (see ServeREST);
//   - the original worker's text routes /{admin_token}/register/{name} and
//     friends, kept so existing scripts keep working (see ServeWorkerRoutes).
//
// Neither ever shows a user key after it is issued, nor an upstream key at all,
// and neither logs keys or the admin token. Both count wrong admin tokens per
// client and refuse a client that sent too many for a while (authThrottle).
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/usage"
)

// Handler serves the admin API. Construct it once at provision time and do not
// change its fields afterwards; it is safe for concurrent use.
type Handler struct {
	// Store holds users and upstream hosts. Required.
	Store keystore.Store

	// Token is the admin token, non-empty (the caller validated it). An empty
	// token matches nothing, so a misconfiguration locks the admin API rather
	// than opening it.
	Token string

	// Logger receives failures and an audit line per mutation. Keys, tokens
	// and upstream keys are never logged. Nil means no logging.
	Logger *zap.Logger

	// Now returns the current time; nil means time.Now. Times are kept in UTC.
	Now func() time.Time

	// ConfiguredHosts are the hosts the config names, default upstream
	// included, which GET /admin/hosts shows beside the stored ones.
	ConfiguredHosts []ConfiguredHost

	// HostsChanged, when set, is called after every successful host mutation
	// so that the proxy drops its cached host list.
	HostsChanged func()

	// UsersChanged, when set, is called after a user's key is reset, its
	// expiry set or the user deleted, so that the proxy closes the open
	// sessions of a key that is no longer valid at once.
	UsersChanged func()

	// CheckPolicy, when set, checks a user's policy as the site applies it
	// (e.g. that a USD budget only meets priced models) before it is stored.
	CheckPolicy func(keystore.Policy) error

	// Spend, when set, tells what a user may spend and has left now, for
	// GET /admin/users/{name} (and the proxy's GET /me).
	Spend func(ctx context.Context, u keystore.User) (*SpendObject, error)

	// KeyState, when set, tells what this instance learnt of a provider
	// key from its answers (nil: nothing, it is in use), for GET
	// /admin/hosts.
	KeyState func(host, key string) *KeyState

	// RestoreKeys, when set, puts a host's resting and set-aside keys
	// back in use in this instance and returns how many there were.
	RestoreKeys func(host string) int

	// Usage answers usage queries (GET /admin/usage); nil answers 501.
	Usage usage.QueryFunc

	// Requests reads the request log for GET /admin/requests: at most
	// limit records (1 to RequestLogSize), of user only when set, newest
	// first. Nil: the log is off, and the route answers 404.
	Requests func(ctx context.Context, user string, limit int) ([]keystore.RequestRecord, error)

	// RequestLogSize is the request log's size: the most records GET
	// /admin/requests returns. Required with Requests.
	RequestLogSize int

	// ValidHost validates a lowercased host name; nil means keystore.ValidHostName.
	ValidHost func(string) error

	// ClientIP returns the IP address failed authentications are counted
	// under (see authThrottle), e.g. the client address Caddy found behind
	// trusted proxies. Nil or "" means the host of RemoteAddr.
	ClientIP func(*http.Request) string

	once      sync.Once
	tokenSum  [sha256.Size]byte
	restMux   *http.ServeMux
	logger    *zap.Logger
	validHost func(string) error
	throttle  *authThrottle
}

// setup derives what every request needs. It runs once, on first use, so that
// callers can build a Handler as a plain struct literal.
func (h *Handler) setup() {
	h.once.Do(func() {
		h.tokenSum = sha256.Sum256([]byte(h.Token))
		h.logger = h.Logger
		if h.logger == nil {
			h.logger = zap.NewNop()
		}
		h.validHost = h.ValidHost
		if h.validHost == nil {
			h.validHost = keystore.ValidHostName
		}
		h.restMux = h.newRESTMux()
		h.throttle = newAuthThrottle(h.now)
	})
}

// tokenMatches reports whether candidate is the admin token. Comparing
// fixed-size digests in constant time leaks neither the token's content nor
// its length through timing.
func (h *Handler) tokenMatches(candidate string) bool {
	if h.Token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(candidate))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1
}

// now returns the current time in UTC.
func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// usersChanged tells the proxy that a user's key may no longer be valid.
func (h *Handler) usersChanged() {
	if h.UsersChanged != nil {
		h.UsersChanged()
	}
}

// hostsChanged tells the proxy that the stored hosts changed.
func (h *Handler) hostsChanged() {
	if h.HostsChanged != nil {
		h.HostsChanged()
	}
}
