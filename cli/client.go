package cli

// client.go: requests to the site's admin API, and its answers turned into
// results or errors a person can act on.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// requestTimeout bounds one call to the admin API; a usage report over a
// year of a team's usage takes a few seconds at most.
const requestTimeout = 60 * time.Second

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 64 << 10

// client calls one site's admin API with the admin token.
type client struct {
	site  *url.URL // scheme, host and any path prefix; no trailing slash
	token string
	http  *http.Client
}

// newClient checks the site URL and the token.
func newClient(site, token string) (*client, error) {
	u, err := parseSite(site)
	if err != nil {
		return nil, err
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, fail(exitUsage, "%s is not set: export the site's admin token first, e.g.\n  export %s=...the admin_token of the site's aiproxy block...", TokenEnv, TokenEnv)
	}
	return &client{
		site:  u,
		token: token,
		http: &http.Client{
			Timeout: requestTimeout,
			// A redirect (http to https, another host) would carry the
			// token elsewhere, or turn a POST into a GET: say where to go.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// parseSite turns --site into a base URL: a URL without a scheme is https,
// or http for localhost and loopback addresses.
func parseSite(site string) (*url.URL, error) {
	site = strings.TrimSpace(site)
	if site == "" {
		return nil, fail(exitUsage, "--site is empty; give the site's URL, e.g. --site %s", defaultSite)
	}
	if !strings.Contains(site, "://") {
		scheme := "https://"
		host := site
		if i := strings.IndexByte(host, '/'); i >= 0 {
			host = host[:i]
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if isLoopback(strings.Trim(host, "[]")) {
			scheme = "http://"
		}
		site = scheme + site
	}
	u, err := url.Parse(site)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fail(exitUsage, "--site is not a site URL such as %s or https://gpt.example.com", defaultSite)
	}
	if u.User != nil {
		// It would show in every message, and the token is what
		// authenticates anyway.
		return nil, fail(exitUsage, "--site must not carry a user name or password; the admin token comes from %s", TokenEnv)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// siteString is the site as the user gave it, for messages.
func (c *client) siteString() string { return c.site.String() }

// call sends a request to /admin/<path> with query and, when body is not
// nil, body as JSON. It returns the answer of a 2xx status, whose body the
// caller must close; any other answer, or none, is an error with its exit
// code. accept is the content type expected of a success ("application/json"
// or "text/csv").
func (c *client) call(ctx context.Context, method, path string, query url.Values, body any, accept string) (*http.Response, error) {
	target := *c.site
	target.Path = c.site.Path + "/admin/" + path
	target.RawQuery = query.Encode()

	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, target.String(), rd)
	if err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 && hasType(res, accept) {
		return res, nil
	}
	defer res.Body.Close()
	return nil, c.refusal(res)
}

// maxAnswer bounds an answer read whole: a list of 100,000 users.
const maxAnswer = 256 << 20

// fetch sends a request and returns its JSON answer, whole.
func (c *client) fetch(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	res, err := c.call(ctx, method, path, query, body, "application/json")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer+1))
	switch {
	case err != nil:
		return nil, fail(exitRefused, "%s: reading the answer to %s /admin/%s: %v", c.siteString(), method, path, err)
	case len(raw) > maxAnswer:
		return nil, fail(exitRefused, "%s: the answer to %s /admin/%s is larger than %d MiB", c.siteString(), method, path, maxAnswer>>20)
	case !json.Valid(raw):
		return nil, fail(exitRefused, "%s: the answer to %s /admin/%s is not valid JSON", c.siteString(), method, path)
	}
	return raw, nil
}

// decode decodes a JSON answer of the admin API into v.
func (c *client) decode(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fail(exitRefused, "%s: unexpected answer: %v", c.siteString(), err)
	}
	return nil
}

// copyTo sends a request and copies the answer's body to w as it comes.
func (c *client) copyTo(ctx context.Context, w io.Writer, method, path string, query url.Values, body any, accept string) error {
	res, err := c.call(ctx, method, path, query, body, accept)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if _, err := io.Copy(w, res.Body); err != nil {
		return fail(exitRefused, "%s: reading the answer to %s /admin/%s: %v", c.siteString(), method, path, err)
	}
	return nil
}

// unreachable explains a request that got no answer.
func (c *client) unreachable(err error) error {
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return fail(exitUnreachable, "no answer from %s within %s: is the site running, and is --site its URL?", c.siteString(), requestTimeout)
	}
	// url.Error repeats the method and URL; its cause is what matters.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return fail(exitUnreachable, "cannot reach %s: %v\nThe site may not be running; give its URL with --site (default %s).", c.siteString(), err, defaultSite)
}

// apiError is the OpenAI-shaped error body of the admin API.
type apiError struct {
	Error struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	} `json:"error"`
}

// refusal explains an answer that is not a success of the admin API.
func (c *client) refusal(res *http.Response) error {
	status := fmt.Sprintf("%d %s", res.StatusCode, http.StatusText(res.StatusCode))
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		if loc, err := res.Location(); err == nil {
			// The site's URL is what comes before /admin/.
			if i := strings.Index(loc.Path, "/admin/"); i >= 0 {
				loc.Path = loc.Path[:i]
			}
			loc.RawPath, loc.RawQuery = "", ""
			return fail(exitRefused, "%s redirects (%s) to %s: give that as --site", c.siteString(), status, loc)
		}
	}
	var e apiError
	raw, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	if !hasType(res, "application/json") || json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
		if res.StatusCode >= 200 && res.StatusCode < 300 {
			status += " with " + typeOf(res)
		}
		return fail(exitRefused, "%s answered %s, not as aiproxy's admin API does: does the site run aiproxy, and is --site its URL?", c.siteString(), status)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized:
		return fail(exitRefused, "%s refused the admin token (%s: %s): %s must hold the admin_token of the site's aiproxy block", c.siteString(), status, e.Error.Message, TokenEnv)
	case e.Error.Code == "unknown_route":
		return fail(exitRefused, "%s does not serve %s (%s): the feature may be off there, or its aiproxy older than this command", c.siteString(), res.Request.URL.Path, status)
	}
	return fail(exitRefused, "%s (%s)", e.Error.Message, status)
}

// hasType reports whether the answer's content type is want.
func hasType(res *http.Response, want string) bool {
	return typeOf(res) == want
}

func typeOf(res *http.Response) string {
	t, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil {
		return "no content type"
	}
	return t
}
