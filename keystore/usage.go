package keystore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// UsageDateLayout is the layout of UsageKey.Date and of UsageFilter's bounds.
const UsageDateLayout = time.DateOnly

// MaxUsageRangeDays is the longest range, in days counting both ends, that
// QueryUsage answers: a leap year.
const MaxUsageRangeDays = 366

// UsageBatchTTL is how long, at least, a store remembers the last batch it
// applied from a writer, and so how long retrying that batch cannot count it
// twice.
const UsageBatchTTL = 24 * time.Hour

// UsageDate returns the UTC day of t in UsageDateLayout, the date usage
// recorded at t belongs to.
func UsageDate(t time.Time) string {
	return t.UTC().Format(UsageDateLayout)
}

// UsageKey identifies one usage row: a user, a model and a UTC day.
type UsageKey struct {
	// User is the user's name. It never contains '|' or NUL.
	User string `json:"user"`
	// UserID is the user's identity (User.ID): a user deleted and created
	// again under the same name gets a new one, so the new user's rows are
	// never mixed with the old one's.
	UserID string `json:"user_id"`
	// Model is the model the request was counted under (the one the
	// answer named, else the client's), as spelt there; it may be empty
	// and may contain any character.
	Model string `json:"model"`
	// Date is the UTC day, YYYY-MM-DD.
	Date string `json:"date"`
}

// Validate reports whether the stores can keep a row with key k: it needs
// a non-empty user name without '|', '/', braces or NUL (the stores'
// separators and Redis hash tags), a user ID as NewUserID makes them, and a
// YYYY-MM-DD date.
func (k UsageKey) Validate() error {
	if k.User == "" || strings.ContainsAny(k.User, "|/{}\x00") {
		return fmt.Errorf("%w: user name %q", errInvalidUsage, k.User)
	}
	if !IsUserID(k.UserID) {
		return fmt.Errorf("%w: user ID %q", errInvalidUsage, k.UserID)
	}
	_, err := parseUsageDate("row", k.Date)
	return err
}

// UsageCounts are additive counters.
type UsageCounts struct {
	// Requests is the number of requests.
	Requests int64 `json:"requests"`
	// PromptTokens is the sum of input tokens the upstream reported.
	PromptTokens int64 `json:"prompt_tokens"`
	// CompletionTokens is the sum of output tokens the upstream reported.
	CompletionTokens int64 `json:"completion_tokens"`
	// TotalTokens is the sum of total tokens the upstream reported.
	TotalTokens int64 `json:"total_tokens"`
	// CachedTokens is the part of PromptTokens served from the provider's
	// prompt cache, when it says so.
	CachedTokens int64 `json:"cached_tokens"`
	// ReasoningTokens is the part of CompletionTokens spent on reasoning,
	// when the provider says so.
	ReasoningTokens int64 `json:"reasoning_tokens"`
	// EstimatedRequests counts the requests whose response carried no
	// usage: they are in Requests, but their tokens are unknown.
	EstimatedRequests int64 `json:"estimated_requests"`
	// CostNanoUSD is what the requests cost, in nano-dollars (1e-9 USD),
	// at the prices in force when each was counted; a request whose model
	// had no price adds 0.
	CostNanoUSD int64 `json:"cost_nano_usd,omitempty"`
}

// Add adds o to c, counter by counter. A sum beyond int64's range stays
// at the bound it passed instead of wrapping around to the other sign.
func (c *UsageCounts) Add(o UsageCounts) {
	c.Requests = addSaturating(c.Requests, o.Requests)
	c.PromptTokens = addSaturating(c.PromptTokens, o.PromptTokens)
	c.CompletionTokens = addSaturating(c.CompletionTokens, o.CompletionTokens)
	c.TotalTokens = addSaturating(c.TotalTokens, o.TotalTokens)
	c.CachedTokens = addSaturating(c.CachedTokens, o.CachedTokens)
	c.ReasoningTokens = addSaturating(c.ReasoningTokens, o.ReasoningTokens)
	c.EstimatedRequests = addSaturating(c.EstimatedRequests, o.EstimatedRequests)
	c.CostNanoUSD = addSaturating(c.CostNanoUSD, o.CostNanoUSD)
}

// addSaturating returns a+b, or the int64 bound the sum passed.
func addSaturating(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

// UsageRow is the usage of one user, model and day. Its JSON form is flat:
// {"user","model","date","requests",...}.
type UsageRow struct {
	// UsageKey says whose usage, of which model, on which day.
	UsageKey
	// UsageCounts are the counters of that user, model and day.
	UsageCounts
}

// UsageBatch is one write of counts to a store, from one writer.
//
// A writer numbers its batches 1, 2, 3... and sends them in that order,
// sending a batch again, unchanged, until the store has taken it whole. A
// store applies each user's rows of a batch at most once: it remembers, per
// user, the last Seq it applied from each Writer (for at least
// UsageBatchTTL) and skips rows of a Seq not above it. So a batch retried
// after an ambiguous failure (a timeout, a lost reply), or one the store took
// in part, is never counted twice.
type UsageBatch struct {
	// Writer identifies the sender, unique among the processes and configs
	// sharing the store (NewUsageWriter). 1-64 of [0-9A-Za-z].
	Writer string
	// Seq is the batch's number in Writer's sequence, from 1.
	Seq uint64
	// Rows are the counts to add. Rows may repeat a key (their counts add
	// up); rows whose counts are all zero are skipped.
	Rows []UsageRow
	// Retention, when positive, lets the store remove rows of days that
	// ended more than Retention ago. The Redis store removes whole months
	// (a month goes once its last day is that old); the file store prunes
	// day by day, now and then.
	Retention time.Duration
}

// NewUsageWriter returns a random writer ID for UsageBatch.Writer.
func NewUsageWriter() string {
	return rand.Text()[:20]
}

// validate checks what AddUsage needs of b, so that no store writes part of
// a batch and then meets a row it cannot store.
func (b UsageBatch) validate() error {
	if b.Writer == "" || len(b.Writer) > 64 || !isAlnum(b.Writer) {
		return fmt.Errorf("%w: writer %q", errInvalidUsage, b.Writer)
	}
	if b.Seq == 0 {
		return fmt.Errorf("%w: batch sequence number 0", errInvalidUsage)
	}
	for _, r := range b.Rows {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// UsageFilter selects usage rows for QueryUsage.
type UsageFilter struct {
	// User selects the rows of every user who had this name, deleted ones
	// included; empty selects every user.
	User string `json:"user,omitempty"`
	// UserID, with User, narrows the selection to one identity: the rows of
	// the user as it is now, not of an earlier user of the same name.
	UserID string `json:"user_id,omitempty"`
	// Model selects one model's rows (exact match); empty selects every model.
	Model string `json:"model,omitempty"`
	// From is the first day of the range, YYYY-MM-DD (UTC). Required.
	From string `json:"from"`
	// To is the last day of the range, YYYY-MM-DD (UTC), inclusive. Required.
	To string `json:"to"`
}

// errInvalidUsage rejects a malformed usage batch or query: a caller's bug
// or bad input, never a store failure.
var errInvalidUsage = errors.New("keystore: invalid usage")

// matches reports whether a row with key k is selected by f's user and
// model; the caller handles the date range.
func (f UsageFilter) matches(k UsageKey) bool {
	return (f.User == "" || k.User == f.User) && (f.UserID == "" || k.UserID == f.UserID) &&
		(f.Model == "" || k.Model == f.Model)
}

// Matches reports whether f selects a row with key k, its date included.
// YYYY-MM-DD dates compare as strings.
func (f UsageFilter) Matches(k UsageKey) bool {
	return f.matches(k) && f.From <= k.Date && k.Date <= f.To
}

// days validates f and returns every date of its range, in order.
func (f UsageFilter) days() ([]string, error) {
	from, err := parseUsageDate("from", f.From)
	if err != nil {
		return nil, err
	}
	to, err := parseUsageDate("to", f.To)
	if err != nil {
		return nil, err
	}
	if to.Before(from) {
		return nil, fmt.Errorf("%w: to %s is before from %s", errInvalidUsage, f.To, f.From)
	}
	n := int(to.Sub(from)/(24*time.Hour)) + 1
	if n > MaxUsageRangeDays {
		return nil, fmt.Errorf("%w: %d days from %s to %s, at most %d allowed",
			errInvalidUsage, n, f.From, f.To, MaxUsageRangeDays)
	}
	days := make([]string, n)
	for i := range days {
		days[i] = from.AddDate(0, 0, i).Format(UsageDateLayout)
	}
	return days, nil
}

// parseUsageDate parses a YYYY-MM-DD date, naming what in its error.
func parseUsageDate(what, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%w: %s date is required", errInvalidUsage, what)
	}
	t, err := time.Parse(UsageDateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s date %q is not YYYY-MM-DD", errInvalidUsage, what, s)
	}
	return t, nil
}

// MaxUsageCount is the most a stored counter holds: additions that would
// pass it leave it there. It is far beyond any real use (a trillion tokens
// a day for twelve thousand years) and far enough below the int64 limit
// that no sum on the way to it can overflow.
const MaxUsageCount = 1 << 62

// UsageUsersError is AddUsage's error when the rows of some users only
// could not be written (a Redis Cluster shard down): Users names them, and
// the other users' rows were written. It wraps ErrUnavailable.
type UsageUsersError struct {
	Users []string // user names, sorted
	Err   error
}

func (e *UsageUsersError) Error() string {
	return fmt.Sprintf("usage of %d user(s) not written: %v", len(e.Users), e.Err)
}

// Unwrap makes errors.Is(err, ErrUnavailable) hold.
func (e *UsageUsersError) Unwrap() error { return e.Err }
