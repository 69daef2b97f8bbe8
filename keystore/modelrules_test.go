package keystore

import "testing"

// TestLiterals counts the characters of a glob that match only themselves.
func TestLiterals(t *testing.T) {
	for _, c := range []struct {
		pattern string
		want    int
	}{
		{"*", 0},
		{"gpt-4o-*", 7},
		{"gpt-4o-20*", 9},
		{"a?b", 2},
		{"a[bc]d", 2},
		{`a[\]]x`, 2},
		{`a\*`, 2},
		{"é*", 1},
	} {
		if got := literals(c.pattern); got != c.want {
			t.Errorf("literals(%q) = %d, want %d", c.pattern, got, c.want)
		}
	}
}

// TestModelRulesMostSpecific: an exact name over any glob, the glob with
// more literal characters over the others, the later of two equal ones.
func TestModelRulesMostSpecific(t *testing.T) {
	var r ModelRules[string]
	for _, p := range []string{"gpt-*", "gpt-4o*", "gpt-4o-mini", "gpt-4o?mini*", "x*", "x*"} {
		r.Add(p, p)
	}
	r.Add("x*", "later")
	for model, want := range map[string]string{
		"gpt-4o-mini":            "gpt-4o-mini",
		"gpt-4o-mini-2024-07-18": "gpt-4o?mini*",
		"gpt-4o-2024-08-06":      "gpt-4o*",
		"gpt-3.5-turbo":          "gpt-*",
		"xyz":                    "later",
		"meta-llama/x":           "",
	} {
		if got, _ := r.Lookup(model); got != want {
			t.Errorf("Lookup(%q) = %q, want %q", model, got, want)
		}
	}
}
