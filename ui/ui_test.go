package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func serve(h Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestServe(t *testing.T) {
	h := Handler{SelfReset: true}
	for _, c := range []struct {
		path, status, ctype, body string
	}{
		{"/admin/ui/", "200", "text/html; charset=utf-8", `<input type="password"`},
		{"/me/ui/", "200", "text/html; charset=utf-8", `data-self-reset="true"`},
		{"/admin/ui/admin.js", "200", "text/javascript; charset=utf-8", "/admin/users"},
		{"/me/ui/user.js", "200", "text/javascript; charset=utf-8", "/me/reset"},
		{"/admin/ui/common.js", "200", "text/javascript; charset=utf-8", "sessionStorage"},
		{"/me/ui/app.css", "200", "text/css; charset=utf-8", "body"},
		{"/admin/ui/uplot.min.js", "200", "text/javascript; charset=utf-8", "uPlot"},
		{"/admin/ui/uplot.min.css", "200", "text/css; charset=utf-8", ".uplot"},
		{"/admin/ui/favicon.svg", "200", "image/svg+xml", "<svg"},
		{"/admin/ui/admin.html", "404", "", ""},      // only as the page
		{"/admin/ui/README.md", "404", "", ""},       // not served
		{"/admin/ui/uplot.LICENSE", "404", "", ""},   // not served
		{"/admin/ui/x/admin.js", "404", "", ""},      // no directories
		{"/admin/ui/nothing.js", "404", "", ""},      // unknown
		{"/admin/ui/../ui/admin.js", "404", "", ""},  // never cleaned
		{"/me/ui/.%2e/ui/admin.js", "404", "", ""},   // nor decoded
		{"/admin/ui", "301", "", ""},                 // to the slash
		{"/me/ui", "301", "", ""},                    // to the slash
		{"/admin/uix", "404", "", ""},                // not a page's
		{"/admin/ui//admin.js", "404", "", ""},       // empty segment
		{"/admin/ui/admin.js/", "404", "", ""},       // trailing slash
		{"/admin/ui/common.js?v=1", "200", "", "AP"}, // a query is ignored
	} {
		w := serve(h, "GET", c.path)
		if got := w.Code; strconv.Itoa(got) != c.status {
			t.Errorf("GET %s: %d, want %s", c.path, got, c.status)
			continue
		}
		if c.ctype != "" && w.Header().Get("Content-Type") != c.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, w.Header().Get("Content-Type"), c.ctype)
		}
		if !strings.Contains(w.Body.String(), c.body) {
			t.Errorf("GET %s: body lacks %q", c.path, c.body)
		}
		for _, name := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
			if w.Header().Get(name) == "" {
				t.Errorf("GET %s: no %s header", c.path, name)
			}
		}
	}
	if loc := serve(h, "GET", "/admin/ui").Header().Get("Location"); loc != "/admin/ui/" {
		t.Errorf("redirect to %q", loc)
	}
	if w := serve(Handler{}, "GET", "/me/ui/"); !strings.Contains(w.Body.String(), `data-self-reset="false"`) {
		t.Error("user page without SelfReset still offers the reset")
	}
}

func TestHeaders(t *testing.T) {
	w := serve(Handler{}, "GET", "/admin/ui/")
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows unsafe sources", csp)
	}
	if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", got)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q", got)
	}
	if w := serve(Handler{}, "POST", "/admin/ui/"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	if w := serve(Handler{}, "HEAD", "/admin/ui/admin.js"); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d, %d bytes", w.Code, w.Body.Len())
	}
}

// A browser's copy is current: 304, for the plain and the gzipped file.
func TestETag(t *testing.T) {
	h := Handler{}
	for _, enc := range []string{"", "gzip, deflate, br"} {
		w := serve(h, "GET", "/admin/ui/admin.js", "Accept-Encoding", enc)
		etag := w.Header().Get("ETag")
		if w.Code != 200 || !regexp.MustCompile(`^"[0-9a-f]{16}(-gz)?"$`).MatchString(etag) {
			t.Fatalf("Accept-Encoding %q: %d, ETag %q", enc, w.Code, etag)
		}
		if w := serve(h, "GET", "/admin/ui/admin.js", "Accept-Encoding", enc, "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("Accept-Encoding %q, If-None-Match %s: %d, %d bytes", enc, etag, w.Code, w.Body.Len())
		}
		if w := serve(h, "GET", "/admin/ui/admin.js", "Accept-Encoding", enc, "If-None-Match", `"other"`); w.Code != 200 {
			t.Errorf("a stale ETag: %d", w.Code)
		}
	}
}

func TestGzip(t *testing.T) {
	h := Handler{}
	plain := serve(h, "GET", "/admin/ui/admin.js")
	if plain.Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip sent to a client that did not ask for it")
	}
	for enc, want := range map[string]bool{"gzip": true, "br, gzip;q=0.5": true, "*": true, "gzip;q=0": false, "br": false, "identity": false} {
		w := serve(h, "GET", "/admin/ui/admin.js", "Accept-Encoding", enc)
		if got := w.Header().Get("Content-Encoding") == "gzip"; got != want {
			t.Errorf("Accept-Encoding %q: gzipped %v, want %v", enc, got, want)
			continue
		}
		if !strings.Contains(w.Header().Get("Vary"), "Accept-Encoding") {
			t.Errorf("Accept-Encoding %q: no Vary", enc)
		}
		if !want {
			continue
		}
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(zr)
		if !bytes.Equal(body, plain.Body.Bytes()) {
			t.Errorf("Accept-Encoding %q: gzipped body differs", enc)
		}
	}
}

// maxGzipped is what the pages' files may weigh together, gzipped.
const maxGzipped = 150 << 10

func TestSize(t *testing.T) {
	total := 0
	t1 := files()
	for name, f := range t1.static {
		total += len(f.gzipped)
		t.Logf("%-16s %6d bytes, %6d gzipped", name, len(f.body), len(f.gzipped))
	}
	total += len(t1.adminPage.gzipped) + len(t1.userPage[1].gzipped)
	t.Logf("all files: %d bytes gzipped", total)
	if total > maxGzipped {
		t.Errorf("the pages' files weigh %d bytes gzipped; the budget is %d", total, maxGzipped)
	}
}

// The pages name no other origin: no CDN, no font service, no analytics.
func TestNoOtherOrigin(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	entries, _ := fs.ReadDir(assets, "assets")
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".md") || strings.HasSuffix(e.Name(), ".LICENSE") {
			continue
		}
		b, _ := assets.ReadFile("assets/" + e.Name())
		if strings.HasPrefix(e.Name(), "uplot.") {
			b = bytes.Replace(b, []byte("https://github.com/leeoniya/uPlot"), nil, 1) // its banner comment
		}
		b = bytes.ReplaceAll(b, []byte("http://www.w3.org/"), nil) // XML namespaces
		if m := url.Find(b); m != nil {
			t.Errorf("%s names another origin: %s", e.Name(), m)
		}
		if strings.HasSuffix(e.Name(), ".html") && regexp.MustCompile(`<script>|<style|\sstyle=|\son[a-z]+=`).Match(b) {
			t.Errorf("%s has inline script or style", e.Name())
		}
	}
}

func TestIs(t *testing.T) {
	for path, want := range map[string]bool{
		"/admin/ui": true, "/admin/ui/": true, "/admin/ui/x.js": true, "/me/ui": true, "/me/ui/": true,
		"/admin/uix": false, "/admin/users": false, "/me": false, "/me/usage": false, "/ui/": false,
	} {
		if got := Is(path); got != want {
			t.Errorf("Is(%q) = %v", path, got)
		}
	}
}
