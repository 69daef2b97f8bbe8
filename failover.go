package aiproxy

// failover.go: a request a provider refused or could not answer, sent again
// before anything reached the client: with the host's next key, then with
// the next host serving its model. Keys that got 429 rest; keys that got
// 401 or 403 are set aside.

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aiproxy/aiproxy/admin"
)

// defaultMaxAttempts bounds the tries of one request, the first included.
const defaultMaxAttempts = 3

// retryWindow bounds the time from a request's first try to its last
// retry: past it, the answer in hand goes to the client.
const retryWindow = 30 * time.Second

// defaultKeyRest is how long a key that got 429 without Retry-After rests.
const defaultKeyRest = 30 * time.Second

// maxKeyRest bounds the rest a provider's Retry-After may ask for.
const maxKeyRest = 10 * time.Minute

// maxKeyStates bounds the keys whose health is remembered; keys come from
// the config and admins, but admins may add and remove them for ever.
const maxKeyStates = 10_000

// retryable reports whether a provider's answer with status may go to
// another key or host: rate limited, or failing on its side.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// keyRef names a provider key of a host.
type keyRef struct{ host, key string }

// keyState is what the gateway learnt of a key from its answers.
type keyState struct {
	restUntil time.Time // after a 429
	aside     bool      // after a 401 or 403: until an admin puts it back
	reason    string    // the last failure, e.g. "429", "401", "unreachable"
	at        time.Time // when
	errors    int64     // failures so far
}

// keyHealth is the keys' state in this instance, safe for concurrent use.
type keyHealth struct {
	mu    sync.Mutex
	state map[keyRef]*keyState
	now   func() time.Time
}

func newKeyHealth() *keyHealth {
	return &keyHealth{state: make(map[keyRef]*keyState), now: time.Now}
}

// usable reports whether a key may take a request now.
func (k *keyHealth) usable(host, key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.state[keyRef{host, key}]
	return s == nil || !s.aside && !k.now().Before(s.restUntil)
}

// failed records a key's failed answer: status 0 when the host could not
// be reached; rest is the provider's Retry-After, if any.
func (k *keyHealth) failed(host, key string, status int, rest time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ref := keyRef{host, key}
	s := k.state[ref]
	if s == nil {
		if len(k.state) >= maxKeyStates {
			k.pruneLocked()
		}
		s = &keyState{}
		k.state[ref] = s
	}
	now := k.now()
	s.at, s.errors = now, s.errors+1
	switch {
	case status == 0:
		s.reason = "unreachable"
	case status == http.StatusTooManyRequests:
		if rest <= 0 {
			rest = defaultKeyRest
		}
		s.reason, s.restUntil = "429", now.Add(min(rest, maxKeyRest))
	case status == http.StatusUnauthorized:
		// The key itself is refused. A 403 is not set aside: providers
		// answer it for a request's content too (moderation), which any
		// user could send.
		s.reason, s.aside = strconv.Itoa(status), true
	default:
		s.reason = strconv.Itoa(status)
	}
}

// pruneLocked forgets the keys that are usable again; if that frees
// nothing, all of them.
func (k *keyHealth) pruneLocked() {
	now := k.now()
	for ref, s := range k.state {
		if !s.aside && !now.Before(s.restUntil) {
			delete(k.state, ref)
		}
	}
	if len(k.state) >= maxKeyStates {
		clear(k.state)
	}
}

// pick returns u's next key in turn that is usable, or when none is, the
// next in turn: the provider's own answer then goes to the client.
func (k *keyHealth) pick(u *host) string {
	first := u.pickKey()
	if first == "" || len(u.keys) == 1 || k.usable(u.name, first) {
		return first
	}
	for range len(u.keys) - 1 {
		if key := u.pickKey(); k.usable(u.name, key) {
			return key
		}
	}
	return first
}

// attempt is one host and key a request is sent to.
type attempt struct {
	host *host
	key  string
}

// attempts plans a request's tries: its host's usable keys in turn, then
// the other hosts serving its model (when the model chose the host).
type attempts struct {
	health *keyHealth
	host   *host           // the request's host
	others []*host         // the other hosts serving its model, in order
	first  keyRef          // the first try's
	tried  map[keyRef]bool // the others', made at the first retry
	n, max int
	start  time.Time
}

// triedKey reports whether a try went to ref already.
func (a *attempts) triedKey(ref keyRef) bool {
	return ref == a.first || a.tried[ref]
}

// next returns the next try after a failed one, or false when there is
// none left (attempts or time used up, no other key or host).
func (a *attempts) next() (attempt, bool) {
	if a.n >= a.max || time.Since(a.start) > retryWindow {
		return attempt{}, false
	}
	for i := -1; i < len(a.others); i++ {
		u := a.host
		if i >= 0 {
			u = a.others[i]
		}
		// Every key once, from the host's place in its rotation: the
		// shared counter alone could skip one another request took.
		start := int(u.next.Load() % uint64(max(len(u.keys), 1)))
		for j := range len(u.keys) {
			key := u.keys[(start+j)%len(u.keys)]
			ref := keyRef{u.name, key}
			if key == "" || a.triedKey(ref) || !a.health.usable(u.name, key) {
				continue
			}
			if a.tried == nil {
				a.tried = make(map[keyRef]bool)
			}
			a.tried[ref] = true
			a.n++
			return attempt{u, key}, true
		}
	}
	return attempt{}, false
}

// more reports whether a try could follow the current one.
func (a *attempts) more() bool {
	if a.n >= a.max {
		return false
	}
	for i := -1; i < len(a.others); i++ {
		u := a.host
		if i >= 0 {
			u = a.others[i]
		}
		for _, key := range u.keys {
			if !a.triedKey(keyRef{u.name, key}) && a.health.usable(u.name, key) {
				return true
			}
		}
	}
	return false
}

// retryAfter reads a provider's Retry-After in seconds (0 when absent or
// not a number of seconds).
func retryAfter(h http.Header) time.Duration {
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// report tells the admin API what was learnt of a key; nil when nothing.
func (k *keyHealth) report(host, key string) *admin.KeyState {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.state[keyRef{host, key}]
	if s == nil {
		return nil
	}
	out := &admin.KeyState{Status: "ok", Reason: s.reason, At: s.at.UTC(), Errors: s.errors}
	switch now := k.now(); {
	case s.aside:
		out.Status = "set_aside"
	case now.Before(s.restUntil):
		until := s.restUntil.UTC()
		out.Status, out.Until = "resting", &until
	}
	return out
}

// restore puts a host's keys back in use and returns how many were out.
func (k *keyHealth) restore(host string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	now := k.now()
	for ref, s := range k.state {
		if ref.host != host {
			continue
		}
		if s.aside || now.Before(s.restUntil) {
			n++
		}
		delete(k.state, ref)
	}
	return n
}
