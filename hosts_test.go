package aiproxy

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/keystore"
)

// TestHostTableMerge checks how configured and stored hosts combine: stored
// keys join a configured host of the same name (after its own keys), its
// base URL stays the config's, a stored-only host gets its stored or default
// base URL, and a stored host with a bad base URL is left out.
func TestHostTableMerge(t *testing.T) {
	repl := caddy.NewReplacer()
	def, err := newHost(HostConfig{BaseURL: "https://api.openai.com", Keys: []string{"sk-def"}}, repl)
	if err != nil {
		t.Fatal(err)
	}
	groq, err := newHost(HostConfig{Name: "api.groq.com", BaseURL: "https://api.groq.com/openai", Keys: []string{"gsk-conf"}}, repl)
	if err != nil {
		t.Fatal(err)
	}
	table := newHostTable(configuredHosts{defaultHost: def, hosts: []*host{groq}}, nil, zap.NewNop())
	snap := table.build([]keystore.Host{
		{Name: "api.groq.com", BaseURL: "https://elsewhere.example", Keys: []keystore.UpstreamKey{{ID: "1", Key: "gsk-run"}}},
		{Name: "api.openai.com", Keys: []keystore.UpstreamKey{{ID: "2", Key: "sk-run"}}},
		{Name: "vllm.local:8000", BaseURL: "http://10.0.0.5:8000/llm", Keys: []keystore.UpstreamKey{{ID: "3", Key: "v"}}},
		{Name: "mistral.example", Keys: []keystore.UpstreamKey{{ID: "4", Key: "m"}}},
		{Name: "broken.example", BaseURL: "ftp://x", Keys: []keystore.UpstreamKey{{ID: "5", Key: "b"}}},
	})
	for _, c := range []struct {
		name, baseURL string
		keys          []string
	}{
		{"api.openai.com", "https://api.openai.com", []string{"sk-def", "sk-run"}},
		{"api.groq.com", "https://api.groq.com/openai", []string{"gsk-conf", "gsk-run"}},
		{"vllm.local:8000", "http://10.0.0.5:8000/llm", []string{"v"}},
		{"mistral.example", "https://mistral.example", []string{"m"}},
	} {
		u := snap.lookup(c.name)
		if u == nil {
			t.Errorf("%s: missing", c.name)
			continue
		}
		if u.baseURL != c.baseURL || len(u.keys) != len(c.keys) {
			t.Errorf("%s: base URL %s, keys %v; want %s, %v", c.name, u.baseURL, u.keys, c.baseURL, c.keys)
			continue
		}
		for i := range c.keys {
			if u.keys[i] != c.keys[i] {
				t.Errorf("%s: keys %v, want %v", c.name, u.keys, c.keys)
			}
		}
	}
	if snap.lookup("broken.example") != nil {
		t.Error("a stored host with a bad base URL is dialed")
	}
	if snap.defaultHost != snap.lookup("api.openai.com") {
		t.Error("the default host is not the merged api.openai.com")
	}
	if len(def.keys) != 1 || len(groq.keys) != 1 {
		t.Error("building a snapshot changed the configured upstreams' keys")
	}
}
