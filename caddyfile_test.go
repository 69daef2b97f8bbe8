package aiproxy

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/aiproxy/aiproxy/keystore"
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
					models llama-* qwen-*
					models meta-llama/Llama-3.1-8B
					auth api-key
					api_path /v1beta/openai
					header X-Title "Example Chat"
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
					{Name: "local.llm", BaseURL: "http://10.0.0.5:8000/llm", Keys: []string{"k1", "k2", "k3"},
						Models: []string{"llama-*", "qwen-*", "meta-llama/Llama-3.1-8B"}, Auth: "api-key", APIPath: "/v1beta/openai",
						Headers: map[string]string{"X-Title": "Example Chat"}},
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
		{name: "alias short", input: "aiproxy {\nalias fast groq.test\n}", err: "alias takes a public name, a host and the host's model"},
		{name: "alias twice", input: "aiproxy {\nalias fast a.b m1\nalias fast a.b m2\n}", err: "alias fast is given twice"},
		{name: "host bad auth", input: "aiproxy {\nhost a.b {\nauth basic\n}\n}", err: `auth "basic": use bearer, api-key or x-api-key`},
		{name: "host bad api_path", input: "aiproxy {\nhost a.b {\napi_path v1beta\n}\n}", err: "want a clean path"},
		{name: "host header one arg", input: "aiproxy {\nhost a.b {\nheader X-Title\n}\n}", err: "header takes a name and a value"},
		{name: "host header reserved", input: "aiproxy {\nhost a.b {\nheader Authorization x\n}\n}", err: "not a header a host's requests may carry"},
		{name: "host empty models line", input: "aiproxy {\nhost a.b {\nmodels\n}\n}", err: "give at least one model"},
		{name: "host bad model pattern", input: "aiproxy {\nhost a.b {\nmodels llama-[\n}\n}", err: "not a valid pattern"},
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
		{name: "request_log size", input: "aiproxy {\nrequest_log 500\n}", want: Handler{RequestLogSize: 500}},
		{name: "request_log largest", input: "aiproxy {\nrequest_log 1000000\n}", want: Handler{RequestLogSize: 1_000_000}},
		{name: "request_log off", input: "aiproxy {\nrequest_log off\n}", want: Handler{DisableRequestLog: true}},
		{name: "request_log last line wins", input: "aiproxy {\nrequest_log off\nrequest_log 20\n}", want: Handler{RequestLogSize: 20}},
		{name: "request_log zero", input: "aiproxy {\nrequest_log 0\n}", err: "request_log: want the number of records to keep, from 1 to 1000000 (default 10000), or off; got \"0\""},
		{name: "request_log too large", input: "aiproxy {\nrequest_log 1000001\n}", err: "request_log: want the number of records to keep"},
		{name: "request_log negative", input: "aiproxy {\nrequest_log -5\n}", err: "request_log: want the number of records to keep"},
		{name: "request_log not a number", input: "aiproxy {\nrequest_log lots\n}", err: "request_log: want the number of records to keep"},
		{name: "request_log on", input: "aiproxy {\nrequest_log on\n}", err: "request_log: want the number of records to keep"},
		{name: "request_log no value", input: "aiproxy {\nrequest_log\n}", err: "wrong argument count"},
		{name: "request_log two values", input: "aiproxy {\nrequest_log 5 6\n}", err: "wrong argument count"},
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

// TestUnmarshalDefaultLimits: each line of the default_limits block, and
// every way one can be wrong.
func TestUnmarshalDefaultLimits(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	usd := func(v float64) *float64 { return &v }
	cases := []struct {
		name  string
		block string // the lines inside default_limits { }
		want  *keystore.Policy
		err   string
	}{
		{name: "models", block: "models gpt-4o-mini gpt-4.1-* meta-llama/*",
			want: &keystore.Policy{Models: []string{"gpt-4o-mini", "gpt-4.1-*", "meta-llama/*"}}},
		{name: "rpm", block: "rpm 60", want: &keystore.Policy{Limits: &keystore.Limits{RPM: n(60)}}},
		{name: "tpm", block: "tpm 200000", want: &keystore.Policy{Limits: &keystore.Limits{TPM: n(200000)}}},
		{name: "max_parallel", block: "max_parallel 4", want: &keystore.Policy{Limits: &keystore.Limits{MaxParallel: n(4)}}},
		{name: "zero is no limit", block: "rpm 0", want: &keystore.Policy{Limits: &keystore.Limits{RPM: n(0)}}},
		{name: "budget_tokens", block: "budget_tokens 1000000", want: &keystore.Policy{Budget: &keystore.Budget{Tokens: n(1000000)}}},
		{name: "budget_requests", block: "budget_requests 5000", want: &keystore.Policy{Budget: &keystore.Budget{Requests: n(5000)}}},
		{name: "budget_usd whole", block: "budget_usd 20", want: &keystore.Policy{Budget: &keystore.Budget{USD: usd(20)}}},
		{name: "budget_usd cents", block: "budget_usd 7.50", want: &keystore.Policy{Budget: &keystore.Budget{USD: usd(7.5)}}},
		{name: "budget_period", block: "budget_period week", want: &keystore.Policy{Budget: &keystore.Budget{Period: keystore.PeriodWeek}}},
		{name: "largest count", block: "tpm 1125899906842624", want: &keystore.Policy{Limits: &keystore.Limits{TPM: n(keystore.MaxLimit)}}},

		{name: "models without a model", block: "models", err: `default_limits: models: give at least one model or pattern`},
		{name: "models bad glob", block: "models gpt-[", err: `default_limits: models: "gpt-[" is not a valid pattern`},
		{name: "rpm without a number", block: "rpm", err: "wrong argument count"},
		{name: "rpm two numbers", block: "rpm 1 2", err: "wrong argument count"},
		{name: "rpm not a number", block: "rpm lots", err: `default_limits: rpm: want a whole number from 0 (no limit) to 1125899906842624, got "lots"`},
		{name: "tpm negative", block: "tpm -1", err: `default_limits: tpm: want a whole number`},
		{name: "max_parallel decimal", block: "max_parallel 1.5", err: `default_limits: max_parallel: want a whole number`},
		{name: "budget_tokens past the limit", block: "budget_tokens 1125899906842625", err: `default_limits: budget_tokens: want a whole number`},
		{name: "budget_requests exponent", block: "budget_requests 1e3", err: `default_limits: budget_requests: want a whole number`},
		{name: "budget_usd with a dollar sign", block: "budget_usd $20", err: `default_limits: budget_usd: want US dollars from 0 (no limit) to 1e+06 such as 20 or 7.50, got "$20"`},
		{name: "budget_usd negative", block: "budget_usd -5", err: "default_limits: budget_usd: want US dollars"},
		{name: "budget_usd NaN", block: "budget_usd NaN", err: "default_limits: budget_usd: want US dollars"},
		{name: "budget_usd infinite", block: "budget_usd Inf", err: "default_limits: budget_usd: want US dollars"},
		{name: "budget_usd past a million", block: "budget_usd 1000001", err: "default_limits: budget_usd: want US dollars"},
		{name: "budget_usd without an amount", block: "budget_usd", err: "wrong argument count"},
		{name: "budget_period unknown", block: "budget_period year", err: `default_limits: budget_period: "year" is not a period: use day, week, month or total`},
		{name: "budget_period two", block: "budget_period day week", err: "wrong argument count"},
		{name: "repeated", block: "rpm 60\nrpm 30", err: "default_limits: rpm given twice; keep one line"},
		{name: "repeated models", block: "models a\nmodels b", err: "default_limits: models given twice"},
		{name: "unknown", block: "rps 5", err: "unrecognized default_limits option 'rps'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("aiproxy {\ndefault_limits {\n" + c.block + "\n}\n}"))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want it to contain %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h.DefaultLimits, c.want) {
				got, _ := json.Marshal(h.DefaultLimits)
				want, _ := json.Marshal(c.want)
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestUnmarshalDefaultLimitsBlock: default_limits is one block, with at
// least one line in it.
func TestUnmarshalDefaultLimitsBlock(t *testing.T) {
	for _, c := range []struct{ name, input, err string }{
		{"twice", "aiproxy {\ndefault_limits {\nrpm 1\n}\ndefault_limits {\ntpm 1\n}\n}", "default_limits may be given only once"},
		{"arguments", "aiproxy {\ndefault_limits rpm 60\n}", "default_limits takes a block, not arguments"},
		{"no block", "aiproxy {\ndefault_limits\n}", "default_limits: give its limits in a block, a limit a line"},
		{"empty block", "aiproxy {\ndefault_limits {\n}\n}", "default_limits: give its limits in a block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want it to contain %q", err, c.err)
			}
		})
	}
}

// TestUnmarshalPrice: price <model> <input> <output> [<cached_input>].
func TestUnmarshalPrice(t *testing.T) {
	cases := []struct {
		name  string
		lines string
		want  []PriceConfig
		err   string
	}{
		{name: "with a cached price", lines: "price gpt-4o-mini 0.15 0.60 0.075",
			want: []PriceConfig{{Model: "gpt-4o-mini", Input: 0.15, Output: 0.6, CachedInput: 0.075}}},
		{name: "without a cached price", lines: "price llama-* 0.59 0.79",
			want: []PriceConfig{{Model: "llama-*", Input: 0.59, Output: 0.79}}},
		{name: "free", lines: "price local 0 0", want: []PriceConfig{{Model: "local"}}},
		{name: "several, in order", lines: "price b 1 2\nprice a 3 4",
			want: []PriceConfig{{Model: "b", Input: 1, Output: 2}, {Model: "a", Input: 3, Output: 4}}},

		{name: "model only", lines: "price gpt-4o", err: "price: want a model and 2 or 3 prices in US dollars per million tokens"},
		{name: "one price", lines: "price gpt-4o 2.5", err: "price: want a model and 2 or 3 prices"},
		{name: "four prices", lines: "price gpt-4o 1 2 3 4", err: "price: want a model and 2 or 3 prices"},
		{name: "nothing", lines: "price", err: "price: want a model and 2 or 3 prices"},
		{name: "bad glob", lines: "price gpt-[ 1 2", err: `price: the model: "gpt-[" is not a valid pattern`},
		{name: "input not a number", lines: "price m cheap 2", err: `price m: the input price "cheap" is not a number of US dollars per million tokens such as 0.15`},
		{name: "output negative", lines: "price m 1 -2", err: `price m: the output price "-2" is not a number`},
		{name: "cached NaN", lines: "price m 1 2 NaN", err: `price m: the cached input price "NaN" is not a number`},
		{name: "infinite", lines: "price m Inf 2", err: `price m: the input price "Inf" is not a number`},
		{name: "dollar sign", lines: "price m $1 2", err: `price m: the input price "$1" is not a number`},
		{name: "past the most", lines: "price m 1 2000000", err: "price m: output price 2e+06 is not an amount from 0 to 1e+06 dollars per million tokens"},
		{name: "a model twice", lines: "price m 1 2\nprice m 3 4", err: "price: m is priced twice; keep one line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("aiproxy {\n" + c.lines + "\n}"))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want it to contain %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h.Prices, c.want) {
				t.Fatalf("got %+v\nwant %+v", h.Prices, c.want)
			}
		})
	}
}

// TestAdaptSpendControl: the default_limits and price example adapts to
// clean JSON, as `caddy adapt` shows it.
func TestAdaptSpendControl(t *testing.T) {
	src := `:8080 {
	aiproxy {
		admin_token {env.AIPROXY_ADMIN_TOKEN}
		default_limits {
			models gpt-4o-mini gpt-4.1-*
			rpm 60
			tpm 200000
			max_parallel 4
			budget_tokens 1000000
			budget_requests 5000
			budget_usd 20
			budget_period month
		}
		price gpt-4o-mini 0.15 0.60 0.075 # USD per 1M input, output, [cached input] tokens
		price llama-* 0.59 0.79
	}
}
`
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapt: %v, warnings %v", err, warnings)
	}
	var whole any
	if err := json.Unmarshal(out, &whole); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(findHandler(whole, "aiproxy"))
	want := `{"admin_token":"{env.AIPROXY_ADMIN_TOKEN}",` +
		`"default_limits":{"budget":{"period":"month","requests":5000,"tokens":1000000,"usd":20},` +
		`"limits":{"max_parallel":4,"rpm":60,"tpm":200000},"models":["gpt-4o-mini","gpt-4.1-*"]},` +
		`"handler":"aiproxy",` +
		`"prices":[{"cached_input":0.075,"input":0.15,"model":"gpt-4o-mini","output":0.6},{"input":0.59,"model":"llama-*","output":0.79}]}`
	if string(got) != want {
		t.Fatalf("aiproxy handler adapted to\n%s\nwant\n%s", got, want)
	}
}

// TestREADMEProviderRecipesLoad: the provider recipes README shows are
// host blocks the aiproxy directive takes, each host resolving.
func TestREADMEProviderRecipesLoad(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var recipes string
	for _, b := range caddyfileBlocks(string(readme)) {
		if strings.Contains(b.text, "# OpenAI: the default upstream") {
			recipes = b.text
		}
	}
	if recipes == "" {
		t.Fatal("no provider recipes in README.md")
	}
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("aiproxy {\n" + recipes + "}")); err != nil {
		t.Fatalf("README's recipes: %v", err)
	}
	if len(h.Hosts) != 10 {
		t.Fatalf("%d recipes, want 10", len(h.Hosts))
	}
	for _, c := range h.Hosts {
		if _, err := newHost(c, caddy.NewReplacer()); err != nil {
			t.Errorf("host %s: %v", c.Name, err)
		}
	}
}
