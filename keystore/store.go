// Package keystore holds aiproxy's persistent state: users (whose API keys are
// kept only as SHA-256 hashes), the upstream hosts with their provider keys,
// usage counts per user, model and day, and a capped log of recent
// requests.
//
// Two implementations satisfy Store: an embedded bbolt file (the default) and
// Redis (single node, Sentinel or Cluster through go-redis' UniversalClient).
// Both are shared across Caddy config reloads through a caddy.UsagePool.
package keystore

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every Store implementation. Callers compare with errors.Is.
var (
	// ErrNotFound means the user, key or host does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a user with that name already exists.
	ErrExists = errors.New("already exists")
	// ErrUnavailable wraps failures of the backing store (network, timeout,
	// I/O). The proxy answers 503 for it.
	ErrUnavailable = errors.New("key store unavailable")
)

// User is one person or app allowed through the proxy. The plain key is never
// stored: only its SHA-256 (KeyHash) and a short hint for listings.
type User struct {
	// Name is the unique user name (1-64 of A-Za-z0-9._@-).
	Name string `json:"name"`
	// ID is the user's identity, given by the store at creation (see
	// NewUserID) and never changed. Usage is kept per ID, so a user deleted
	// and created again under the same name starts with no usage.
	ID string `json:"id,omitempty"`
	// KeyHash is the lowercase hex SHA-256 of the user's current key.
	KeyHash string `json:"key_hash"`
	// KeyHint is "sk-cfw..." plus the key's last 4 characters.
	KeyHint string `json:"key_hint"`
	// CreatedAt is when the user was created (UTC).
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt, when non-zero, is when the key stops working (UTC).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Policy is what the user may spend, over the site's defaults.
	Policy
}

// UpstreamKey is one provider API key registered for a host.
type UpstreamKey struct {
	// ID identifies the key within its host (short random hex), for deletion.
	ID string `json:"id"`
	// Key is the provider's secret key, sent upstream as a Bearer token.
	Key string `json:"key"`
}

// Host is an upstream provider a client may select with X-Host-Final.
type Host struct {
	// Name is the exact host name clients put in X-Host-Final (lowercase).
	Name string `json:"name"`
	// BaseURL is where requests go; empty means "https://" + Name.
	BaseURL string `json:"base_url,omitempty"`
	// Keys are the provider keys requests are spread over.
	Keys []UpstreamKey `json:"keys"`
	// Models are the models routed to this host (exact names or globs),
	// as a configured host's models are; nil: none.
	Models []string `json:"models,omitempty"`
}

// Store is the persistence contract. Every method is safe for concurrent use.
// Methods that touch a user's key (CreateUser, ResetKey, DeleteUser) are
// atomic: once they return, a replaced or deleted key is refused by LookupKey.
// Backend failures are returned wrapped in ErrUnavailable.
type Store interface {
	// LookupKey returns the user whose current key hashes to keyHash.
	// It is the only call on the proxy's hot path: one read.
	LookupKey(ctx context.Context, keyHash string) (User, error)

	// CreateUser stores u (Name, KeyHash, KeyHint, CreatedAt, ExpiresAt),
	// with a new ID when u.ID is empty. ErrExists if the name is taken.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user by name, or ErrNotFound.
	GetUser(ctx context.Context, name string) (User, error)
	// ListUsers returns all users sorted by name.
	ListUsers(ctx context.Context) ([]User, error)
	// ResetKey atomically replaces the user's key hash and hint, keeping the
	// other fields, and returns the updated user. ErrNotFound if absent.
	ResetKey(ctx context.Context, name, keyHash, keyHint string) (User, error)
	// SetExpiry sets (or, with the zero time, clears) the user's expiry and
	// returns the updated user. ErrNotFound if absent.
	SetExpiry(ctx context.Context, name string, expiresAt time.Time) (User, error)
	// DeleteUser removes the user and its key. ErrNotFound if absent.
	DeleteUser(ctx context.Context, name string) error
	// UpdatePolicy applies change to the user's Policy atomically, so
	// concurrent changes of different fields all hold, and returns the
	// updated user. An error from change leaves the user as it was and is
	// returned as it is. ErrNotFound if absent.
	UpdatePolicy(ctx context.Context, name string, change func(*Policy) error) (User, error)

	// AddHostKey registers key for host, creating the host if needed, and
	// returns the new key's ID. A non-empty baseURL sets or replaces the
	// host's BaseURL; an empty one leaves it as it is.
	AddHostKey(ctx context.Context, host, baseURL, key string) (id string, err error)
	// SetHostModels sets (nil: clears) the models routed to a stored host
	// and returns it. ErrNotFound if absent.
	SetHostModels(ctx context.Context, host string, models []string) (Host, error)
	// ListHosts returns all stored hosts sorted by name, keys in insertion order.
	ListHosts(ctx context.Context) ([]Host, error)
	// DeleteHostKey removes one key; the host goes too when it has none left.
	// ErrNotFound if the host or the key is absent.
	DeleteHostKey(ctx context.Context, host, id string) error
	// DeleteHost removes the host and all its keys. ErrNotFound if absent.
	DeleteHost(ctx context.Context, host string) error

	// AddUsage adds the batch's counts to the stored ones, each user's rows
	// atomically and at most once (see UsageBatch); a count that would pass
	// MaxUsageCount stops there. On an error some users' rows may have been
	// applied: the caller sends the same batch again. A batch that fails
	// UsageBatch's rules (a bad writer, sequence number, date, user name or
	// ID) fails whole, and nothing is written.
	AddUsage(ctx context.Context, b UsageBatch) error
	// QueryUsage returns the rows of the days from f.From to f.To inclusive
	// that match f's user, user ID and model, sorted by date, user, user ID
	// and model. A range longer than MaxUsageRangeDays, a missing or
	// malformed bound, or To before From fail the call. Its cost grows with
	// the rows of the users it selects, not with the whole store.
	QueryUsage(ctx context.Context, f UsageFilter) ([]UsageRow, error)

	// Admit checks one request against a.Allowance and, when every limit
	// holds, reserves its upper bound, all in one atomic step, so that
	// instances sharing the store never admit more than the limits allow
	// (see spend.go). A denial reserves nothing.
	Admit(ctx context.Context, a Admission) (Verdict, error)
	// Settle replaces admitted requests' reservations by what they used,
	// and lets their leases go; several at once take one round trip. On an
	// error some may have been settled: settling one again is not
	// idempotent, so a caller does not retry (a reservation left standing
	// only holds its user to more than it used).
	Settle(ctx context.Context, s ...Settlement) error
	// RenewLease keeps a request that lasts longer than LeaseTTL counted
	// in flight; a no-op when the lease is gone.
	RenewLease(ctx context.Context, user, userID, lease string, now time.Time) error
	// Spending returns what the user has spent now.
	Spending(ctx context.Context, q SpendQuery) (Spending, error)

	// AppendRequests adds records, oldest first, to the request log, which
	// keeps about the newest keep of them (1 to MaxRequestLog): the file
	// store exactly that many, Redis some more until it trims. A record a
	// store cannot keep (see RequestRecord) fails the call whole, and
	// nothing is written. On an error some records may have been written:
	// the caller sends them again, and their IDs keep them from showing
	// twice.
	AppendRequests(ctx context.Context, keep int, recs []RequestRecord) error
	// RecentRequests returns the request log's newest records that q
	// selects, newest first by when they were appended, reading at most
	// q.Scan of them.
	RecentRequests(ctx context.Context, q RequestQuery) ([]RequestRecord, error)
}
