package admin

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
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

// maxNameLen is the longest user name accepted.
const maxNameLen = 64

// ValidName reports whether name is a valid user name: 1 to 64 characters of
// A-Z, a-z, 0-9, '.', '_', '@' and '-'. The names "." and ".." are refused too:
// URL path cleaning would make them unreachable in /admin/users/{name}.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("user name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("user name is %d characters long; the limit is %d", len(name), maxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("user name %q is not allowed", name)
	}
	for _, c := range name {
		if !isNameChar(c) {
			return fmt.Errorf("user name contains %q; allowed are A-Z a-z 0-9 . _ @ -", c)
		}
	}
	return nil
}

func isNameChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '@' || c == '-'
}

// maxHostLen is the longest DNS name (without port) accepted.
const maxHostLen = 253

// ValidHostName reports whether host is a valid upstream host name as clients
// send it in X-Host-Final: a lowercase DNS name (labels of a-z, 0-9 and '-',
// separated by dots) with an optional ":port". Schemes, paths and userinfo are
// refused with a message saying so, since pasting a URL is the usual mistake.
// IP literals are not special-cased: the admin is trusted.
func ValidHostName(host string) error {
	switch {
	case host == "":
		return errors.New("host name is empty")
	case strings.Contains(host, "://"):
		return errors.New("host name must not include a scheme; give the bare host, e.g. api.groq.com, and set base_url for anything else")
	case strings.ContainsAny(host, "/?#"):
		return errors.New("host name must not include a path, query or fragment; set base_url for that")
	case strings.Contains(host, "@"):
		return errors.New("host name must not include userinfo")
	}

	name := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name = host[:i]
		port := host[i+1:]
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
			return fmt.Errorf("host name has an invalid port %q", port)
		}
	}
	if name == "" {
		return errors.New("host name is empty")
	}
	if len(name) > maxHostLen {
		return fmt.Errorf("host name is %d characters long; the limit is %d", len(name), maxHostLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		if err := validLabel(label); err != nil {
			return err
		}
	}
	return nil
}

// validLabel checks one DNS label: 1-63 of a-z 0-9 '-', not starting or
// ending with '-'.
func validLabel(label string) error {
	switch {
	case label == "":
		return errors.New("host name has an empty label (leading, trailing or double dot)")
	case len(label) > 63:
		return errors.New("host name has a label longer than 63 characters")
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("host name label %q starts or ends with '-'", label)
	}
	for _, c := range label {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		case 'A' <= c && c <= 'Z':
			return errors.New("host name must be lowercase")
		default:
			return fmt.Errorf("host name contains %q; allowed are a-z 0-9 - and dots", c)
		}
	}
	return nil
}

// validBaseURL checks an upstream base URL and returns it without trailing
// slashes, so that the proxy can append request paths to it directly. It must
// be an absolute http or https URL with a host and optionally a path, and
// nothing that would be silently dropped or leak credentials: no userinfo,
// query or fragment.
func validBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("base_url is not a valid URL: %v", unwrapURLError(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("base_url must be an absolute http:// or https:// URL")
	case u.Opaque != "" || u.Host == "":
		return "", errors.New("base_url must include a host, e.g. https://api.groq.com/openai")
	case u.User != nil:
		return "", errors.New("base_url must not include userinfo; register the credential as the key")
	case u.RawQuery != "" || u.ForceQuery:
		return "", errors.New("base_url must not include a query")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", errors.New("base_url must not include a fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// unwrapURLError drops url.Error's "parse <input>:" prefix so messages don't
// repeat the input.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
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
