package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/keystore"
)

func TestValidUpstreamKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"sk-proj-abcDEF123_-.~", true},
		{strings.Repeat("k", maxUpstreamKeyLen), true},
		{"", false},
		{strings.Repeat("k", maxUpstreamKeyLen+1), false},
		{"sk abc", false},
		{"sk-abc\r\nX-Evil: 1", false},
		{"sk-ключ", false},
	} {
		err := validUpstreamKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("validUpstreamKey(%.20q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && tc.key != "" && strings.Contains(err.Error(), tc.key) {
			t.Errorf("validUpstreamKey error %q echoes the key", err)
		}
	}
}

func TestParseTTL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration // 0 means invalid
	}{
		{"720h", 720 * time.Hour},
		{"90m", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"", 0},
		{"30d", 0},
		{"0s", 0},
		{"-1h", 0},
		{"soon", 0},
	} {
		got, err := parseTTL(tc.in)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("parseTTL(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseTTL(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestValidationMessages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{keystore.ValidUserName("jän"), `contains 'ä'`},
		{keystore.ValidUserName("a b"), `contains ' '`},
		{keystore.ValidHostName("bücher.example"), `contains 'ü'`},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error %v, want it to mention %s", tc.err, tc.want)
		}
	}
}

func TestValidToken(t *testing.T) {
	for _, tc := range []struct {
		token, wantErr string
	}{
		{"0123456789abcdef", ""},
		{"Une9f2ijweUne9f2ijwe", ""},
		{"p@ss w/rd p@ss w/rd", ""},
		{"ключ-ключ-ключ-ab", ""}, // 16 characters, more bytes
		{"", "empty"},
		{"   ", "empty"},
		{"x", "too short: 1 of at least 16"},
		{"0123456789abcde", "15 of at least 16 characters"},
		{"ключ-ключ-ключ", "14 of"},
		{" 0123456789abcdef", "white space"},
		{"0123456789abcdef\n", "white space"},
	} {
		err := ValidToken(tc.token)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ValidToken(%q) = %v, want nil", tc.token, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ValidToken(%q) = %v, want error containing %q", tc.token, err, tc.wantErr)
		}
	}
}
