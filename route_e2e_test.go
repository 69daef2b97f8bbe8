package aiproxy_test

import (
	"strings"
	"testing"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// TestNonCanonicalPathsAreRefused: a path with a ".", ".." or empty segment,
// raw or percent-encoded in any case, gets an OpenAI-shaped 400 and never
// reaches a provider. Otherwise "/v1/../../tenant-b/admin" would leave the
// /v1 API and a base URL's path prefix on any provider that normalises
// paths, with the provider's key, and "/v1//chat/completions" would get a
// completion that no meter recognises.
func TestNonCanonicalPathsAreRefused(t *testing.T) {
	tenant := newHost(t, "sk-tenant-a")
	s := startSite(t, siteOptions{extra: "host tenant.test {\n\t\t\tbase_url " + tenant.URL +
		"/tenant-a\n\t\t\tkey sk-tenant-a\n\t\t}"})
	key := s.register("walker")
	const chat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

	for _, path := range []string{
		// Out of /v1 and the base URL's prefix.
		"/v1/%2e%2e/%2e%2e/tenant-b/admin",
		"/v1/../../tenant-b/admin",
		"/v1/%2E%2e/%2e%2E/tenant-b/admin",
		"/v1/.%2e/x",
		"/v1/a%2F..%2F..%2Ftenant-b",
		"/openai/v1/../../../tenant-b",
		// Completions by another spelling.
		"/v1//chat/completions",
		"/v1/chat//completions",
		"/v1/./chat/completions",
		"/v1/%2e/chat/completions",
		"/v1/chat/completions/",
		"/v1/chat/completions%2F",
		"/v1/chat%2F%2Fcompletions",
		"/v1/chat/completions/.",
		"/v1/",
		"//v1/chat/completions",
		"/x/../v1/chat/completions",
		"/openai//v1/chat/completions",
	} {
		for _, hostFinal := range []string{"", "tenant.test"} {
			hdr := []string{"Authorization", "Bearer " + key, "Content-Type", "application/json", "Origin", "https://chat.example"}
			if hostFinal != "" {
				hdr = append(hdr, "X-Host-Final", hostFinal)
			}
			code, resHdr, body := s.request("POST", path, strings.NewReader(chat), hdr...)
			if code != 400 {
				t.Errorf("%s (X-Host-Final %q): %d %s, want 400", path, hostFinal, code, body)
				continue
			}
			if c, _ := apiError(t, body); c != "invalid_path" {
				t.Errorf("%s: code %q, want invalid_path", path, c)
			}
			if resHdr.Get("Access-Control-Allow-Origin") == "" {
				t.Errorf("%s: the 400 has no CORS headers, so browsers hide it", path)
			}
		}
	}
	if n := len(s.upstream.Requests()); n != 0 {
		t.Errorf("the default upstream got %d requests, first %s", n, s.upstream.Requests()[0].RequestURI)
	}
	if n := len(tenant.Requests()); n != 0 {
		t.Errorf("the prefixed upstream got %d requests, first %s", n, tenant.Requests()[0].RequestURI)
	}
	if rows := s.usage("user=walker"); len(rows) != 0 {
		t.Errorf("refused requests were counted: %+v", rows)
	}

	// The message says what is wrong.
	_, _, body := s.request("POST", "/v1/chat/completions/", strings.NewReader(chat), "Authorization", "Bearer "+key)
	if _, msg := apiError(t, body); !strings.Contains(msg, "trailing") {
		t.Errorf("trailing slash: message %q does not say so", msg)
	}
	_, _, body = s.request("POST", "/v1//chat/completions", strings.NewReader(chat), "Authorization", "Bearer "+key)
	if _, msg := apiError(t, body); !strings.Contains(msg, "empty segment") {
		t.Errorf("double slash: message %q does not say so", msg)
	}
	_, _, body = s.request("GET", "/v1/%2e%2e/x", nil, "Authorization", "Bearer "+key)
	if _, msg := apiError(t, body); !strings.Contains(msg, `".."`) {
		t.Errorf("dot segment: message %q does not say so", msg)
	}
}

// TestNonCanonicalSelfAndAdminPaths: the self-service and admin routes
// follow the same rule, before any key or token is checked.
func TestNonCanonicalSelfAndAdminPaths(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("selfish")
	for _, c := range []struct {
		method, path, auth string
	}{
		{"GET", "/me/", key},
		{"GET", "/me//usage", key},
		{"POST", "/me/./reset", key},
		{"GET", "/me/%2e%2e/admin/users", key},
		{"GET", "/admin//users", adminToken},
		{"GET", "//admin/users", adminToken},
		{"GET", "/admin/users/", adminToken},
		{"DELETE", "/admin/users/%2e%2e", adminToken},
		{"GET", "/admin/users", ""}, // canonical: 401, below
	} {
		hdr := []string{}
		if c.auth != "" {
			hdr = append(hdr, "Authorization", "Bearer "+c.auth)
		}
		code, _, body := s.request(c.method, c.path, nil, hdr...)
		want := 400
		if c.auth == "" {
			want = 401
		}
		if code != want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, want)
			continue
		}
		apiError(t, body)
	}
	// Nothing was reset on the way.
	if code, body := s.chat(key); code != 200 {
		t.Fatalf("key after refused self-service paths: %d %s", code, body)
	}
}

// TestOtherNonCanonicalPathsPassOn: a path that is not the gateway's, even
// once cleaned, still goes to the site's next handler.
func TestOtherNonCanonicalPathsPassOn(t *testing.T) {
	s := startSite(t, siteOptions{})
	for _, path := range []string{"/static//app.js", "/docs/./intro", "/a/../b", "/"} {
		code, _, body := s.request("GET", path, nil)
		if code != 404 || string(body) != "site content" {
			t.Errorf("%s: %d %q, want the site's own answer", path, code, body)
		}
	}
}

// TestEncodedSlashIsMeteredAsItsDecodedPath: "%2F" inside a segment is
// passed on as sent, and classified as the decoded path a provider that
// decodes it would serve, so the completion is counted with its tokens.
func TestEncodedSlashIsMeteredAsItsDecodedPath(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("slashed")
	prompt := "five words are enough here"
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + prompt + `"}]}`
	if code, out := s.post(key, "/v1/chat%2Fcompletions", body); code != 200 {
		t.Fatalf("chat%%2Fcompletions: %d %s", code, out)
	}
	if got := s.upstream.LastRequest().RequestURI; got != "/v1/chat%2Fcompletions" {
		t.Fatalf("upstream saw %s, want the path as sent", got)
	}
	wantUsage(t, s.usageFor("slashed", "gpt-4o-mini"), 1, mockopenai.ExpectedUsage(prompt), 0)
}
