package aiproxy_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// chatReply is a typical non-streamed chat completion.
const chatReply = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`

const chatRequest = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}`

// BenchmarkProxy measures a chat completion through aiproxy and through a
// plain Caddy reverse_proxy to the same upstream, in one Caddy process and
// one run, so their ratio is not skewed by the machine's noise over time.
// Compare the two sub-benchmarks' ns/op (and B/op, allocs/op).
func BenchmarkProxy(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, chatReply)
	}))
	defer upstream.Close()

	for _, backend := range []string{"file", "redis"} {
		b.Run(backend, func(b *testing.B) {
			store := "store file " + filepath.Join(b.TempDir(), "bench.db")
			if backend == "redis" {
				store = fmt.Sprintf("store redis {\n\t\t\taddress %s\n\t\t\tkey_prefix bench:\n\t\t}", redisAddr)
			}
			tester := caddytest.NewTester(b)
			tester.InitServer(fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
http://localhost:9080 {
	aiproxy {
		admin_token %[1]s
		upstream %[2]s sk-upstream
		%[3]s
	}
}
http://localhost:9081 {
	reverse_proxy %[2]s {
		header_up Host {upstream_hostport}
		header_up Authorization "Bearer sk-upstream"
	}
}
http://localhost:9082 {
	aiproxy {
		admin_token %[1]s
		upstream https://api.openai.com sk-unused
		host routed.test {
			base_url %[2]s
			key sk-upstream
			models gpt-4o-* llama-* qwen-* mistral-*
		}
		%[4]s
	}
}
`, adminToken, upstream.URL, store, routedStore(b, backend)), "caddyfile")
			if b.Failed() {
				b.FailNow()
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			key := benchRegister(b, client)

			b.Run("reverse_proxy", func(b *testing.B) {
				benchChat(b, client, "http://localhost:9081", "")
			})
			b.Run("aiproxy", func(b *testing.B) {
				benchChat(b, client, siteURL, key)
			})
			// The request's model picks its host.
			routed := benchRegisterAt(b, client, "http://localhost:9082")
			b.Run("aiproxy_routed", func(b *testing.B) {
				benchChat(b, client, "http://localhost:9082", routed)
			})
			// A key with rpm, tpm and a token budget, far above what the
			// run uses: every request is admitted and settled.
			limited := benchCreate(b, client, `{"name":"limited","limits":{"rpm":1000000000,"tpm":1000000000000},"budget":{"tokens":1000000000000000}}`)
			b.Run("aiproxy_limits", func(b *testing.B) {
				benchChat(b, client, siteURL, limited)
			})
		})
	}
}

// routedStore is the store of the routed site: its own.
func routedStore(b *testing.B, backend string) string {
	if backend == "redis" {
		return fmt.Sprintf("store redis {\n\t\t\taddress %s\n\t\t\tkey_prefix bench-routed:\n\t\t}", redisAddr)
	}
	return "store file " + filepath.Join(b.TempDir(), "routed.db")
}

func benchRegister(b *testing.B, client *http.Client) string {
	return benchRegisterAt(b, client, siteURL)
}

func benchRegisterAt(b *testing.B, client *http.Client, site string) string {
	res, err := client.Get(site + "/" + adminToken + "/register/bench")
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	key := strings.TrimSpace(string(body))
	if !keyPattern.MatchString(key) {
		b.Fatalf("register: %d %q", res.StatusCode, body)
	}
	return key
}

// benchCreate creates a user through the REST API and returns its key.
func benchCreate(b *testing.B, client *http.Client, body string) string {
	req, _ := http.NewRequest("POST", siteURL+"/admin/users", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || !keyPattern.MatchString(out.Key) {
		b.Fatalf("create: %d %v", res.StatusCode, err)
	}
	return out.Key
}

// benchChat sends chat completions from parallel clients.
func benchChat(b *testing.B, client *http.Client, base, key string) {
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(chatRequest))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || n != int64(len(chatReply)) {
				b.Errorf("status %d, %d bytes", res.StatusCode, n)
				return
			}
		}
	})
}

// BenchmarkProxyGzip measures a chat completion the provider gzips, for a
// client that accepts gzip: it passes compressed, and is metered from an
// inflated copy. resp-B/op is the answer's body as the client receives it.
func BenchmarkProxyGzip(b *testing.B) {
	reply := strings.Replace(chatReply, "Hello from the benchmark", strings.Repeat("Hello from the benchmark, ", 100), 1)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = io.WriteString(zw, reply)
	_ = zw.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(zipped.Len()))
		_, _ = w.Write(zipped.Bytes())
	}))
	defer upstream.Close()
	tester := caddytest.NewTester(b)
	tester.InitServer(fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
http://localhost:9080 {
	aiproxy {
		admin_token %s
		upstream %s sk-upstream
		store file %s
	}
}
`, adminToken, upstream.URL, filepath.Join(b.TempDir(), "bench.db")), "caddyfile")
	if b.Failed() {
		b.FailNow()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	key := benchRegister(b, client)
	b.Run("aiproxy", func(b *testing.B) { benchGzip(b, client, key) })
}

// benchGzip sends chat completions that accept gzip from parallel clients.
func benchGzip(b *testing.B, client *http.Client, key string) {
	var received atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(chatRequest))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Accept-Encoding", "gzip")
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
			received.Add(n)
		}
	})
	b.ReportMetric(float64(received.Load())/float64(b.N), "resp-B/op")
}
