package cli_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestHostsListAndAddKey(t *testing.T) {
	t.Parallel()
	s := startSite(t)

	// The configured default upstream, with a hint of its key.
	r := s.runOK("hosts", "list")
	rows := lines(r.stdout)
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "HOST ") {
		t.Fatalf("want a header and the default upstream: %v", r)
	}
	for _, want := range []string{"config,default", s.upstream.URL, "..." + upstreamKey[len(upstreamKey)-4:], "in use"} {
		if !strings.Contains(rows[1], want) {
			t.Errorf("the default upstream's row lacks %q: %q", want, rows[1])
		}
	}
	if strings.Contains(r.stdout, upstreamKey) {
		t.Fatalf("the list shows a provider key: %v", r)
	}

	// A run-time host: its key ID is shown, and the list has it.
	r = s.runOK("hosts", "addkey", "api.groq.com", "gsk_first_key_0000000001", "--base-url", "https://api.groq.com/openai")
	added := regexp.MustCompile(`^Key (\S+) added to api\.groq\.com \(requests go to https://api\.groq\.com/openai\)\.\n$`).FindStringSubmatch(r.stdout)
	if added == nil {
		t.Fatalf("addkey: %v", r)
	}
	// KEY - reads it from stdin, so that it stays out of history and ps.
	r = cli(t, adminToken, "gsk_second_key_000000002\n", "hosts", "addkey", "api.groq.com", "-", "--site", s.url, "--json")
	var second struct{ ID, Host, Base_URL string }
	if err := json.Unmarshal([]byte(r.stdout), &second); err != nil || r.code != 0 || second.Host != "api.groq.com" || second.ID == "" {
		t.Fatalf("addkey - --json: %v (%v)", r, err)
	}
	r = s.runOK("hosts", "list")
	rows = lines(r.stdout)
	if len(rows) != 4 {
		t.Fatalf("want the default upstream and 2 keys of api.groq.com: %v", r)
	}
	for i, want := range [][]string{{"api.groq.com", "runtime", "https://api.groq.com/openai", "...0001", added[1]}, {"...0002", second.ID}} {
		for _, w := range want {
			if !strings.Contains(rows[2+i], w) {
				t.Errorf("row %q lacks %q", rows[2+i], w)
			}
		}
	}
	if strings.Contains(r.stdout, "gsk_first") || strings.Contains(r.stdout, "gsk_second") {
		t.Errorf("the list shows a provider key: %v", r)
	}
	r = s.runOK("hosts", "list", "--json")
	var list struct {
		Data []struct {
			Name string `json:"name"`
			Keys []struct {
				ID string `json:"id"`
			} `json:"keys"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Data) != 2 || len(list.Data[1].Keys) != 2 {
		t.Errorf("--json: %v (%v)", r, err)
	}

	// Refusals: the API's message.
	wantCode(t, s.run("hosts", "addkey", "api.groq.com", "gsk_third_key_0000000003", "--base-url", "ftp://x"), 1, "400")
	wantCode(t, s.run("hosts", "addkey", "-bad-", "gsk_third_key_0000000003"), 2, "unknown shorthand flag")
	wantCode(t, s.run("hosts", "addkey", "bad_host!", "gsk_third_key_0000000003"), 1, "400")
	wantCode(t, s.run("hosts", "addkey", "api.groq.com"), 2, "missing KEY")
	wantCode(t, cli(t, adminToken, "", "hosts", "addkey", "api.groq.com", "-", "--site", s.url), 2, "stdin is empty")
}
