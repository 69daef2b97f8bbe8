package aiproxy

// route.go: which part of aiproxy a request belongs to, on its canonical
// path, and the answers for paths that are the gateway's but wrong.

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/ui"
)

// route is which part of aiproxy a request path belongs to.
type route int

const (
	routeNone      route = iota // not ours (but maybe one of the original worker's routes)
	routeProxy                  // /v<N>/..., /openai/...
	routeSelf                   // /me, /me/...
	routeAdmin                  // /admin, /admin/...
	routeNoVersion              // /chat/completions, /models, ...: an API path missing its /v1
	routeWrongURL               // /v1 alone, /v1/v1/...: a base URL taken for an endpoint, or /v1 twice
	routeUI                     // /admin/ui/..., /me/ui/...: the web pages, loaded without a key
)

func routeOf(path string) route {
	switch {
	case urlMistake(path) != "":
		return routeWrongURL
	case isProxyPath(path):
		return routeProxy
	case ui.Is(path):
		return routeUI
	case path == "/me" || strings.HasPrefix(path, "/me/"):
		return routeSelf
	case path == "/admin" || strings.HasPrefix(path, "/admin/"):
		return routeAdmin
	case isUnversionedAPIPath(path):
		return routeNoVersion
	}
	return routeNone
}

// isProxyPath reports whether path is an API path: /v<digits> or /openai,
// alone or followed by "/".
func isProxyPath(path string) bool {
	if rest, ok := strings.CutPrefix(path, "/openai"); ok {
		return rest == "" || rest[0] == '/'
	}
	rest, ok := strings.CutPrefix(path, "/v")
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	return i > 0 && (i == len(rest) || rest[i] == '/')
}

// A canonical path has no ".", ".." or empty segment. Providers and the
// proxies in front of them often normalise paths, so a non-canonical one
// would reach something other than what it looks like: "/v1/../../x" leaves
// /v1 and a base URL's path prefix with the provider's key, and
// "/v1//chat/completions" gets a completion that is not classified as one,
// so it goes uncounted. Such paths are refused before routing, and
// endpoints are classified on the canonical path that remains.
//
// The check reads r.URL.Path, which Go has already percent-decoded: "%2e",
// "%2E" and a "%2F" that makes a new segment are caught there, in any case.
// A provider that keeps "%2F" inside a segment sees one segment where the
// classification saw two; either way the request is counted (as the
// endpoint, or as the provider's 404).

// pathFault describes what makes p non-canonical, or returns "" when p is
// canonical (or is not an absolute path, like "*"). It does not allocate.
func pathFault(p string) string {
	if len(p) < 2 || p[0] != '/' {
		return "" // "/", "*", ""
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch p[start:i] {
		case "":
			if i == len(p) {
				return "ends in a slash; remove the trailing slash"
			}
			return `has an empty segment ("//"); remove the extra slash`
		case ".":
			return `has a "." segment`
		case "..":
			return `has a ".." segment`
		}
		start = i + 1
	}
	return ""
}

// canonicalRoute is the route of a request path, and what is wrong with it
// when it is not canonical. A non-canonical path is the gateway's when it
// is so as it stands or once cleaned (as a normalising server would read
// it); any other path is left to the site, and never taken for a seed
// admin route, so a right and a wrong token in it get the same answer.
func canonicalRoute(p string) (route, string) {
	rt := routeOf(p)
	fault := pathFault(p)
	if fault == "" || ui.IsPage(p) { // a page's path ends in a slash
		return rt, ""
	}
	if rt == routeNone {
		rt = routeOf(path.Clean(p))
	}
	return rt, fault
}

// writePathFault answers a non-canonical path with a 400.
func writePathFault(w http.ResponseWriter, r *http.Request, fault string) {
	apierror.Write(w, http.StatusBadRequest, apierror.TypeInvalidRequest, "invalid_path",
		fmt.Sprintf("The path %q %s. Paths must be canonical: no \".\", \"..\" or empty segments, raw or percent-encoded.",
			truncate(r.URL.EscapedPath(), 100), fault))
}

// An app given the site's root as its base URL, without "/v1", asks for
// "/chat/completions" and would get the site's bare 404, which SDKs report
// as "404 Not found" and browsers, with no CORS headers on it, as a CORS
// error. The OpenAI API's resource paths at the root are answered instead,
// preflight included, with an error that names the right base URL.

// unversionedAPIRoots are the first path segments of the OpenAI API's
// resources.
var unversionedAPIRoots = map[string]bool{
	"chat": true, "completions": true, "embeddings": true, "models": true,
	"responses": true, "audio": true, "images": true, "files": true,
	"uploads": true, "batches": true, "moderations": true, "fine_tuning": true,
	"assistants": true, "threads": true, "vector_stores": true, "realtime": true,
	"conversations": true, "evals": true, "containers": true,
}

// isUnversionedAPIPath reports whether path is one of the OpenAI API's
// resource paths without its version prefix.
func isUnversionedAPIPath(path string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return unversionedAPIRoots[first]
}

// writeMissingVersion answers an API path sent without its /v1 prefix.
func writeMissingVersion(w http.ResponseWriter, r *http.Request) {
	base := siteOrigin(r) + "/v1"
	apierror.Write(w, http.StatusNotFound, apierror.TypeInvalidRequest, "missing_api_version",
		fmt.Sprintf("Invalid URL (%s %s): this gateway serves the OpenAI API under /v1. Set your base URL to %s",
			r.Method, truncate(r.URL.EscapedPath(), 100), base))
}

// Chat apps differ in the URL they want: a base URL (https://site/v1) to
// which they add /chat/completions, the site (https://site) to which they
// add /v1/chat/completions, or the full endpoint. Given the wrong form,
// they ask for /v1 alone or for /v1/v1/chat/completions, which a provider
// answers with a bare 404 an app shows as "Invalid API endpoint"; or they
// post to the site's root, which has no CORS headers, and a browser shows
// "Failed to fetch". These are answered with the URL form to use.

// The URL mistakes urlMistake names.
const (
	mistakeBaseURL  = "base"    // /v1 alone: the base URL taken for the endpoint
	mistakeDoubled  = "doubled" // /v1/v1/...: the app adds /v1 to a base URL that has it
	mistakeSiteRoot = "root"    // POST / with a key: the site taken for the endpoint
)

// urlMistake names what is wrong with an API path an app was set up with,
// or returns "".
func urlMistake(path string) string {
	rest := path
	if r, ok := strings.CutPrefix(path, "/openai"); ok && (r == "" || r[0] == '/') {
		if r == "" {
			return mistakeBaseURL
		}
		rest = r
	}
	first, after, more := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if !isVersionSegment(first) {
		return ""
	}
	if !more || after == "" {
		return mistakeBaseURL
	}
	second, _, _ := strings.Cut(after, "/")
	if isVersionSegment(second) {
		return mistakeDoubled
	}
	return ""
}

// isRootAPIRequest reports whether r is an API request an app sent to the
// site's root: a POST carrying a gateway key, or the preflight of one.
// Ordinary visitors of the site send neither.
func isRootAPIRequest(r *http.Request) bool {
	if r.URL.Path != "/" {
		return false
	}
	switch r.Method {
	case http.MethodPost:
		return strings.HasPrefix(userKey(r.Header), "sk-cfw")
	case http.MethodOptions:
		// Only an app's preflight, which asks to send a key: a preflight
		// of the site's own (a form, a webhook) stays the site's.
		return r.Header.Get("Access-Control-Request-Method") == http.MethodPost && asksForKeyHeader(r.Header)
	}
	return false
}

// asksForKeyHeader reports whether a preflight asks to send one of the
// headers a gateway key goes in.
func asksForKeyHeader(h http.Header) bool {
	for _, v := range h.Values("Access-Control-Request-Headers") {
		for name := range strings.SplitSeq(v, ",") {
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "authorization", "api-key", "x-api-key":
				return true
			}
		}
	}
	return false
}

// writeURLMistake answers a request sent to a wrong form of the API's URL
// with the form to use.
func writeURLMistake(w http.ResponseWriter, r *http.Request, mistake string) {
	site := siteOrigin(r)
	base, code, why := site+"/v1", "", ""
	if strings.HasPrefix(r.URL.Path, "/openai") {
		base = site + "/openai/v1"
	}
	switch mistake {
	case mistakeBaseURL:
		code = "incomplete_url"
		why = fmt.Sprintf("this is the API's base URL, not an endpoint. Apps that ask for a base URL take %s; apps that ask for the full endpoint URL take %s/chat/completions.", base, base)
	case mistakeDoubled:
		code = "doubled_api_version"
		why = fmt.Sprintf("the app adds /v1 itself, so its base URL must not end in it: set it to %s.", strings.TrimSuffix(base, "/v1"))
	default:
		code = "missing_api_path"
		why = fmt.Sprintf("this is the site's root. Apps that ask for the full endpoint URL take %s/chat/completions; apps that ask for a base URL take %s.", base, base)
	}
	apierror.Write(w, http.StatusNotFound, apierror.TypeInvalidRequest, code,
		fmt.Sprintf("Invalid URL (%s %s): %s", r.Method, truncate(r.URL.EscapedPath(), 100), why))
}

// siteOrigin is the scheme and host the client reached the site at.
func siteOrigin(r *http.Request) string {
	if r.TLS == nil {
		return "http://" + r.Host
	}
	return "https://" + r.Host
}
