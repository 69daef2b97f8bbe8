package keystore

// rules.go: what a user name, a host name and a base URL may be. The
// Caddyfile parser, the JSON config, the admin API and the host table all
// use these, so each rule has this one home.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// maxNameLen is the longest user name accepted.
const maxNameLen = 64

// ValidUserName reports whether name is a valid user name: 1 to 64 characters of
// A-Z, a-z, 0-9, '.', '_', '@' and '-'. The names "." and ".." are refused too:
// URL path cleaning would make them unreachable in /admin/users/{name}.
func ValidUserName(name string) error {
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

// BaseURL is a provider's base URL: where requests for a host go, the
// request's path put after its Path.
type BaseURL struct {
	// Scheme is "http" or "https".
	Scheme string
	// Host is host[:port], lowercase, as dialed and sent in the Host header.
	Host string
	// Path is the escaped path prefix without a trailing slash: "" or "/...".
	Path string
}

// ParseBaseURL checks an upstream base URL: an absolute http or https URL
// with a host and optionally a path, and nothing that would be silently
// dropped or leak credentials: no userinfo, query or fragment. Trailing
// slashes go, so request paths can be appended directly.
func ParseBaseURL(raw string) (BaseURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return BaseURL{}, fmt.Errorf("base URL %q is not a valid URL: %v", raw, unwrapURLError(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return BaseURL{}, fmt.Errorf("base URL %q must be an absolute http:// or https:// URL", raw)
	case u.Opaque != "" || u.Host == "":
		return BaseURL{}, fmt.Errorf("base URL %q must include a host, e.g. https://api.groq.com/openai", raw)
	case u.User != nil:
		return BaseURL{}, fmt.Errorf("base URL %q must not include userinfo; register the credential as the key", raw)
	case u.RawQuery != "" || u.ForceQuery:
		return BaseURL{}, fmt.Errorf("base URL %q must not include a query", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return BaseURL{}, fmt.Errorf("base URL %q must not include a fragment", raw)
	}
	return BaseURL{Scheme: u.Scheme, Host: strings.ToLower(u.Host), Path: strings.TrimRight(u.EscapedPath(), "/")}, nil
}

// String returns the URL in its canonical form, e.g. "https://api.groq.com/openai".
func (b BaseURL) String() string { return b.Scheme + "://" + b.Host + b.Path }

// Dial returns host:port, the port from the scheme when the URL has none.
func (b BaseURL) Dial() string {
	host, port, err := net.SplitHostPort(b.Host)
	if err != nil {
		host, port = strings.Trim(b.Host, "[]"), "443"
		if b.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(host, port)
}

// DefaultBaseURL is the base URL of a host that names none.
func DefaultBaseURL(host string) string { return "https://" + host }

// EffectiveBaseURL is where requests for h go: its BaseURL, else the default.
func (h Host) EffectiveBaseURL() string {
	if h.BaseURL != "" {
		return h.BaseURL
	}
	return DefaultBaseURL(h.Name)
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
