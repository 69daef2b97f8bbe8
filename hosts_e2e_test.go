package aiproxy_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestAdminSeesEveryHost: GET /admin/hosts shows every host the gateway
// dials, configured and run-time, with the base URL it uses; a run-time key
// joins a configured host without changing its base URL, and a base URL
// that contradicts the config is refused with 409.
func TestAdminSeesEveryHost(t *testing.T) {
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf("host configured.test {\n\t\t\tbase_url %s/tenant-a\n\t\t\tkey sk-config-key-7777\n\t\t}", s.upstream.URL)})
	configured := s.upstream.URL + "/tenant-a"

	code, out := s.adminJSON("POST", "/admin/hosts/configured.test/keys",
		map[string]any{"key": "sk-runtime-key-8888", "base_url": "https://elsewhere.example"})
	if c, _ := out["error"].(map[string]any); code != 409 || c["code"] != "base_url_conflict" ||
		!strings.Contains(fmt.Sprint(c["message"]), configured) {
		t.Fatalf("contradicting base URL: %d %v; want 409 naming %s", code, out, configured)
	}
	code, out = s.adminJSON("POST", "/admin/hosts/configured.test/keys", map[string]any{"key": "sk-runtime-key-8888"})
	if code != 201 || out["base_url"] != configured {
		t.Fatalf("key for a configured host: %d %v; want 201 with base URL %s", code, out, configured)
	}
	code, out = s.adminJSON("POST", "/admin/hosts/configured.test/keys",
		map[string]any{"key": "sk-runtime-key-9999", "base_url": configured + "/"})
	if code != 201 || out["base_url"] != configured {
		t.Fatalf("the configured base URL, spelt with a slash: %d %v", code, out)
	}
	if code, _ := s.adminJSON("POST", "/admin/hosts/runtime.test/keys", map[string]any{"key": "sk-runtime-only-1234"}); code != 201 {
		t.Fatalf("run-time host: %d", code)
	}

	code, out = s.adminJSON("GET", "/admin/hosts", nil)
	got := fmt.Sprint(out["data"])
	for _, want := range []string{
		"base_url:" + s.upstream.URL + " default:true keys:[map[key_hint:...", // the default upstream
		"name:configured.test source:config",
		"base_url:" + configured + " keys:[map[key_hint:...7777 source:config] map[id:",
		"key_hint:...8888 source:runtime",
		"base_url:https://runtime.test keys:[map[id:",
		"name:runtime.test source:runtime",
	} {
		if code != 200 || !strings.Contains(got, want) {
			t.Errorf("GET /admin/hosts: %d %s\nwant it to contain %q", code, got, want)
		}
	}
	for _, secret := range []string{"sk-config-key-7777", "sk-runtime-key-8888", upstreamKey} {
		if strings.Contains(got, secret) {
			t.Errorf("GET /admin/hosts shows a key: %s", got)
		}
	}

	// Traffic goes where the listing says. The mock provider knows none of
	// these keys and answers 401: where the request went is what counts.
	key := s.register("hostuser")
	for range 3 {
		if code, body := s.chat(key, "X-Host-Final", "configured.test"); code != 401 || !strings.HasPrefix(s.upstream.LastRequest().Path, "/tenant-a/v1/") {
			t.Fatalf("via configured.test: %d %s, upstream saw %s", code, body, s.upstream.LastRequest().Path)
		}
	}
}
