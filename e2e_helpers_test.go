package aiproxy_test

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/aiproxy/aiproxy"
	"github.com/aiproxy/aiproxy/internal/mockopenai"
	"github.com/aiproxy/aiproxy/internal/redistest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// redisAddr is the test binary's own redis-server, started in TestMain.
var redisAddr string

func TestMain(m *testing.M) {
	if err := trustMockTLS(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r, err := redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	redisAddr = r.Addr
	code := m.Run()
	r.Close()
	os.Exit(code)
}

// trustMockTLS makes the mock upstream's certificate (httptest uses one
// built-in certificate for every TLS server) the only system root, so https
// upstreams go through the same verification path as in production.
func trustMockTLS() error {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	cert := srv.Certificate()
	srv.Close()
	dir, err := os.MkdirTemp("", "aiproxy-roots")
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		return err
	}
	// Read once, at the first use of the system pool: nothing has used it yet.
	os.Setenv("SSL_CERT_FILE", file)
	os.Setenv("SSL_CERT_DIR", dir)
	return nil
}

const (
	adminToken  = "test-admin-token-Zx81Qp"
	upstreamKey = "sk-upstream-default-0001"
	siteURL     = "http://localhost:9080"
)

// keyPattern is the shape of every key aiproxy issues.
var keyPattern = regexp.MustCompile(`^sk-cfw[A-Za-z0-9]{45}$`)

// site is one running Caddy config with aiproxy in front of a mock OpenAI.
type site struct {
	t        *testing.T
	upstream *mockopenai.Server
	client   *http.Client
	store    string // the store config of the first load, kept by reloads
	reload   func() // reloads a config of several sites, when set
	config   string // the Caddyfile last loaded by load
}

// siteOptions vary the Caddyfile a test runs.
type siteOptions struct {
	store   string // "file" (default) or "redis", or a full `store ...` line/block
	extra   string // more lines inside the aiproxy block
	global  string // more global options
	siteDir string // extra directives in the site block
	tls     bool   // the mock upstream speaks https
}

// storeSeq numbers the Redis stores the tests create.
var storeSeq atomic.Int64

// storeLine returns the store config for a backend, isolated per test.
func storeLine(t *testing.T, backend string) string {
	switch backend {
	case "", "file":
		return "store file " + filepath.Join(t.TempDir(), "aiproxy.db")
	case "redis":
		// Unique per call, so repeated runs (-count) start empty too.
		prefix := fmt.Sprintf("%s-%d", strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), storeSeq.Add(1))
		return fmt.Sprintf("store redis {\n\t\t\taddress %s\n\t\t\tkey_prefix test-%s:\n\t\t}", redisAddr, prefix)
	}
	return backend
}

func startSite(t *testing.T, opts siteOptions) *site {
	t.Helper()
	up := mockopenai.New(t, upstreamKey)
	if opts.tls {
		up = mockopenai.NewTLS(t, upstreamKey)
	}
	s := &site{t: t, upstream: up, client: &http.Client{Timeout: 10 * time.Second}}
	s.store = opts.store
	if !strings.HasPrefix(s.store, "store ") {
		s.store = storeLine(t, s.store)
	}
	opts.store = s.store
	s.load(opts)
	return s
}

// load (re)loads the site's Caddy config, as a config reload would.
func (s *site) load(opts siteOptions) {
	s.t.Helper()
	store := opts.store
	switch {
	case store == "":
		store = s.store
	case !strings.HasPrefix(store, "store "):
		store = storeLine(s.t, store)
	}
	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	%s
}
%s {
	%s
	aiproxy {
		admin_token %s
		upstream %s %s
		%s
		%s
	}
	respond "site content" 404
}
`, opts.global, siteURL, opts.siteDir, adminToken, s.upstream.URL, upstreamKey, store, opts.extra)
	s.config = cfg
	tester := caddytest.NewTester(s.t)
	tester.InitServer(cfg, "caddyfile")
	if s.t.Failed() {
		s.t.FailNow()
	}
	// The old config's server closes its idle connections; a POST sent on
	// one of them as it closes would fail with EOF (Go retries only
	// idempotent requests), so start afresh as a client after a restart would.
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
}

// request sends a request to the site and returns status, headers and body.
func (s *site) request(method, path string, body io.Reader, hdr ...string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, siteURL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res.StatusCode, res.Header, b
}

// worker calls one of the original worker's routes (token in the path) and returns status and body.
func (s *site) worker(method, path string) (int, string) {
	s.t.Helper()
	code, _, body := s.request(method, "/"+adminToken+path, nil)
	return code, string(body)
}

// register creates a user through the worker route and returns its key.
func (s *site) register(name string) string {
	s.t.Helper()
	code, body := s.worker("GET", "/register/"+name)
	key := strings.TrimSuffix(body, "\n")
	if code != 200 || !keyPattern.MatchString(key) {
		s.t.Fatalf("register %s: %d %q", name, code, body)
	}
	return key
}

// adminJSON calls the REST admin API with the admin token.
func (s *site) adminJSON(method, path string, in any) (int, map[string]any) {
	s.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	code, _, raw := s.request(method, path, body,
		"Authorization", "Bearer "+adminToken, "Content-Type", "application/json")
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			s.t.Fatalf("%s %s: not JSON (%d): %s", method, path, code, raw)
		}
	}
	return code, out
}

// chat sends a non-streaming chat completion with key and returns status and body.
func (s *site) chat(key string, hdr ...string) (int, []byte) {
	s.t.Helper()
	h := append([]string{"Authorization", "Bearer " + key, "Content-Type", "application/json"}, hdr...)
	code, _, body := s.request("POST", "/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi there"}]}`), h...)
	return code, body
}

// apiError decodes an OpenAI-shaped error body and fails if it is not one.
func apiError(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI-shaped error: %s", body)
	}
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	return code, e.Error.Message
}

// logFile is a file Caddy's default log writes to, at INFO and above.
type logFile struct {
	t    *testing.T
	path string
}

func newLogFile(t *testing.T) *logFile {
	return &logFile{t: t, path: filepath.Join(t.TempDir(), "caddy.log")}
}

// global is the global option that sends Caddy's log to the file.
func (l *logFile) global() string {
	return fmt.Sprintf("log {\n\t\toutput file %s\n\t\tlevel INFO\n\t}", l.path)
}

// read returns what the log holds so far.
func (l *logFile) read() string {
	l.t.Helper()
	b, err := os.ReadFile(l.path)
	if err != nil {
		l.t.Fatal(err)
	}
	return string(b)
}

// count returns how many log lines have a message that contains msg.
func (l *logFile) count(msg string) int {
	l.t.Helper()
	n := 0
	for line := range strings.Lines(l.read()) {
		var entry struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && strings.Contains(entry.Msg, msg) {
			n++
		}
	}
	return n
}

// stop unloads the gateway, as stopping the server would: its handler is
// cleaned up and its store closed.
func (s *site) stop() {
	s.t.Helper()
	tester := caddytest.NewTester(s.t)
	tester.InitServer(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
`+siteURL+` {
	respond "stopped" 503
}
`, "caddyfile")
}
