package aiproxy

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	_ "github.com/aiproxy/aiproxy/keystore"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	on, off := true, false
	cases := []struct {
		name  string
		input string
		want  Handler
		err   string
	}{
		{
			name: "minimal",
			input: `aiproxy {
admin_token tok
}`,
			want: Handler{AdminToken: "tok"},
		},
		{
			name: "full",
			input: `aiproxy {
				admin_token tok
				upstream https://api.openai.com sk-a sk-b
				host api.groq.com gsk-1
				host https://api.mistral.ai/ mk-1
				host local.llm {
					base_url http://10.0.0.5:8000/llm
					key k1 k2
					key k3
				}
				store file /var/lib/aiproxy.db
				cors https://chat.example https://x.example
				seed_admin_paths off
				self_service off
				metrics_per_user off
				host_refresh_interval 30s
				session_check_interval 500ms
				stream_close_delay 5m
				stream_timeout 24h
				inspect_memory 64MiB
			}`,
			want: Handler{
				AdminToken: "tok",
				Upstream:   &HostConfig{BaseURL: "https://api.openai.com", Keys: []string{"sk-a", "sk-b"}},
				Hosts: []HostConfig{
					{Name: "api.groq.com", Keys: []string{"gsk-1"}},
					{BaseURL: "https://api.mistral.ai/", Keys: []string{"mk-1"}},
					{Name: "local.llm", BaseURL: "http://10.0.0.5:8000/llm", Keys: []string{"k1", "k2", "k3"}},
				},
				StoreRaw:             json.RawMessage(`{"backend":"file","path":"/var/lib/aiproxy.db"}`),
				CORSOrigins:          []string{"https://chat.example", "https://x.example"},
				WorkerRoutes:         &off,
				SelfService:          &off,
				MetricsPerUser:       &off,
				HostRefreshInterval:  30e9,
				SessionCheckInterval: 500e6,
				StreamCloseDelay:     300e9,
				StreamTimeout:        86400e9,
				InspectMemory:        64 << 20,
			},
		},
		{
			name: "cors any and worker routes on",
			input: `aiproxy {
admin_token tok
cors *
seed_admin_paths on
}`,
			want: Handler{AdminToken: "tok", WorkerRoutes: &on},
		},
		{name: "cors off", input: "aiproxy {\nadmin_token tok\ncors off\n}", want: Handler{AdminToken: "tok", DisableCORS: true}},
		{name: "admin_token without value", input: `aiproxy {
admin_token
}`, err: "admin_token needs a value"},
		{name: "admin_token extra", input: `aiproxy {
admin_token a b
}`, err: "wrong argument count"},
		{name: "argument on directive", input: `aiproxy https://x {
admin_token a
}`, err: "wrong argument count"},
		{name: "unknown option", input: `aiproxy {
admin_token a
bogus 1
}`, err: "unrecognized aiproxy option 'bogus'"},
		{name: "upstream twice", input: `aiproxy {
upstream https://a
upstream https://b
}`, err: "only once"},
		{name: "upstream bad scheme", input: `aiproxy {
upstream ftp://a
}`, err: "must be an absolute http:// or https:// URL"},
		{name: "upstream with query", input: `aiproxy {
upstream https://a/?x=1
}`, err: "must not include a query"},
		{name: "upstream with userinfo", input: `aiproxy {
upstream https://u:p@a
}`, err: "must not include userinfo"},
		{name: "upstream no args", input: `aiproxy {
upstream
}`, err: "wrong argument count"},
		{name: "host no args", input: `aiproxy {
host
}`, err: "wrong argument count"},
		{name: "host uppercase", input: `aiproxy {
host API.groq.com k
}`, err: "not a lowercase host name"},
		{name: "host with path", input: `aiproxy {
host api.groq.com/v1 k
}`, err: "not a lowercase host name"},
		{name: "host bad option", input: "aiproxy {\nhost a.b {\nweight 2\n}\n}", err: "unrecognized host option 'weight'"},
		{name: "host empty key line", input: "aiproxy {\nhost a.b {\nkey\n}\n}", err: "wrong argument count"},
		{name: "store unknown", input: `aiproxy {
store s3
}`, err: `store: unknown backend "s3"; use one of: file, redis`},
		{name: "store no backend", input: `aiproxy {
store
}`, err: "wrong argument count"},
		{name: "cors empty", input: `aiproxy {
cors
}`, err: "wrong argument count"},
		{name: "cors star mixed", input: `aiproxy {
cors * https://a
}`, err: "cannot be combined"},
		{name: "cors no scheme", input: `aiproxy {
cors chat.example
}`, err: "must include the scheme"},
		{name: "self_service bad", input: "aiproxy {\nself_service\n}", err: "wrong argument count"},
		{name: "metrics_per_user bad", input: "aiproxy {\nmetrics_per_user yes\n}", err: "want on or off"},
		{name: "seed bad", input: `aiproxy {
seed_admin_paths maybe
}`, err: "want on or off"},
		{name: "refresh bad", input: `aiproxy {
host_refresh_interval -1s
}`, err: "positive duration"},
		{name: "session check zero", input: "aiproxy {\nsession_check_interval 0\n}", err: "session_check_interval: want a positive duration"},
		{name: "stream close delay off", input: "aiproxy {\nadmin_token tok\nstream_close_delay 0\n}", want: Handler{AdminToken: "tok"}},
		{name: "stream close delay bad", input: "aiproxy {\nstream_close_delay soon\n}", err: "stream_close_delay: want a duration"},
		{name: "stream timeout negative", input: "aiproxy {\nstream_timeout -1m\n}", err: "stream_timeout: want a duration"},
		{name: "stream timeout extra", input: "aiproxy {\nstream_timeout 1m 2m\n}", err: "wrong argument count"},
		{name: "inspect_memory in bytes", input: "aiproxy {\ninspect_memory 300000\n}", want: Handler{InspectMemory: 300000}},
		{name: "inspect_memory SI", input: "aiproxy {\ninspect_memory 1gb\n}", want: Handler{InspectMemory: 1e9}},
		{name: "inspect_memory bad", input: "aiproxy {\ninspect_memory lots\n}", err: "want a size such as 64MiB"},
		{name: "inspect_memory zero", input: "aiproxy {\ninspect_memory 0\n}", err: "want a size such as 64MiB"},
		{name: "inspect_memory no size", input: "aiproxy {\ninspect_memory\n}", err: "wrong argument count"},
		{name: "inspect_memory two sizes", input: "aiproxy {\ninspect_memory 1MiB 2MiB\n}", err: "wrong argument count"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want it to contain %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, c.want) {
				got, _ := json.Marshal(h)
				want, _ := json.Marshal(c.want)
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestAdaptExample adapts example.Caddyfile as `caddy adapt` would and checks
// the JSON users see.
func TestAdaptExample(t *testing.T) {
	t.Setenv("AIPROXY_ADMIN_TOKEN", "tok-123")
	t.Setenv("OPENAI_API_KEY", "sk-openai-xyz")
	t.Setenv("AIPROXY_SITE", "")
	os.Unsetenv("AIPROXY_SITE") // the example's default applies only when unset
	out := adaptExample(t)
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, srv := range cfg.Apps.HTTP.Servers {
		if !reflect.DeepEqual(srv.Listen, []string{":8080"}) {
			t.Fatalf("listen %v, want :8080", srv.Listen)
		}
	}
	var whole any
	_ = json.Unmarshal(out, &whole)
	found := findHandler(whole, "aiproxy")
	want := map[string]any{
		"handler":     "aiproxy",
		"admin_token": "{env.AIPROXY_ADMIN_TOKEN}",
		"upstream":    map[string]any{"base_url": "https://api.openai.com", "keys": []any{"{env.OPENAI_API_KEY}"}},
		"store":       map[string]any{"backend": "file"},
	}
	if !reflect.DeepEqual(found, want) {
		t.Fatalf("aiproxy handler adapted to %v\nwant %v\nfull: %s", found, want, out)
	}
}

// TestAdaptExampleDomain: with AIPROXY_SITE set to a domain, the example
// serves it on 443 with automatic HTTPS (and Caddy's redirect from 80).
func TestAdaptExampleDomain(t *testing.T) {
	t.Setenv("AIPROXY_ADMIN_TOKEN", "tok-123")
	t.Setenv("OPENAI_API_KEY", "sk-openai-xyz")
	t.Setenv("AIPROXY_SITE", "gpt.example.com")
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen    []string        `json:"listen"`
					Routes    json.RawMessage `json:"routes"`
					AutoHTTPS json.RawMessage `json:"automatic_https"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	out := adaptExample(t)
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	srv, ok := cfg.Apps.HTTP.Servers["srv0"]
	if !ok || !reflect.DeepEqual(srv.Listen, []string{":443"}) || srv.AutoHTTPS != nil ||
		!strings.Contains(string(srv.Routes), `"host":["gpt.example.com"]`) {
		t.Fatalf("domain site adapted to %s", out)
	}
}

// TestAdaptExampleShowsNoSecret: `caddy adapt` of example.Caddyfile, which
// Caddy also saves as autosave.json, holds no secret from the environment,
// and adapts with the secrets unset too (they are read when the config loads).
func TestAdaptExampleShowsNoSecret(t *testing.T) {
	secrets := map[string]string{
		"AIPROXY_ADMIN_TOKEN": "admin-token-Secret-4f1c9e",
		"OPENAI_API_KEY":      "sk-openai-Secret-7a2d5b",
		"GROQ_API_KEY":        "gsk_Secret-9c3e1a",
		"REDIS_PASSWORD":      "redis-Secret-2b8f4d",
	}
	for name, value := range secrets {
		t.Setenv(name, value)
	}
	out := adaptExample(t)
	for name, value := range secrets {
		if strings.Contains(string(out), value) {
			t.Errorf("$%s appears in the adapted config: %s", name, out)
		}
	}
	if !strings.Contains(string(out), `"{env.AIPROXY_ADMIN_TOKEN}"`) || !strings.Contains(string(out), `"{env.OPENAI_API_KEY}"`) {
		t.Errorf("the adapted config lacks the {env.*} placeholders: %s", out)
	}

	for name := range secrets {
		os.Unsetenv(name) // t.Setenv restores them
	}
	if out := adaptExample(t); !strings.Contains(string(out), `"handler":"aiproxy"`) {
		t.Fatalf("with the secrets unset: %s", out)
	}
}

// TestCaddyfilesAreFormatted: every Caddyfile block in README.md (```caddy
// or ```caddyfile, also indented in a list) and example.Caddyfile are as
// `caddy fmt` writes them, so copying one into a Caddyfile draws no
// "not formatted" warning.
func TestCaddyfilesAreFormatted(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := caddyfileBlocks(string(readme))
	if len(blocks) < 3 {
		t.Fatalf("found %d Caddyfile blocks in README.md, want at least 3", len(blocks))
	}
	example, err := os.ReadFile("example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	blocks = append(blocks, fencedBlock{line: 1, name: "example.Caddyfile", text: string(example)})
	for _, b := range blocks {
		if got := string(caddyfile.Format([]byte(b.text))); got != b.text {
			t.Errorf("%s:%d is not formatted; caddy fmt writes:\n%s", b.name, b.line, got)
		}
	}
}

// fencedBlock is a code block of a Markdown file.
type fencedBlock struct {
	name string
	line int // of its first line
	text string
}

// caddyfileBlocks returns README's ```caddy and ```caddyfile blocks, without
// the indentation of their fence.
func caddyfileBlocks(md string) []fencedBlock {
	var blocks []fencedBlock
	var cur *fencedBlock
	var indent string
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			lang := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(trimmed, "```")))
			if lang == "caddy" || lang == "caddyfile" {
				indent = line[:len(line)-len(trimmed)]
				cur = &fencedBlock{name: "README.md", line: i + 2}
			}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	return blocks
}

func adaptExample(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt(src, map[string]any{"filename": "example.Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	return out
}

// findHandler returns the first JSON object with "handler": name.
func findHandler(v any, name string) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == name {
			return v
		}
		for _, child := range v {
			if found := findHandler(child, name); found != nil {
				return found
			}
		}
	case []any:
		for _, child := range v {
			if found := findHandler(child, name); found != nil {
				return found
			}
		}
	}
	return nil
}
