package aiproxy_test

import (
	"strings"
	"testing"
)

// TestRootPreflightOfTheSiteStaysTheSites: a browser's preflight for a
// cross-origin POST to the site's root that asks to send no key (a form
// handler, a webhook at /) is the site's to answer, not the gateway's.
func TestRootPreflightOfTheSiteStaysTheSites(t *testing.T) {
	s := startSite(t, siteOptions{})
	code, hdr, out := s.request("OPTIONS", "/", nil,
		"Origin", "https://forms.example.org", "Access-Control-Request-Method", "POST")
	if !strings.Contains(string(out), "site content") {
		t.Fatalf("the site's root preflight was answered by the gateway: %d %v %s", code, hdr, out)
	}
}
