package aiproxy_test

import (
	"strings"
	"testing"
)

// TestWrongURLFormsTeach: an app set up with the wrong form of the API's
// URL gets an OpenAI-shaped 404 naming the form to use, with CORS headers
// and its preflight answered, and the provider is never asked; visitors
// of the site's root still get the site.
func TestWrongURLFormsTeach(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("ann")
	before := len(s.upstream.Requests())
	for _, tc := range []struct{ path, code, want string }{
		{"/v1", "incomplete_url", siteURL + "/v1/chat/completions"},
		{"/openai/v1", "incomplete_url", siteURL + "/openai/v1/chat/completions"},
		{"/v1/v1/chat/completions", "doubled_api_version", "set it to " + siteURL + "."},
		{"/openai/v1/v1/chat/completions", "doubled_api_version", "set it to " + siteURL + "/openai."},
		{"/", "missing_api_path", siteURL + "/v1/chat/completions"},
	} {
		code, hdr, body := s.request("POST", tc.path, strings.NewReader(chatBody("gpt-4o-mini", "hi")),
			"Origin", "https://chat.example", "Authorization", "Bearer "+key, "Content-Type", "application/json")
		c, msg := apiError(t, body)
		if code != 404 || c != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("POST %s: %d %s; want 404 %s naming %q", tc.path, code, body, tc.code, tc.want)
		}
		if hdr.Get("Access-Control-Allow-Origin") == "" {
			t.Errorf("POST %s: no CORS headers", tc.path)
		}
		code, hdr, _ = s.request("OPTIONS", tc.path, nil, "Origin", "https://chat.example",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
		if code/100 != 2 || hdr.Get("Access-Control-Allow-Origin") == "" {
			t.Errorf("preflight of %s: %d %v", tc.path, code, hdr)
		}
	}
	if n := len(s.upstream.Requests()); n != before {
		t.Fatalf("wrong URLs reached the provider: %d", n-before)
	}
	// The site's root stays the site's for visitors, and for a POST
	// without a gateway key.
	for _, tc := range []struct{ method, auth string }{{"GET", ""}, {"POST", ""}, {"POST", "Bearer sk-other"}, {"HEAD", "Bearer " + key}} {
		code, _, body := s.request(tc.method, "/", nil, "Authorization", tc.auth)
		if code != 404 || (tc.method != "HEAD" && string(body) != "site content") {
			t.Errorf("%s / (%q): %d %q; want the site's own answer", tc.method, tc.auth, code, body)
		}
	}
}

// TestBrowserIdentityNotForwarded: a browser's request reaches the
// provider without what tells it which site and browser the user came
// from; an SDK keeps its User-Agent; forward_browser_headers on sends it
// all.
func TestBrowserIdentityNotForwarded(t *testing.T) {
	browser := []string{
		"Origin", "https://chat.example", "Referer", "https://chat.example/c/42",
		"Sec-Fetch-Mode", "cors", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "empty",
		"Sec-Ch-Ua", `"Chromium";v="131"`, "Sec-Ch-Ua-Platform", `"Linux"`,
		"Accept-Language", "de-DE,de;q=0.9", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131",
	}
	identity := []string{"Origin", "Referer", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-Dest",
		"Sec-Ch-Ua", "Sec-Ch-Ua-Platform", "Accept-Language"}
	s := startSite(t, siteOptions{})
	key := s.register("ann")
	send := func(extra ...string) {
		t.Helper()
		hdr := append([]string{"Authorization", "Bearer " + key, "Content-Type", "application/json"}, extra...)
		if code, _, out := s.request("POST", "/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", "hi")), hdr...); code != 200 {
			t.Fatalf("%d %s", code, out)
		}
	}
	send(browser...)
	got := s.upstream.LastRequest().Header
	for _, h := range append(identity, "User-Agent") {
		if v := got.Get(h); v != "" {
			t.Errorf("the provider got %s: %q", h, v)
		}
	}
	send("User-Agent", "OpenAI/Python 1.99.0")
	if ua := s.upstream.LastRequest().Header.Get("User-Agent"); ua != "OpenAI/Python 1.99.0" {
		t.Errorf("an SDK's User-Agent: %q", ua)
	}

	s.load(siteOptions{extra: "forward_browser_headers on"})
	send(browser...)
	got = s.upstream.LastRequest().Header
	for _, h := range append(identity, "User-Agent") {
		if got.Get(h) == "" {
			t.Errorf("forward_browser_headers on: the provider did not get %s", h)
		}
	}
}
