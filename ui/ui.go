// Package ui serves the gateway's two web pages: the admin dashboard at
// /admin/ui/ and the user page at /me/ui/. Their files are embedded in the
// module, so the pages work offline and load nothing from another origin.
// The pages themselves carry no secret and load without one: each asks for
// the admin token or the user's key and calls the JSON APIs with it.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// The pages' paths. A request for a prefix without its slash is
// redirected to it.
const (
	AdminPrefix = "/admin/ui/"
	UserPrefix  = "/me/ui/"
)

// contentSecurityPolicy lets a page load only its own files and call only
// its own origin: no inline script or style, no frames, no plugins.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes are the types of the files served, by extension; files of
// any other type (the README, licenses) are not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// selfResetMark is where the user page's HTML says whether users may reset
// their own key (see Handler.SelfReset).
const selfResetMark = `data-self-reset="true"`

// Handler serves the pages' files.
type Handler struct {
	// SelfReset tells the user page to offer the key reset (POST /me/reset).
	SelfReset bool
}

// Is reports whether path is one of the pages' paths: a prefix, with or
// without its slash, or a file under it.
func Is(path string) bool {
	for _, p := range []string{AdminPrefix, UserPrefix} {
		if path == p[:len(p)-1] || strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// IsPage reports whether path is a page itself: a prefix with its slash,
// the one path under the gateway's routes that ends in a slash.
func IsPage(path string) bool {
	return path == AdminPrefix || path == UserPrefix
}

// ServeHTTP answers a request whose path satisfies Is.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")

	p := r.URL.Path
	if p+"/" == AdminPrefix || p+"/" == UserPrefix {
		http.Redirect(w, r, p+"/", http.StatusMovedPermanently)
		return
	}
	f := h.lookup(p)
	if f == nil {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	hdr.Set("Content-Type", f.contentType)
	// The names carry no version: a browser asks each time whether its
	// copy is current, and gets 304 when it is.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Add("Vary", "Accept-Encoding")
	body, etag := f.body, f.etag
	if acceptsGzip(r) {
		body, etag = f.gzipped, f.gzipETag
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// lookup returns the file served at p, or nil.
func (h Handler) lookup(p string) *file {
	t := files()
	switch p {
	case AdminPrefix:
		return t.adminPage
	case UserPrefix:
		if h.SelfReset {
			return t.userPage[1]
		}
		return t.userPage[0]
	}
	for _, prefix := range []string{AdminPrefix, UserPrefix} {
		if name, ok := strings.CutPrefix(p, prefix); ok {
			return t.static[name] // a name with a slash is never there
		}
	}
	return nil
}

// file is one file as served, plain and gzipped.
type file struct {
	contentType    string
	body, gzipped  []byte
	etag, gzipETag string
}

func newFile(name string, body []byte) *file {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(body) // a bytes.Buffer does not fail
	zw.Close()
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:8])
	return &file{
		contentType: contentTypes[path.Ext(name)],
		body:        body,
		gzipped:     buf.Bytes(),
		etag:        `"` + tag + `"`,
		gzipETag:    `"` + tag + `-gz"`,
	}
}

// table is every file served.
type table struct {
	adminPage *file
	userPage  [2]*file // without and with the key reset
	static    map[string]*file
}

// files reads and compresses the embedded files once, at first use.
var files = sync.OnceValue(func() *table {
	read := func(name string) []byte {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			panic(err) // embedded at build time: cannot be missing
		}
		return b
	}
	t := &table{static: map[string]*file{}}
	t.adminPage = newFile("admin.html", read("admin.html"))
	user := read("user.html")
	if !bytes.Contains(user, []byte(selfResetMark)) {
		panic("ui: user.html lacks " + selfResetMark)
	}
	t.userPage[0] = newFile("user.html", bytes.Replace(user, []byte(selfResetMark), []byte(`data-self-reset="false"`), 1))
	t.userPage[1] = newFile("user.html", user)
	entries, _ := fs.ReadDir(assets, "assets")
	for _, e := range entries {
		name := e.Name()
		ext := path.Ext(name)
		if contentTypes[ext] == "" || ext == ".html" {
			continue
		}
		t.static[name] = newFile(name, read(name))
	}
	return t
})

// acceptsGzip reports whether the client takes gzip: Accept-Encoding
// names it (or *) without q=0.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.ToLower(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
