package aiproxy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanModel(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct{ name, in, want string }{
		{"short", "gpt-4o-mini", "gpt-4o-mini"},
		{"at the bound", a(128), a(128)},
		{"over the bound", a(200), a(128)},
		{"a character across the bound", a(127) + "é", a(127)},
		{"a character ending at the bound", a(126) + "é" + "b", a(126) + "é"},
		{"a 4-byte character across the bound", a(126) + "😀", a(126)},
		{"invalid bytes", "gpt-\xff\xfe-4o", "gpt-\uFFFD-4o"},
		{"invalid bytes near the bound", a(126) + "\xff", a(126)},
		{"a replacement that fits", a(125) + "\xff", a(125) + "\uFFFD"},
		{"a cut character in a long name", a(127) + "é" + a(1000), a(127)},
		{"invalid bytes in a long name", "\xff" + a(1000), "\uFFFD" + a(125)},
	} {
		got := cleanModel(c.in)
		if got != c.want {
			t.Errorf("%s: cleanModel = %q, want %q", c.name, got, c.want)
		}
		if !utf8.ValidString(got) || len(got) > maxModelLen {
			t.Errorf("%s: %q is not valid UTF-8 of at most %d bytes", c.name, got, maxModelLen)
		}
	}
}

func TestUsageModel(t *testing.T) {
	for _, c := range []struct {
		requested, answered string
		status              int
		want                string
	}{
		{"gpt-4o-mini", "gpt-4o-mini-2024-07-18", 200, "gpt-4o-mini-2024-07-18"},
		{"gpt-4o-mini", "", 200, "gpt-4o-mini"},
		{"", "gpt-4o-mini-2024-07-18", 200, "gpt-4o-mini-2024-07-18"},
		{"", "", 200, "(none)"}, // GET /v1/models
		{"", "", 101, "-"},
		{"gpt-4o-mini", "", 429, "-"},
		{"", "", 499, "-"},
		{strings.Repeat("a", 127) + "é", "", 200, strings.Repeat("a", 127)},
	} {
		if got := usageModel(c.requested, c.answered, c.status); got != c.want {
			t.Errorf("usageModel(%q, %q, %d) = %q, want %q", c.requested, c.answered, c.status, got, c.want)
		}
	}
}
