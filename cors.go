package aiproxy

import (
	"net/http"
	"slices"
	"strings"
)

// corsAllowedHeaders are sent in preflight answers when the browser does not
// list the headers it wants: the ones OpenAI clients send.
const corsAllowedHeaders = "Authorization, Content-Type, Accept, X-Host-Final, Api-Key, X-Api-Key, " +
	"OpenAI-Organization, OpenAI-Project, OpenAI-Beta, X-Stainless-Arch, X-Stainless-Lang, " +
	"X-Stainless-OS, X-Stainless-Package-Version, X-Stainless-Runtime, X-Stainless-Runtime-Version, " +
	"X-Stainless-Retry-Count, X-Stainless-Timeout"

const corsAllowedMethods = "GET, POST, PUT, PATCH, DELETE, OPTIONS"

// corsPolicy lets browser apps on other origins call the API. Keys, not
// cookies, authenticate requests, so allowing any origin exposes nothing a
// page could not already send; credentials mode is never enabled.
type corsPolicy struct {
	anyOrigin bool
	origins   []string
}

func newCORSPolicy(origins []string) *corsPolicy {
	if len(origins) == 0 || slices.Contains(origins, "*") {
		return &corsPolicy{anyOrigin: true}
	}
	return &corsPolicy{origins: origins}
}

// allowOrigin returns the Access-Control-Allow-Origin value for the request,
// or "" when its origin is not allowed.
func (c *corsPolicy) allowOrigin(r *http.Request) string {
	if c.anyOrigin {
		return "*"
	}
	origin := r.Header.Get("Origin")
	if origin != "" && slices.Contains(c.origins, origin) {
		return origin
	}
	return ""
}

// decorate adds CORS headers to an actual response, given the request's
// allowOrigin value.
func (c *corsPolicy) decorate(hdr http.Header, origin string) {
	if !c.anyOrigin {
		hdr.Add("Vary", "Origin")
	}
	c.allow(hdr, origin)
}

// allow sets the headers that let a browser app read the response.
func (c *corsPolicy) allow(hdr http.Header, origin string) {
	if origin != "" {
		hdr.Set("Access-Control-Allow-Origin", origin)
		// Lets browser apps read rate-limit and request-id headers.
		hdr.Set("Access-Control-Expose-Headers", "*")
	}
}

// override replaces a provider's CORS headers with ours: the proxy has added
// the provider's to those decorate set, and two Allow-Origin values (or a
// provider's Allow-Credentials) would break browsers.
func (c *corsPolicy) override(hdr http.Header, origin string) {
	for name := range hdr {
		if strings.HasPrefix(name, "Access-Control-") {
			delete(hdr, name)
		}
	}
	c.allow(hdr, origin)
}

// preflight answers an OPTIONS request locally, without a key.
func (c *corsPolicy) preflight(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Add("Vary", "Origin")
	hdr.Add("Vary", "Access-Control-Request-Method")
	hdr.Add("Vary", "Access-Control-Request-Headers")
	if origin := c.allowOrigin(r); origin != "" {
		hdr.Set("Access-Control-Allow-Origin", origin)
		hdr.Set("Access-Control-Allow-Methods", corsAllowedMethods)
		allowHeaders := r.Header.Get("Access-Control-Request-Headers")
		if allowHeaders == "" {
			allowHeaders = corsAllowedHeaders
		}
		hdr.Set("Access-Control-Allow-Headers", allowHeaders)
		hdr.Set("Access-Control-Max-Age", "86400")
	}
	hdr.Set("Allow", corsAllowedMethods)
	w.WriteHeader(http.StatusNoContent)
}
