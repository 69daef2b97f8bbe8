package aiproxy_test

import (
	"strings"
	"testing"
)

// TestBaseURLWithoutV1: an app whose base URL lacks /v1 gets an OpenAI-shaped
// 404 naming the right base URL, with CORS headers, and its preflight is
// answered; other root paths stay the site's.
func TestBaseURLWithoutV1(t *testing.T) {
	s := startSite(t, siteOptions{})
	for _, p := range []string{"/chat/completions", "/completions", "/embeddings", "/models",
		"/models/gpt-4o-mini", "/responses", "/audio/speech", "/images/generations", "/files", "/batches", "/moderations"} {
		code, hdr, body := s.request("POST", p, strings.NewReader(`{}`),
			"Origin", "https://chat.example", "Authorization", "Bearer sk-cfw-anything")
		c, msg := apiError(t, body)
		if code != 404 || c != "missing_api_version" || !strings.Contains(msg, siteURL+"/v1") {
			t.Errorf("POST %s: %d %s; want 404 naming %s/v1", p, code, body, siteURL)
		}
		if hdr.Get("Access-Control-Allow-Origin") == "" {
			t.Errorf("POST %s: no CORS headers, so a browser app sees a CORS error instead", p)
		}
	}
	code, hdr, _ := s.request("OPTIONS", "/chat/completions", nil,
		"Origin", "https://chat.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type")
	if code/100 != 2 || hdr.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("preflight of /chat/completions: %d %v", code, hdr)
	}
	for _, p := range []string{"/", "/chatroom", "/index.html", "/modelsx"} {
		if code, _, body := s.request("GET", p, nil); code != 404 || string(body) != "site content" {
			t.Errorf("GET %s: %d %q; want the site's own answer", p, code, body)
		}
	}
}
