package aiproxy

import (
	"fmt"
	"net/http"
	"path"

	"github.com/aiproxy/aiproxy/internal/apierror"
)

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
	if fault == "" {
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
