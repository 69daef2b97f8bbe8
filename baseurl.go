package aiproxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/aiproxy/aiproxy/internal/apierror"
)

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
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	base := scheme + "://" + r.Host + "/v1"
	apierror.Write(w, http.StatusNotFound, apierror.TypeInvalidRequest, "missing_api_version",
		fmt.Sprintf("Invalid URL (%s %s): this gateway serves the OpenAI API under /v1. Set your base URL to %s",
			r.Method, truncate(r.URL.EscapedPath(), 100), base))
}
