package browsertest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func launch(t *testing.T) *Browser {
	t.Helper()
	if Binary() == "" {
		t.Fatal("no chromium binary: install chromium (./test.sh does) or set CHROMIUM")
	}
	b, err := Launch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// A page is loaded, typed into, clicked and waited on; its requests, its
// console and its exceptions are recorded.
func TestPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, `<!doctype html><title>t</title><script src="/app.js"></script>
<form><input id="name"><button type="button" id="go">Go</button></form><p id="out"></p>`)
		case "/app.js":
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, `addEventListener("DOMContentLoaded", () => {
  document.getElementById("go").onclick = () => setTimeout(() => {
    document.getElementById("out").textContent = "hello " + document.getElementById("name").value;
    console.error("clicked");
  }, 100);
});
setTimeout(() => { throw new Error("boom") }, 0);`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	b := launch(t)
	p, err := b.NewPage()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	if err := p.Type("#name", "Ada"); err != nil {
		t.Fatal(err)
	}
	if err := p.Click("#go"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(`document.getElementById("out").textContent !== ""`); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Text("#out"); err != nil || got != "hello Ada" {
		t.Errorf("#out = %q, %v; want hello Ada", got, err)
	}
	if _, err := p.Text("#missing"); err == nil {
		t.Error("Text of a missing element: no error")
	}
	var n int
	if err := p.Eval(`Promise.resolve(6 * 7)`, &n); err != nil || n != 42 {
		t.Errorf("Eval of a promise = %d, %v; want 42", n, err)
	}
	if err := p.Eval(`nope()`, nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Eval of a throwing expression: %v", err)
	}
	if err := p.WaitForWithin(`false`, 100e6); err == nil {
		t.Error("WaitFor of a false condition: no error")
	}

	reqs := strings.Join(p.Requests(), " ")
	if !strings.Contains(reqs, srv.URL+"/app.js") {
		t.Errorf("requests %s lack /app.js", reqs)
	}
	var consoleErr, exception bool
	for _, e := range p.Logs() {
		consoleErr = consoleErr || e.Source == "console" && e.Level == "error" && e.Text == "clicked"
		exception = exception || e.Source == "exception" && strings.Contains(e.Text, "boom")
	}
	if !consoleErr || !exception {
		t.Errorf("logs %+v: console error %v, exception %v", p.Logs(), consoleErr, exception)
	}

	if err := p.SetViewport(400, 300, true); err != nil {
		t.Fatal(err)
	}
	png, err := p.Screenshot(false)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot: %d bytes, %v", len(png), err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}
