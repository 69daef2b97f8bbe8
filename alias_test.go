package aiproxy

import (
	"strings"
	"testing"
)

// TestResolveAliases: an alias names a configured host (or the default
// upstream's) and exact model names; anything else fails the config load
// with a message naming the alias.
func TestResolveAliases(t *testing.T) {
	def, _ := parseBaseURL("https://api.openai.com")
	groq, _ := parseBaseURL("https://api.groq.com/openai")
	hosts := configuredHosts{defaultHost: def, hosts: []*host{groq}}
	got, err := resolveAliases([]AliasConfig{
		{Name: "fast", Host: "api.groq.com", Model: "llama-3.3-70b-versatile"},
		{Name: "smart", Host: "API.OpenAI.com", Model: "gpt-4.1"},
	}, hosts)
	if err != nil || got["fast"] != (aliasTarget{"api.groq.com", "llama-3.3-70b-versatile"}) || got["smart"].host != "api.openai.com" {
		t.Fatalf("%v %v", got, err)
	}
	for _, tc := range []struct {
		alias AliasConfig
		err   string
	}{
		{AliasConfig{Name: "fast*", Host: "api.groq.com", Model: "m"}, "not a model name"},
		{AliasConfig{Name: "fast", Host: "api.groq.com", Model: "llama-*"}, "not a model name"},
		{AliasConfig{Name: "fast", Host: "nowhere.test", Model: "m"}, `no host "nowhere.test" is configured`},
		{AliasConfig{Name: "", Host: "api.groq.com", Model: "m"}, "not a model name"},
	} {
		if _, err := resolveAliases([]AliasConfig{tc.alias}, hosts); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: %v, want %q", tc.alias, err, tc.err)
		}
	}
}
