package admin

import (
	"strings"
	"testing"
	"time"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"janlay", true},
		{"a", true},
		{"Jan.Lay_2-x@example.com", true},
		{strings.Repeat("x", 64), true},
		{"...", true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{".", false},
		{"..", false},
		{"jan lay", false},
		{"jan/lay", false},
		{"jan%40lay", false},
		{"jän", false},
		{"a+b", false},
		{"a\x00b", false},
	} {
		err := ValidName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestValidHostName(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 63)+".", 4) // 256 chars
	for _, tc := range []struct {
		host    string
		wantErr string // "" means valid
	}{
		{"api.groq.com", ""},
		{"localhost", ""},
		{"localhost:8080", ""},
		{"api.mistral.ai:443", ""},
		{"10.0.0.1", ""},
		{"a-b.c0", ""},
		{strings.Repeat("a", 63) + ".com", ""},
		{"", "empty"},
		{":8080", "empty"},
		{"https://api.groq.com", "scheme"},
		{"api.groq.com/openai", "path"},
		{"api.groq.com?x=1", "path"},
		{"user@api.groq.com", "userinfo"},
		{"API.groq.com", "lowercase"},
		{"api..groq.com", "empty label"},
		{".groq.com", "empty label"},
		{"groq.com.", "empty label"},
		{"-groq.com", "starts or ends"},
		{"groq-.com", "starts or ends"},
		{"api_groq.com", "allowed are"},
		{"api groq.com", "allowed are"},
		{strings.Repeat("a", 64) + ".com", "longer than 63"},
		{long[:len(long)-1], "limit is 253"},
		{"api.groq.com:", "invalid port"},
		{"api.groq.com:0", "invalid port"},
		{"api.groq.com:65536", "invalid port"},
		{"api.groq.com:080", "invalid port"},
		{"api.groq.com:+80", "invalid port"},
		{"api.groq.com:http", "invalid port"},
		{"[::1]:443", "allowed are"},
	} {
		err := ValidHostName(tc.host)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ValidHostName(%q) = %v, want nil", tc.host, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ValidHostName(%q) = %v, want error containing %q", tc.host, err, tc.wantErr)
		}
	}
}

func TestValidBaseURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means invalid
	}{
		{"https://api.groq.com", "https://api.groq.com"},
		{"https://api.groq.com/", "https://api.groq.com"},
		{"https://api.groq.com/openai/", "https://api.groq.com/openai"},
		{"http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"},
		{"HTTPS://api.groq.com", "https://api.groq.com"},
		{"api.groq.com", ""},
		{"ftp://api.groq.com", ""},
		{"https://", ""},
		{"https:api.groq.com", ""},
		{"https://user:pass@api.groq.com", ""},
		{"https://api.groq.com/?x=1", ""},
		{"https://api.groq.com/?", ""},
		{"https://api.groq.com/#frag", ""},
		{"https://api.groq.com/#", ""},
		{"https://api.groq.com/%zz", ""},
		{"", ""},
	} {
		got, err := validBaseURL(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("validBaseURL(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("validBaseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

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
		{ValidName("jän"), `contains 'ä'`},
		{ValidName("a b"), `contains ' '`},
		{ValidHostName("bücher.example"), `contains 'ü'`},
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
