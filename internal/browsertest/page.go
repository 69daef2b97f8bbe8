package browsertest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Timeout bounds each Page call, and is the default deadline of WaitFor.
var Timeout = 15 * time.Second

// pollInterval is how often WaitFor evaluates its condition.
const pollInterval = 25 * time.Millisecond

// maxRecorded bounds the requests and log entries a page keeps.
const maxRecorded = 10000

// Page is one browser tab.
type Page struct {
	b       *Browser
	target  string
	session string

	mu       sync.Mutex
	requests []string // URLs of every request the page made, in order
	logs     []LogEntry
}

// LogEntry is a message of the page's console or of the browser about the
// page (a CSP violation, a failed load), or an uncaught exception.
type LogEntry struct {
	Source string // "console", "exception", or the browser's: "network", "security", ...
	Level  string // "error", "warning", "info", ...
	Text   string
}

// NewPage opens a tab on about:blank and starts recording its requests
// and its log.
func (b *Browser) NewPage() (*Page, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	p := &Page{b: b, target: target.TargetID, session: attached.SessionID}
	b.mu.Lock()
	b.pages[p.session] = p
	b.mu.Unlock()
	for _, domain := range []string{"Page", "Runtime", "Network", "Log"} {
		if err := p.call(ctx, domain+".enable", nil, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Page) call(ctx context.Context, method string, params, result any) error {
	return p.b.call(ctx, p.session, method, params, result)
}

// do runs one command with the default timeout.
func (p *Page) do(method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return p.call(ctx, method, params, result)
}

// event records what the page reports.
func (p *Page) event(method string, params json.RawMessage) {
	switch method {
	case "Network.requestWillBeSent":
		var e struct {
			Request struct {
				URL string `json:"url"`
			} `json:"request"`
		}
		if json.Unmarshal(params, &e) == nil {
			p.mu.Lock()
			if len(p.requests) < maxRecorded {
				p.requests = append(p.requests, e.Request.URL)
			}
			p.mu.Unlock()
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Source string `json:"source"`
				Level  string `json:"level"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		if json.Unmarshal(params, &e) == nil {
			text := e.Entry.Text
			if e.Entry.URL != "" {
				text += " (" + e.Entry.URL + ")"
			}
			p.log(LogEntry{Source: e.Entry.Source, Level: e.Entry.Level, Text: text})
		}
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &e) == nil {
			var parts []string
			for _, a := range e.Args {
				if a.Value != nil {
					parts = append(parts, fmt.Sprint(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			level := e.Type
			if level == "warn" {
				level = "warning"
			}
			p.log(LogEntry{Source: "console", Level: level, Text: strings.Join(parts, " ")})
		}
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(params, &e) == nil {
			p.log(LogEntry{Source: "exception", Level: "error", Text: e.Details.Text + " " + e.Details.Exception.Description})
		}
	}
}

func (p *Page) log(e LogEntry) {
	p.mu.Lock()
	if len(p.logs) < maxRecorded {
		p.logs = append(p.logs, e)
	}
	p.mu.Unlock()
}

// Requests returns the URLs of the requests the page has made so far.
func (p *Page) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// Logs returns the page's log entries so far.
func (p *Page) Logs() []LogEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]LogEntry(nil), p.logs...)
}

// Navigate loads url and waits until its document (after any redirect)
// has loaded.
func (p *Page) Navigate(url string) error {
	// A mark on the current document tells the next one from it.
	if err := p.Eval(`window.__browsertestOld = true`, nil); err != nil {
		return err
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.do("Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigating to %s: %s", url, nav.ErrorText)
	}
	return p.WaitFor(`!window.__browsertestOld && document.readyState === "complete"`)
}

// Eval evaluates a JavaScript expression, awaiting it if it is a promise,
// and decodes its value into out, unless out is nil.
func (p *Page) Eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.do("Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true, "userGesture": true,
	}, &res)
	if err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("evaluating %s: %s %s", expr, res.Exception.Text, res.Exception.Exception.Description)
	}
	if out == nil || res.Result.Value == nil {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// WaitFor polls expr until it is truthy, for up to Timeout.
func (p *Page) WaitFor(expr string) error {
	return p.WaitForWithin(expr, Timeout)
}

// WaitForWithin polls expr until it is truthy, for up to d. An error
// thrown by expr counts as false.
func (p *Page) WaitForWithin(expr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for {
		var ok bool
		last = p.Eval("!!("+expr+")", &ok)
		if last == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("waited %v for %s: %v", d, expr, last)
			}
			return fmt.Errorf("waited %v for %s", d, expr)
		}
		time.Sleep(pollInterval)
	}
}

// Text returns the text content of the first element matching selector.
func (p *Page) Text(selector string) (string, error) {
	var s *string
	if err := p.Eval(`(e => e && e.textContent)(document.querySelector(`+quote(selector)+`))`, &s); err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("no element matches %s", selector)
	}
	return *s, nil
}

// Click clicks the first element matching selector, waiting for it to be
// there and enabled.
func (p *Page) Click(selector string) error {
	if err := p.WaitFor(`(e => e && !e.disabled && e.offsetParent !== null)(document.querySelector(` + quote(selector) + `))`); err != nil {
		return err
	}
	return p.Eval(`document.querySelector(`+quote(selector)+`).click()`, nil)
}

// Type focuses the first element matching selector and types text into
// it, as a keyboard would (input events included).
func (p *Page) Type(selector, text string) error {
	if err := p.WaitFor(`document.querySelector(` + quote(selector) + `)`); err != nil {
		return err
	}
	if err := p.Eval(`(e => { e.focus(); e.select && e.select(); })(document.querySelector(`+quote(selector)+`))`, nil); err != nil {
		return err
	}
	return p.do("Input.insertText", map[string]any{"text": text}, nil)
}

// Press sends one key (such as "Enter") to the focused element.
func (p *Page) Press(key string) error {
	params := map[string]any{"type": "keyDown", "key": key}
	if key == "Enter" {
		params["windowsVirtualKeyCode"] = 13
		params["code"] = "Enter"
		params["text"] = "\r"
	}
	if err := p.do("Input.dispatchKeyEvent", params, nil); err != nil {
		return err
	}
	delete(params, "text")
	params["type"] = "keyUp"
	return p.do("Input.dispatchKeyEvent", params, nil)
}

// SetViewport sets the size of the page's window, in CSS pixels; mobile
// emulates a phone's (a narrow viewport and touch).
func (p *Page) SetViewport(width, height int, mobile bool) error {
	scale := 1.0
	if mobile {
		scale = 2
	}
	return p.do("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile,
	}, nil)
}

// Screenshot returns a PNG of the page's viewport, or of the whole page
// when full is set.
func (p *Page) Screenshot(full bool) ([]byte, error) {
	var shot struct {
		Data string `json:"data"`
	}
	params := map[string]any{"format": "png", "captureBeyondViewport": full}
	if full {
		var size struct{ W, H float64 }
		if err := p.Eval(`({W: document.documentElement.scrollWidth, H: document.documentElement.scrollHeight})`, &size); err != nil {
			return nil, err
		}
		params["clip"] = map[string]any{"x": 0, "y": 0, "width": size.W, "height": size.H, "scale": 1}
	}
	if err := p.do("Page.captureScreenshot", params, &shot); err != nil {
		return nil, err
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err == nil && len(png) == 0 {
		err = errors.New("empty screenshot")
	}
	return png, err
}

// Close closes the tab.
func (p *Page) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	err := p.b.call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.target}, nil)
	p.b.mu.Lock()
	delete(p.b.pages, p.session)
	p.b.mu.Unlock()
	return err
}

// quote makes s a JavaScript string literal.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Quote makes s a JavaScript string literal, for building expressions.
func Quote(s string) string { return quote(s) }
