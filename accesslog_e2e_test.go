package aiproxy_test

import (
	"bytes"
	"os"
	"path/filepath"
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
// token reaches the access log, whether a seed route handled it or not
// (near misses of the seed routes answer like any unknown path), and
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
