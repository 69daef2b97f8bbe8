package usage

import "testing"

// TestCSVText: only what a spreadsheet would run as a formula gets the '
// in front; names that merely contain or start with a dash stay readable.
func TestCSVText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"gpt-4o-mini", "gpt-4o-mini"},
		{"-", "-"}, // failed requests' model
		{"(none)", "(none)"},
		{"-1", "-1"},
		{"-0.5", "-0.5"},
		{"janlay@example.com", "janlay@example.com"},
		{"=1+2", "'=1+2"},
		{"+1", "'+1"},
		{"@SUM(A1:A2)", "'@SUM(A1:A2)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"-1+2", "'-1+2"},
		{"-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"},
		{"-a", "'-a"},
		{"--", "'--"},
		{"-1.2.3", "'-1.2.3"},
		{"-.", "'-."},
	} {
		if got := csvText(c.in); got != c.want {
			t.Errorf("csvText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
