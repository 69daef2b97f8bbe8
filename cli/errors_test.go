package cli_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRefusedAndWrongInvocations(t *testing.T) {
	t.Parallel()
	s := startSite(t)

	// A wrong token: said so, exit 1; a missing one: exit 2 before any request.
	r := cli(t, "not-the-admin-token", "", "users", "list", "--site", s.url)
	wantCode(t, r, 1, "refused the admin token", "401", "AIPROXY_ADMIN_TOKEN")
	if r.stdout != "" {
		t.Errorf("stdout: %q", r.stdout)
	}
	wantCode(t, cli(t, "", "", "users", "list", "--site", s.url), 2, "AIPROXY_ADMIN_TOKEN is not set")

	// Missing and unexpected arguments, unknown commands and flags: exit 2
	// with where to read the usage.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "add"}, "missing NAME"},
		{[]string{"users", "rm"}, "missing NAME"},
		{[]string{"users", "rm", "a", "b"}, `unexpected argument "b"`},
		{[]string{"users", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"hosts", "addkey"}, "missing HOST and KEY"},
		{[]string{"users", "frobnicate"}, `unknown command "frobnicate" for "caddy aiproxy users"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"users", "lst"}, `did you mean "list"?`},
		{[]string{"usage", "--frm", "2026-01-01"}, "unknown flag: --frm"},
		{[]string{"requests", "--limit", "ten"}, "invalid argument"},
	} {
		r := s.run(tc.args...)
		wantCode(t, r, 2, tc.want, "--help' for usage")
	}
	// The command alone, or a group alone: its help, on stderr.
	r = cli(t, adminToken, "", "users")
	wantCode(t, r, 2, "Available Commands", "reset ")
	// --help: the help, with the exit codes, on stdout.
	r = cli(t, "", "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Exit codes:") || !strings.Contains(r.stdout, "3  the site could not be reached") {
		t.Errorf("--help: %v", r)
	}

	// A URL without a scheme: http for loopback addresses.
	r = cli(t, adminToken, "", "users", "list", "--site", strings.TrimPrefix(s.url, "http://"))
	if r.code != 0 {
		t.Errorf("--site without a scheme: %v", r)
	}
	wantCode(t, cli(t, adminToken, "", "users", "list", "--site", "ftp://127.0.0.1"), 2, "is not a site URL")
}

func TestUnreachableSite(t *testing.T) {
	t.Parallel()
	// Nothing listens on a free port.
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	r := cli(t, adminToken, "", "users", "list", "--site", url)
	wantCode(t, r, 3, "cannot reach "+url, "connection refused", "may not be running", "--site")
}

// TestPlainHTTPSiteWarned: the token would cross the network in clear to a
// site that is not this machine: the command says so before it tries.
func TestPlainHTTPSiteWarned(t *testing.T) {
	t.Parallel()
	r := cli(t, adminToken, "", "users", "list", "--site", "http://gateway.invalid:8080")
	wantCode(t, r, 3, "warning: http://gateway.invalid:8080 is plain http", "cannot reach")
	r = cli(t, adminToken, "", "users", "list", "--site", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("a loopback site was warned about: %q", r.stderr)
	}
}

func TestNotAnAiproxySite(t *testing.T) {
	t.Parallel()
	// A site without aiproxy: Caddy answers an unhandled path 200 with no
	// body, a file server 404 in HTML; a redirect to https.
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"empty 200", func(w http.ResponseWriter, r *http.Request) {}, "answered 200 OK with no content type, not as aiproxy's admin API does"},
		{"html 404", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "<h1>Not found</h1>")
		}, "answered 404 Not Found, not as aiproxy's admin API does: does the site run aiproxy"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://gpt.example.com"+r.URL.Path, http.StatusPermanentRedirect)
		}, "redirects (308 Permanent Redirect) to https://gpt.example.com: give that as --site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			r := cli(t, adminToken, "", "users", "list", "--site", srv.URL)
			wantCode(t, r, 1, tc.want)
		})
	}
}
