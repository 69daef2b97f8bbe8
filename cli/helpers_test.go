package cli_test

// helpers_test.go: a Caddy built with aiproxy, as xcaddy builds it, real
// sites it serves, and its `caddy aiproxy` command run against them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

const (
	adminToken  = "cli-test-admin-token-Qw81"
	upstreamKey = "sk-upstream-cli-test-0001"
)

// keyPattern is the shape of every key aiproxy issues.
var keyPattern = regexp.MustCompile(`^sk-cfw[A-Za-z0-9]{45}$`)

// caddyBin is the Caddy built once for the test binary, in TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aiproxy-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "github.com/aiproxy/aiproxy/cli/internal/testcaddy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building caddy with aiproxy:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the command did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs `caddy aiproxy args...` with the admin token, or none if token
// is "", and stdin.
func cli(t *testing.T, token, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, append([]string{"aiproxy"}, args...)...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	if token != "" {
		cmd.Env = append(cmd.Env, "AIPROXY_ADMIN_TOKEN="+token)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("caddy aiproxy %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// site is a real Caddy process serving one aiproxy site in front of a
// mock OpenAI.
type site struct {
	t        *testing.T
	url      string
	upstream *mockopenai.Server
}

// run runs `caddy aiproxy args... --site <the site>` with the admin token.
func (s *site) run(args ...string) result {
	s.t.Helper()
	return cli(s.t, adminToken, "", append(args, "--site", s.url)...)
}

// runOK is run for a command that must succeed.
func (s *site) runOK(args ...string) result {
	s.t.Helper()
	r := s.run(args...)
	if r.code != 0 {
		s.t.Fatalf("caddy aiproxy %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// startSite runs `caddy run` with a Caddyfile serving one aiproxy site on a
// free port, with a file store of its own, until the test ends.
func startSite(t *testing.T) *site {
	t.Helper()
	up := mockopenai.New(t, upstreamKey)
	dir := t.TempDir()
	port := freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	skip_install_trust
	grace_period 1ns
}
http://127.0.0.1:%d {
	aiproxy {
		admin_token {env.AIPROXY_ADMIN_TOKEN}
		upstream %s {env.UPSTREAM_KEY}
		store file %s
	}
}
`, port, up.URL, filepath.Join(dir, "aiproxy.db"))
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"AIPROXY_ADMIN_TOKEN=" + adminToken, "UPSTREAM_KEY=" + upstreamKey}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("caddy's log:\n%s", logs.String())
		}
	})
	s := &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), upstream: up}
	s.waitReady(exited, logs)
	return s
}

// waitReady waits until the site's admin API answers.
func (s *site) waitReady(exited <-chan struct{}, logs *syncBuffer) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.t.Fatalf("caddy exited at start:\n%s", logs.String())
		default:
		}
		if code, _ := s.request(http.MethodGet, "/admin/users", adminToken, ""); code == http.StatusOK {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("the site did not answer within 30s:\n%s", logs.String())
}

// request sends a request to the site with a bearer token and returns the
// status and body; status 0 when it got no answer.
func (s *site) request(method, path, token, body string) (int, string) {
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	return res.StatusCode, b.String()
}

// chat sends a chat completion with a user's key and returns its status.
func (s *site) chat(key, prompt string) int {
	s.t.Helper()
	code, body := s.request(http.MethodPost, "/v1/chat/completions", key,
		fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":%q}]}`, prompt))
	if code == 0 {
		s.t.Fatalf("chat: %s", body)
	}
	return code
}

// freePort returns a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// wantCode fails the test unless r exited with code and its stderr holds
// every one of want.
func wantCode(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %v", code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q: %v", w, r)
		}
	}
}

// lines splits output into lines, without the last newline.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
