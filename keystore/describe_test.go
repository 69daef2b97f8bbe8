package keystore

import (
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

// TestDescribe: the start log says where a store keeps its data, and never
// a Redis username or password.
func TestDescribe(t *testing.T) {
	t.Setenv("AIPROXY_TEST_REDIS_PASSWORD", "redis-Secret-5e7a")
	for _, c := range []struct {
		name  string
		store Describer
		want  string
	}{
		{"file", &FileStore{file: &openFile{path: "/var/lib/aiproxy/aiproxy.db"}},
			`{"path":"/var/lib/aiproxy/aiproxy.db"}`},
		{"redis defaults", &RedisStore{}, `{"addresses":["127.0.0.1:6379"],"key_prefix":"aiproxy:"}`},
		{"redis cluster", &RedisStore{
			Addresses: []string{"10.0.0.1:6379 10.0.0.2:6379"}, Username: "aiproxy-user",
			Password: "{env.AIPROXY_TEST_REDIS_PASSWORD}", KeyPrefix: "team:", TLS: true,
		}, `{"addresses":["10.0.0.1:6379","10.0.0.2:6379"],"key_prefix":"team:","tls":true}`},
		{"redis sentinel", &RedisStore{MasterName: "mymaster", DB: 2, Password: "plain-Secret-9d1b"},
			`{"addresses":["127.0.0.1:26379"],"key_prefix":"aiproxy:","db":2,"master_name":"mymaster"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			enc := zapcore.NewMapObjectEncoder()
			for _, f := range c.store.Describe() {
				f.AddTo(enc)
			}
			// Both marshalled from maps: keys sorted alike.
			got, err := json.Marshal(enc.Fields)
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			if wantJSON, _ := json.Marshal(want); string(got) != string(wantJSON) {
				t.Errorf("Describe() = %s, want %s", got, wantJSON)
			}
			for _, secret := range []string{"Secret", "aiproxy-user"} {
				if strings.Contains(string(got), secret) {
					t.Errorf("Describe() shows %q: %s", secret, got)
				}
			}
		})
	}
}
