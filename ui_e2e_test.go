package aiproxy_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiproxy/aiproxy/internal/browsertest"
)

// The admin dashboard and the user page, in a real headless Chromium,
// through Caddy, against the mock provider. Set AIPROXY_SCREENSHOTS to a
// directory (docs/screenshots) to save what the pages look like.

// tab is a browser tab on the test site.
type tab struct {
	*browsertest.Page
	t *testing.T
}

// openTab starts a browser and opens a tab of the given width (a phone's
// when under 600).
func openTab(t *testing.T, width, height int) *tab {
	t.Helper()
	if browsertest.Binary() == "" {
		t.Fatal("no chromium binary: install chromium (./test.sh does) or set CHROMIUM")
	}
	b, err := browsertest.Launch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p, err := b.NewPage()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetViewport(width, height, width < 600); err != nil {
		t.Fatal(err)
	}
	return &tab{Page: p, t: t}
}

func (p *tab) must(err error) {
	p.t.Helper()
	if err != nil {
		p.t.Fatal(err)
	}
}

func (p *tab) open(path string) { p.t.Helper(); p.must(p.Navigate(siteURL + path)) }
func (p *tab) wait(expr string) { p.t.Helper(); p.must(p.WaitFor(expr)) }
func (p *tab) click(sel string) { p.t.Helper(); p.must(p.Click(sel)) }
func (p *tab) typeIn(sel, text string) {
	p.t.Helper()
	p.must(p.Type(sel, text))
}

// visible is an expression: an element matching sel is shown.
func visible(sel string) string {
	return `(e => e && e.offsetParent !== null)(document.querySelector(` + browsertest.Quote(sel) + `))`
}

// textOf is an expression: the text of the element matching sel, or "".
func textOf(sel string) string {
	return `((document.querySelector(` + browsertest.Quote(sel) + `) || {}).textContent || "")`
}

func (p *tab) text(sel string) string {
	p.t.Helper()
	s, err := p.Text(sel)
	p.must(err)
	return s
}

// signIn fills the page's sign-in form, as a person would: one password
// input, one submit button.
func (p *tab) signIn(secret string) {
	p.t.Helper()
	p.wait(visible(`#login input[type=password]`))
	p.typeIn(`#login input[type=password]`, secret)
	p.click(`#login button[type=submit]`)
}

// confirm clicks a button that asks for a second click.
func (p *tab) confirm(sel string) {
	p.t.Helper()
	p.click(sel)
	p.wait(`document.querySelector(` + browsertest.Quote(sel) + `).classList.contains("danger")`)
	p.click(sel)
}

// screenshot saves the page as name.png in $AIPROXY_SCREENSHOTS, if set.
func (p *tab) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("AIPROXY_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := p.Screenshot(true)
	p.must(err)
	p.must(os.MkdirAll(dir, 0o755))
	p.must(os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// checkClean fails the test if the page asked another origin for anything,
// broke its Content-Security-Policy, threw an exception or kept a secret
// where it must not (localStorage, the URL).
func (p *tab) checkClean(secrets ...string) {
	p.t.Helper()
	for _, u := range p.Requests() {
		if !strings.HasPrefix(u, siteURL+"/") && !strings.HasPrefix(u, "blob:"+siteURL+"/") &&
			!strings.HasPrefix(u, "data:") && u != "about:blank" {
			p.t.Errorf("the page requested %s, outside its origin", u)
		}
	}
	var resources []string
	p.must(p.Eval(`performance.getEntriesByType("resource").map(e => e.name)`, &resources))
	for _, u := range resources {
		if !strings.HasPrefix(u, siteURL+"/") {
			p.t.Errorf("the page loaded %s, outside its origin", u)
		}
	}
	for _, e := range p.Logs() {
		if e.Source == "exception" || strings.Contains(e.Text, "Content Security Policy") ||
			e.Level == "error" && e.Source != "network" {
			p.t.Errorf("page log: %+v", e)
		}
	}
	var stored struct {
		Local int
		URL   string
	}
	p.must(p.Eval(`({Local: localStorage.length, URL: location.href})`, &stored))
	if stored.Local != 0 {
		p.t.Errorf("localStorage holds %d items", stored.Local)
	}
	for _, s := range secrets {
		if strings.Contains(stored.URL, s) {
			p.t.Errorf("the URL %s holds a secret", stored.URL)
		}
	}
}

// TestDashboardUsers: sign in, create a user and read its key once, use
// it, reset it, suspend and resume it, delete it.
func TestDashboardUsers(t *testing.T) {
	s := startSite(t, siteOptions{})
	p := openTab(t, 1280, 800)

	p.open("/admin/ui") // redirected to /admin/ui/
	p.wait(`location.pathname === "/admin/ui/"`)
	p.signIn(adminToken)
	p.wait(visible("#users-table"))
	p.wait(includes(textOf("#users-table tbody"), "No users yet"))

	p.click("#create-box summary")
	p.typeIn(`#create-user [name=name]`, "alice")
	p.typeIn(`#create-user [name=ttl]`, "720h")
	p.typeIn(`#create-user [name=models]`, "gpt-4o-mini, gpt-4o")
	p.typeIn(`#create-user [name=rpm]`, "60")
	p.typeIn(`#create-user [name=usd]`, "5")
	p.click(`#create-user button[type=submit]`)
	p.wait(visible("#issued-key"))
	key := p.text("#issued-key")
	if !keyPattern.MatchString(key) {
		t.Fatalf("issued key %q", key)
	}
	if code, body := s.chat(key); code != 200 {
		t.Fatalf("the new key: %d %s", code, body)
	}
	row := `#users-table tr[data-user="alice"]`
	p.wait(includes(textOf(row), key[len(key)-4:]))
	p.wait(includes(textOf(row+" td.left"), "left"))
	got := p.text(row)
	for _, want := range []string{"gpt-4o-mini, gpt-4o", "60 req/min", "$5.00 per month"} {
		if !strings.Contains(got, want) {
			t.Errorf("alice's row %q lacks %q", got, want)
		}
	}
	p.screenshot("admin-users")
	p.click("#issued button.secondary") // Done: the key is gone from the page
	p.wait(`document.querySelector("#issued").hidden && !document.body.textContent.includes(` + browsertest.Quote(key) + `)`)

	// A new key: the old one is refused at once.
	p.confirm(row + " button.reset")
	p.wait(visible("#issued-key") + ` && ` + textOf("#issued-key") + ` !== ` + browsertest.Quote(key))
	newKey := p.text("#issued-key")
	if code, _ := s.chat(key); code != 401 {
		t.Errorf("the old key after a reset: %d", code)
	}
	if code, _ := s.chat(newKey); code != 200 {
		t.Errorf("the new key: %d", code)
	}

	// Suspended, then resumed.
	p.confirm(row + " button.suspend")
	p.wait(includes(textOf(row), "expired"))
	if code, _ := s.chat(newKey); code != 401 {
		t.Errorf("a suspended key: %d", code)
	}
	p.click(row + " button.resume")
	p.wait(includes(textOf(row), "never"))
	if code, _ := s.chat(newKey); code != 200 {
		t.Errorf("a resumed key: %d", code)
	}

	// Expiry set from the row's editor.
	p.click(row + " button.expiry")
	p.typeIn(`tr.editor [name=ttl]`, "48h")
	p.click(`tr.editor button[type=submit]`)
	p.wait(`!document.querySelector("tr.editor") && !` + includes(textOf(row), "never"))

	p.confirm(row + " button.delete")
	p.wait(`!document.querySelector(` + browsertest.Quote(row) + `)`)
	if code, _ := s.adminJSON("GET", "/admin/users/alice", nil); code != 404 {
		t.Errorf("a deleted user: %d", code)
	}
	p.checkClean(adminToken)
}

// includes is an expression: the string expression holds s.
func includes(expr, s string) string {
	return expr + `.includes(` + browsertest.Quote(s) + `)`
}

// TestDashboardWrongToken: a wrong token shows an error and no dashboard,
// and is kept nowhere.
func TestDashboardWrongToken(t *testing.T) {
	startSite(t, siteOptions{})
	p := openTab(t, 1024, 700)
	p.open("/admin/ui/")
	p.signIn("not-the-admin-token-123")
	p.wait(visible("#login-error.error"))
	if msg := p.text("#login-error"); !strings.Contains(msg, "invalid admin token") {
		t.Errorf("error %q", msg)
	}
	var state struct {
		App     bool
		Session int
	}
	p.must(p.Eval(`({App: !document.querySelector("#app").hidden, Session: sessionStorage.length})`, &state))
	if state.App || state.Session != 0 {
		t.Errorf("after a wrong token: app shown %v, sessionStorage %d items", state.App, state.Session)
	}
	p.screenshot("admin-wrong-token")

	// The right one then works, and a reload keeps the tab signed in.
	p.signIn(adminToken)
	p.wait(visible("#users-table"))
	p.open("/admin/ui/")
	p.wait(visible("#users-table"))
	p.click("#signout")
	p.wait(visible("#login"))
	var left int
	p.must(p.Eval(`sessionStorage.length`, &left))
	if left != 0 {
		t.Errorf("signed out, sessionStorage holds %d items", left)
	}
	p.checkClean(adminToken)
}

// TestDashboardUsage: the usage chart is drawn from real proxied requests,
// stacked by model; the table ranks users by tokens; the CSV downloads.
func TestDashboardUsage(t *testing.T) {
	s := startSite(t, siteOptions{})
	alice, bob := s.register("alice"), s.register("bob")
	for i := 0; i < 3; i++ {
		s.post(alice, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	}
	s.post(alice, "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	s.post(bob, "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)

	p := openTab(t, 1280, 900)
	p.open("/admin/ui/")
	p.signIn(adminToken)
	p.wait(visible("#users-table"))
	p.click(`[data-tab=usage]`)
	p.wait(visible("#usage-chart canvas"))
	if models := p.text("#usage-chart .u-legend"); !strings.Contains(models, "gpt-4o-mini") || !strings.Contains(models, "gpt-4o") {
		t.Errorf("chart legend %q", models)
	}
	var drawn string
	p.must(p.Eval(`document.querySelector("#usage-chart").dataset.models`, &drawn))
	if drawn != "gpt-4o-mini,gpt-4o" {
		t.Errorf("chart models %q, want gpt-4o-mini (the most tokens) then gpt-4o", drawn)
	}
	p.wait(`document.querySelectorAll("#usage-users tbody tr").length === 2`)
	var order []string
	p.must(p.Eval(`[...document.querySelectorAll("#usage-users tbody tr")].map(r => r.dataset.user)`, &order))
	if strings.Join(order, ",") != "alice,bob" {
		t.Errorf("users by tokens: %v", order)
	}
	p.screenshot("admin-usage")

	// One user only.
	p.must(p.Eval(`document.querySelector("#usage-filter [name=user]").value = "bob"`, nil))
	p.click(`#usage-filter button[type=submit]`)
	p.wait(`document.querySelector("#usage-chart").dataset.models === "gpt-4o"`)

	p.click("#usage-csv")
	p.wait(includes(textOf("#usage-status"), "Downloaded"))
	if msg := p.text("#usage-status"); !strings.Contains(msg, "(1 rows)") {
		t.Errorf("CSV: %q", msg)
	}
	p.checkClean(adminToken)
}

// TestDashboardProviders: every host with its masked keys and their state;
// a key added and removed.
func TestDashboardProviders(t *testing.T) {
	s := startSite(t, siteOptions{extra: "host api.groq.com {\n\t\t\tkey gsk-configured-key-0042\n\t\t\tmodels llama-*\n\t\t}"})
	p := openTab(t, 1280, 900)
	p.open("/admin/ui/")
	p.signIn(adminToken)
	p.wait(visible("#users-table"))
	p.click(`[data-tab=hosts]`)
	def := `.host[data-host="` + strings.TrimPrefix(s.upstream.URL, "http://") + `"]`
	p.wait(visible(def))
	if got := p.text(def); !strings.Contains(got, "..."+upstreamKey[len(upstreamKey)-4:]) || !strings.Contains(got, "default") ||
		strings.Contains(got, upstreamKey) {
		t.Errorf("default host card %q", got)
	}
	groq := `.host[data-host="api.groq.com"]`
	if got := p.text(groq); !strings.Contains(got, "llama-*") || !strings.Contains(got, "...0042") || !strings.Contains(got, "https://api.groq.com") {
		t.Errorf("groq card %q", got)
	}

	p.click(`#hosts details summary`)
	p.typeIn(`#add-host [name=host]`, "api.mistral.ai")
	p.typeIn(`#add-host [name=key]`, "mistral-secret-key-7777")
	p.click(`#add-host button[type=submit]`)
	mistral := `.host[data-host="api.mistral.ai"]`
	p.wait(visible(mistral))
	if got := p.text(mistral); !strings.Contains(got, "...7777") || strings.Contains(got, "mistral-secret") {
		t.Errorf("mistral card %q", got)
	}
	p.typeIn(mistral+` input[name=key]`, "mistral-second-key-8888")
	p.click(mistral + ` form button[type=submit]`)
	p.wait(includes(textOf(mistral), "...8888"))
	p.screenshot("admin-providers")
	p.confirm(mistral + ` button.remove`)
	p.wait(`!` + includes(textOf(mistral), "...7777"))
	code, _, hosts := s.request("GET", "/admin/hosts", nil, "Authorization", "Bearer "+adminToken)
	if code != 200 || strings.Contains(string(hosts), "7777") || !strings.Contains(string(hosts), "8888") {
		t.Errorf("hosts after removing a key: %d %s", code, hosts)
	}
	p.checkClean(adminToken)
}

// TestDashboardRequests: the recent requests panel, from GET
// /admin/requests, newest first, filtered by user.
func TestDashboardRequests(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("carol")
	if code, _ := s.chat(key); code != 200 {
		t.Fatal("chat failed")
	}
	p := openTab(t, 1280, 800)
	p.open("/admin/ui/")
	p.signIn(adminToken)
	p.wait(visible("#users-table"))
	p.click(`[data-tab=requests]`)
	p.wait(`document.querySelector("#requests-table tbody tr td")`)
	p.must(p.Eval(`document.querySelector("#requests-filter [name=user]").value = "carol"`, nil))
	p.click(`#requests-filter button[type=submit]`)
	p.wait(includes(textOf("#requests-table tbody"), "/v1/chat/completions"))
	if got := p.text("#requests-table tbody"); !strings.Contains(got, "carol") || !strings.Contains(got, "gpt-4o-mini") || !strings.Contains(got, "200") {
		t.Errorf("request log rows %q", got)
	}
	p.screenshot("admin-requests")
	p.checkClean(adminToken)
}

// TestUserPage: a user signs in with their key, sees the base URL and
// snippets, their limits and budget, their usage, and gets a new key.
func TestUserPage(t *testing.T) {
	s := startSite(t, siteOptions{})
	code, out := s.adminJSON("POST", "/admin/users", map[string]any{
		"name": "dana", "ttl": "720h", "limits": map[string]any{"rpm": 30},
		"budget": map[string]any{"tokens": 100000, "period": "month"},
	})
	if code != 201 {
		t.Fatalf("create: %d %v", code, out)
	}
	key := out["key"].(string)
	for _, model := range []string{"gpt-4o-mini", "gpt-4o-mini", "gpt-4o"} {
		s.post(key, "/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
	}

	p := openTab(t, 1100, 900)
	p.open("/me/ui")
	p.wait(`location.pathname === "/me/ui/"`)
	p.signIn("sk-cfwNotAKey")
	p.wait(visible("#login-error.error"))
	p.signIn(key)
	p.wait(textOf("#me-name") + ` === "dana"`)
	if got := p.text("#base-url"); got != siteURL+"/v1" {
		t.Errorf("base URL %q", got)
	}
	if got := p.text("#snippet"); !strings.Contains(got, siteURL+"/v1/chat/completions") || strings.Contains(got, key) {
		t.Errorf("curl snippet %q", got)
	}
	p.click(`[data-snippet=python]`)
	p.wait(includes(textOf("#snippet"), `OpenAI(base_url="`+siteURL+`/v1")`))
	p.click(`[data-snippet=node]`)
	p.wait(includes(textOf("#snippet"), `baseURL: "`+siteURL+`/v1"`))
	spend := p.text("#spend")
	for _, want := range []string{"30 req/min", "100,000 tokens per month", "left; resets"} {
		if !strings.Contains(spend, want) {
			t.Errorf("limits and budget %q lack %q", spend, want)
		}
	}
	p.wait(visible("#usage-chart canvas"))
	var drawn string
	p.must(p.Eval(`document.querySelector("#usage-chart").dataset.models`, &drawn))
	if drawn != "gpt-4o-mini,gpt-4o" {
		t.Errorf("chart models %q", drawn)
	}
	p.screenshot("user-page")

	p.confirm("#reset-button button")
	p.wait(visible("#issued-key"))
	newKey := p.text("#issued-key")
	if !keyPattern.MatchString(newKey) || newKey == key {
		t.Fatalf("new key %q", newKey)
	}
	if code, _ := s.chat(key); code != 401 {
		t.Errorf("the old key: %d", code)
	}
	// The tab now holds the new key: a reload stays signed in.
	p.open("/me/ui/")
	p.wait(textOf("#me-name") + ` === "dana"`)
	p.checkClean(key, newKey)
}

// TestUserPagePhone: the user page on a phone's screen, and without the
// key reset when the site turns self-service off.
func TestUserPagePhone(t *testing.T) {
	s := startSite(t, siteOptions{extra: "self_service off"})
	key := s.register("erin")
	s.chat(key)
	p := openTab(t, 390, 844)
	p.open("/me/ui/")
	p.signIn(key)
	p.wait(textOf("#me-name") + ` === "erin"`)
	p.wait(visible("#usage-chart canvas"))
	var layout struct {
		Page, Window int
		Reset        bool
	}
	p.must(p.Eval(`({Page: document.documentElement.scrollWidth, Window: innerWidth, Reset: !document.querySelector("#reset-box").hidden})`, &layout))
	if layout.Page > layout.Window {
		t.Errorf("the page is %d px wide on a %d px screen", layout.Page, layout.Window)
	}
	if layout.Reset {
		t.Error("the key reset is offered with self_service off")
	}
	p.screenshot("user-page-phone")
	p.checkClean(key)
}

// TestWebPagesServed: the pages load without a token, with their security
// and cache headers, and shadow none of the JSON API.
func TestWebPagesServed(t *testing.T) {
	s := startSite(t, siteOptions{})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, page := range []string{"/admin/ui", "/me/ui"} {
		res, err := noRedirect.Get(siteURL + page)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != page+"/" {
			t.Errorf("GET %s: %d to %q", page, res.StatusCode, res.Header.Get("Location"))
		}
		code, hdr, body := s.request("GET", page+"/", nil)
		if code != 200 || hdr.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(string(body), `type="password"`) ||
			hdr.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET %s/: %d %v", page, code, hdr)
		}
	}
	code, hdr, _ := s.request("GET", "/admin/ui/common.js", nil)
	etag := hdr.Get("ETag")
	if code != 200 || etag == "" || hdr.Get("Cache-Control") != "no-cache" || hdr.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("common.js: %d %v", code, hdr)
	}
	if code, _, _ := s.request("GET", "/admin/ui/common.js", nil, "If-None-Match", etag); code != http.StatusNotModified {
		t.Errorf("common.js again: %d, want 304", code)
	}
	// The JSON API is the API's: its token is still required.
	for _, path := range []string{"/admin/users", "/admin/usage", "/admin/uix"} {
		if code, _, body := s.request("GET", path, nil); code != 401 {
			t.Errorf("GET %s without a token: %d %s", path, code, body)
		}
	}
	if code, _, body := s.request("GET", "/me", nil); code != 401 {
		t.Errorf("GET /me without a key: %d %s", code, body)
	}
	// Non-canonical paths are refused, as everywhere of ours.
	for _, path := range []string{"/admin/ui//common.js", "/admin/ui/../users", "/me/ui/x/"} {
		code, _, body := s.request("GET", path, nil)
		if c, _ := apiError(t, body); code != 400 || c != "invalid_path" {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	if code, _, _ := s.request("GET", "/admin/ui/nothing.js", nil); code != 404 {
		t.Errorf("an unknown file: %d", code)
	}
}

// TestDashboardRequestLogOff: with the request log off, the panel says so.
func TestDashboardRequestLogOff(t *testing.T) {
	startSite(t, siteOptions{extra: "request_log off"})
	p := openTab(t, 1024, 700)
	p.open("/admin/ui/")
	p.signIn(adminToken)
	p.wait(visible("#users-table"))
	p.click(`[data-tab=requests]`)
	p.wait(includes(textOf("#requests-status"), "request log is off"))
	if rows := p.text("#requests-table tbody"); rows != "" {
		t.Errorf("rows with the log off: %q", rows)
	}
	p.checkClean(adminToken)
}
