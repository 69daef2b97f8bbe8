package aiproxy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// accessLogSite starts a site whose access log goes to a file, with the
// given lines in the log block, and returns the file's name. readLog flushes
// the log and reads it.
func accessLogSite(t *testing.T, logLines string) (*site, string) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "access.log")
	s := startSite(t, siteOptions{siteDir: "log {\n\t\toutput file " + logFile + "\n\t\t" + logLines + "\n\t}"})
	return s, logFile
}

// readLog reloads the site, which flushes and closes the old config's log
// writers, and returns what the log file holds.
func readLog(t *testing.T, s *site, logFile string) []byte {
	t.Helper()
	s.load(siteOptions{})
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

// TestAdminTokenNeverInAccessLog: no request whose URL holds the admin
// token reaches the access log, whether a worker route handled it or not
// (near misses of the worker routes answer like any unknown path), and
// whether the token is raw or percent-encoded.
func TestAdminTokenNeverInAccessLog(t *testing.T) {
	s, logFile := accessLogSite(t, "")
	const providerKey = "sk-provider-near-miss-4321"
	for _, path := range []string{
		"//" + adminToken + "/register/x",
		"/" + adminToken + "/register/x/",
		"/" + adminToken + "%2Fregister/x",
		"//" + adminToken + "/addkey/api.groq.com/" + providerKey,
		"/" + adminToken + "/addkey/api.groq.com/" + providerKey + "/",
		"/%" + hexByte(adminToken[0]) + adminToken[1:] + "/register/x", // the token's first character encoded
		"/static/" + adminToken,
		"/?token=" + adminToken,
		"/" + adminToken + "/register/handled",
	} {
		if code, _, body := s.request("GET", path, nil); code != 200 && code != 404 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	// A page opened from a seed URL names it in Referer.
	s.request("GET", "/favicon.ico", nil, "Referer", siteURL+"/"+adminToken+"/register/x")
	s.request("GET", "/nothing/here", nil)

	logs := readLog(t, s, logFile)
	if !bytes.Contains(logs, []byte(`"uri":"/nothing/here"`)) {
		t.Fatalf("the access log did not record an ordinary request: %s", logs)
	}
	for name, secret := range map[string]string{"admin token": adminToken, "provider key": providerKey} {
		if i := bytes.Index(logs, []byte(secret)); i >= 0 {
			t.Errorf("the %s is in the access log: %s", name, logs[max(0, i-300):min(len(logs), i+100)])
		}
	}
}

func hexByte(b byte) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[b>>4], digits[b&15]})
}

// TestAccessLogFilterHidesKeyHeaders: Caddy's access log redacts
// Authorization but logs the other headers users send keys in, from a copy
// of the request taken before aiproxy runs, so aiproxy cannot take them
// out. The filter README shows (read from README itself) keeps all three
// out while the requests are still logged, with the user's name.
func TestAccessLogFilterHidesKeyHeaders(t *testing.T) {
	for _, filtered := range []bool{true, false} {
		name := "README's filter"
		logLines := readmeLogFilter(t)
		if !filtered {
			// Without it the keys are in the log: if this ever fails, Caddy
			// redacts them itself and README's advice can go.
			name, logLines = "no filter", ""
		}
		t.Run(name, func(t *testing.T) {
			s, logFile := accessLogSite(t, logLines)
			key := s.register("filtered")
			for _, h := range []string{"Api-Key", "X-Api-Key"} {
				if code, _, body := s.request("GET", "/v1/models", nil, h, key); code != 200 {
					t.Fatalf("key in %s: %d %s", h, code, body)
				}
			}
			wsRoundTrip(t, s, "Sec-WebSocket-Protocol: realtime, openai-insecure-api-key."+key)

			logs := readLog(t, s, logFile)
			if n := bytes.Count(logs, []byte(`"user_id":"filtered"`)); n != 3 {
				t.Fatalf("%d logged requests of user filtered, want 3: %s", n, logs)
			}
			if got := bytes.Count(logs, []byte(key)); filtered && got != 0 {
				t.Errorf("the key is in the filtered access log %d times: %s", got, logs)
			} else if !filtered && got != 3 {
				t.Errorf("the key is in the unfiltered access log %d times, want 3 (one per header): %s", got, logs)
			}
		})
	}
}

// readmeLogFilter returns the body of the log block in README's security
// notes (its format filter), to go inside a test site's log block.
func readmeLogFilter(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```caddyfile\n  log {\n")
	block, _, ok2 := strings.Cut(block, "\n  }\n  ```")
	if !ok || !ok2 || !strings.Contains(block, "format filter") {
		t.Fatal("README has no access log filter block")
	}
	return block
}
