package cli_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestUsersAddListResetRemove(t *testing.T) {
	t.Parallel()
	s := startSite(t)

	// add prints the key alone on stdout, for KEY=$(caddy aiproxy users add ...).
	r := s.runOK("users", "add", "alice", "--ttl", "720h", "--models", "gpt-4o-mini,llama-*",
		"--rpm", "60", "--max-parallel", "2", "--budget-tokens", "100000", "--budget-period", "week")
	key := strings.TrimSpace(r.stdout)
	if !keyPattern.MatchString(key) || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("stdout is not one key: %v", r)
	}
	if !strings.Contains(r.stderr, "User alice created; the key expires ") || !strings.Contains(r.stderr, "Shown only this once") {
		t.Errorf("stderr does not say the key is shown once: %v", r)
	}
	if code := s.chat(key, "hello there"); code != http.StatusOK {
		t.Fatalf("the new key: chat answered %d", code)
	}

	s.runOK("users", "add", "bob")
	r = s.runOK("users", "list")
	rows := lines(r.stdout)
	if len(rows) != 3 || !strings.HasPrefix(rows[0], "NAME ") {
		t.Fatalf("want a header and 2 rows: %v", r)
	}
	alice := rows[1]
	hint := "sk-cfw..." + key[len(key)-4:]
	for _, want := range []string{"alice ", hint, "gpt-4o-mini,llama-*", "rpm 60, parallel 2", "100000 tokens / week"} {
		if !strings.Contains(alice, want) {
			t.Errorf("alice's row lacks %q: %q", want, alice)
		}
	}
	if strings.Contains(r.stdout, key) {
		t.Errorf("the list shows the key: %v", r)
	}
	// Columns line up: every row's KEY column starts where the header's does.
	col := strings.Index(rows[0], "KEY")
	for _, row := range rows[1:] {
		if !strings.HasPrefix(row[col:], "sk-cfw...") {
			t.Errorf("misaligned row %q under %q", row, rows[0])
		}
	}
	if !strings.Contains(rows[2], "never") {
		t.Errorf("bob's key never expires: %q", rows[2])
	}

	// --json is the API's answer.
	r = s.runOK("users", "list", "--json")
	var list struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Data) != 2 {
		t.Fatalf("--json: %v (%v)", r, err)
	}
	if list.Data[0]["key_hint"] != hint || list.Data[0]["key"] != nil {
		t.Errorf("--json: %v", list.Data[0])
	}

	// A taken name, a bad name and a bad policy: the API's message, exit 1.
	wantCode(t, s.run("users", "add", "alice"), 1, `user "alice" already exists`, "409")
	wantCode(t, s.run("users", "add", "bad/name"), 1, "400")
	wantCode(t, s.run("users", "add", "carol", "--budget-period", "fortnight"), 1, "fortnight", "400")
	wantCode(t, s.run("users", "add", "carol", "--ttl", "soon"), 1, `ttl "soon" is not a duration`)
	wantCode(t, s.run("users", "add", "carol", "--rpm", "many"), 2, "invalid argument", "--help")

	// reset: a new key; the old one is refused at once.
	r = s.runOK("users", "reset", "alice")
	newKey := strings.TrimSpace(r.stdout)
	if !keyPattern.MatchString(newKey) || newKey == key {
		t.Fatalf("reset: %v", r)
	}
	if code := s.chat(key, "hi"); code != http.StatusUnauthorized {
		t.Errorf("the old key after reset: %d, want 401", code)
	}
	if code := s.chat(newKey, "hi"); code != http.StatusOK {
		t.Errorf("the new key after reset: %d, want 200", code)
	}
	r = s.runOK("users", "reset", "bob", "--json")
	var issued map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &issued); err != nil || !keyPattern.MatchString(issued["key"].(string)) {
		t.Errorf("reset --json: %v", r)
	}

	// rm, then rm of a user that is no more.
	r = s.runOK("users", "rm", "alice")
	if !strings.Contains(r.stdout, "alice deleted") {
		t.Errorf("rm: %v", r)
	}
	if code := s.chat(newKey, "hi"); code != http.StatusUnauthorized {
		t.Errorf("a deleted user's key: %d, want 401", code)
	}
	wantCode(t, s.run("users", "rm", "alice"), 1, `user "alice" not found`, "404")
	wantCode(t, s.run("users", "reset", "alice"), 1, `user "alice" not found`)
	r = s.runOK("users", "rm", "bob", "--json")
	if strings.TrimSpace(r.stdout) != `{"name":"bob","deleted":true}` {
		t.Errorf("rm --json: %v", r)
	}
	r = s.runOK("users", "list")
	if len(lines(r.stdout)) != 1 {
		t.Errorf("no users: want the header alone: %v", r)
	}
}
