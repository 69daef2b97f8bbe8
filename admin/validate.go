package admin

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MinTokenLength is the fewest characters an admin token may have: 16
// random characters are far beyond guessing over HTTP, the more so at the
// pace authThrottle allows.
const MinTokenLength = 16

// ValidToken reports whether token may be the admin token: at least
// MinTokenLength characters, without white space at either end (a REST
// client's Bearer value is trimmed, so such a token could never match). Its
// error reads after the token's name: "admin_token: too short: ...".
func ValidToken(token string) error {
	n := utf8.RuneCountInString(token)
	switch {
	case strings.TrimSpace(token) == "":
		return errors.New("empty")
	case strings.TrimSpace(token) != token:
		return errors.New("starts or ends with white space")
	case n < MinTokenLength:
		return fmt.Errorf("too short: %d of at least %d characters; use a random one, e.g. from: head -c 24 /dev/urandom | base64",
			n, MinTokenLength)
	}
	return nil
}

// maxUpstreamKeyLen bounds an upstream key; provider keys and tokens are far
// shorter, and the key ends up in a request header.
const maxUpstreamKeyLen = 4096

// validUpstreamKey checks that key can be sent as "Authorization: Bearer
// <key>": non-empty visible ASCII, no spaces.
func validUpstreamKey(key string) error {
	switch {
	case key == "":
		return errors.New("key is empty")
	case len(key) > maxUpstreamKeyLen:
		return fmt.Errorf("key is longer than %d characters", maxUpstreamKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			// Don't echo the character: it is part of a secret.
			return errors.New("key must be printable ASCII without spaces")
		}
	}
	return nil
}

// parseTTL parses a positive Go duration such as "720h".
func parseTTL(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("ttl %q is not a duration; use Go syntax such as 720h or 90m", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("ttl %q must be positive", s)
	}
	return d, nil
}
