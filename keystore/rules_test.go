package keystore

import (
	"strings"
	"testing"
)

func TestValidUserName(t *testing.T) {
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
		err := ValidUserName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidUserName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
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
		b, err := ParseBaseURL(tc.in)
		got := b.String()
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseBaseURL(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseBaseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
