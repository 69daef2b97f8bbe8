package keystore

// requestlog.go: the request log's records and queries, which both stores
// keep as a capped log of the most recent proxied requests.

import (
	"errors"
	"fmt"
	"time"
)

// MaxRequestLog bounds the request log's size: the records a store keeps,
// and so the records a query may read.
const MaxRequestLog = 1_000_000

// Bounds of a record's text fields, in bytes. The proxy cuts a longer path
// before it queues a record; a store refuses a record past any of them.
const (
	MaxRequestPath  = 512
	maxRequestModel = 256
	maxRequestHost  = 255
	maxRequestUser  = 255 // users the store holds; names are not checked again
	maxRequestID    = 64
)

// RequestRecord is one proxied request as the request log keeps it. It
// never holds a body, a key or a header.
type RequestRecord struct {
	// ID identifies the record, so that a record written twice (a batch
	// sent again after a reply was lost) is returned once. Empty: none.
	ID string `json:"id,omitempty"`
	// Time is when the request finished (UTC, kept to the millisecond).
	Time time.Time `json:"time"`
	// User is the name of the user whose key the request carried.
	User string `json:"user"`
	// Model is the model the request is counted under in usage statistics.
	Model string `json:"model"`
	// Host is the provider host name the request went to (its last try).
	Host string `json:"host"`
	// Path is the request's canonical path, without its query.
	Path string `json:"path"`
	// Status is the HTTP status the client got (499: it left first).
	Status int `json:"status"`
	// PromptTokens and CompletionTokens are what the provider reported,
	// the completion estimated when it reported nothing.
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// CostNanoUSD is what the request cost, in nano-dollars; 0 when its
	// model has no price.
	CostNanoUSD int64 `json:"cost_nano_usd,omitempty"`
	// Duration is how long the request took, from its arrival to its end.
	Duration time.Duration `json:"duration_ns"`
	// Stream says the client asked for a stream or got an event stream.
	Stream bool `json:"stream"`
}

// errInvalidRequestRecord refuses a record a store cannot keep whole.
var errInvalidRequestRecord = errors.New("keystore: invalid request log record")

// validate checks the bounds a store relies on.
func (r RequestRecord) validate() error {
	switch {
	case r.User == "":
		return fmt.Errorf("%w: no user", errInvalidRequestRecord)
	case len(r.User) > maxRequestUser, len(r.ID) > maxRequestID, len(r.Model) > maxRequestModel,
		len(r.Host) > maxRequestHost, len(r.Path) > MaxRequestPath:
		return fmt.Errorf("%w: a field is too long", errInvalidRequestRecord)
	}
	return nil
}

// validateRequests checks an AppendRequests call whole, so that no store
// writes part of a batch and then meets a record it cannot keep.
func validateRequests(keep int, recs []RequestRecord) error {
	if keep < 1 || keep > MaxRequestLog {
		return fmt.Errorf("%w: size %d, want 1 to %d", errInvalidRequestRecord, keep, MaxRequestLog)
	}
	for _, r := range recs {
		if err := r.validate(); err != nil {
			return err
		}
	}
	return nil
}

// RequestQuery selects the newest records of the request log.
type RequestQuery struct {
	// User, when set, selects that user's records only.
	User string
	// Limit is the most records returned, from 1 to Scan.
	Limit int
	// Scan is the most records read, newest first, to find them: the
	// log's size, so that a filter never reads more than the log holds.
	Scan int
}

// validate checks q's bounds.
func (q RequestQuery) validate() error {
	switch {
	case q.User != "" && ValidUserName(q.User) != nil:
		return fmt.Errorf("%w: user %q", errInvalidRequestRecord, q.User)
	case q.Scan < 1 || q.Scan > MaxRequestLog:
		return fmt.Errorf("%w: scan %d, want 1 to %d", errInvalidRequestRecord, q.Scan, MaxRequestLog)
	case q.Limit < 1 || q.Limit > q.Scan:
		return fmt.Errorf("%w: limit %d, want 1 to %d", errInvalidRequestRecord, q.Limit, q.Scan)
	}
	return nil
}

// requestCollector gathers a query's records, newest first: those of its
// user, each ID once, until the limit or the scan bound is reached.
type requestCollector struct {
	q       RequestQuery
	out     []RequestRecord
	seen    map[string]struct{}
	scanned int
}

func newRequestCollector(q RequestQuery) *requestCollector {
	return &requestCollector{q: q, out: make([]RequestRecord, 0, min(q.Limit, 1024)), seen: make(map[string]struct{})}
}

// more reports whether the collector takes further records.
func (c *requestCollector) more() bool {
	return len(c.out) < c.q.Limit && c.scanned < c.q.Scan
}

// wants counts one record read from the store, the next older one, and
// reports whether its user is selected: a store can tell that before it
// decodes the record.
func (c *requestCollector) wants(user string) bool {
	c.scanned++
	return c.q.User == "" || user == c.q.User
}

// take keeps a record wants selected, unless its ID was seen already.
func (c *requestCollector) take(r RequestRecord) {
	if r.ID != "" {
		if _, dup := c.seen[r.ID]; dup {
			return
		}
		c.seen[r.ID] = struct{}{}
	}
	c.out = append(c.out, r)
}
