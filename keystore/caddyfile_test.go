package keystore

import (
	"reflect"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestFileStoreUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		input   string
		want    FileStore
		wantErr bool
	}{
		{input: `file`, want: FileStore{}},
		{input: `file /var/lib/aiproxy.db`, want: FileStore{Path: "/var/lib/aiproxy.db"}},
		{input: "file {\n\tpath data/a.db\n}", want: FileStore{Path: "data/a.db"}},
		{input: `file a b`, wantErr: true},
		{input: "file {\n\tpath\n}", wantErr: true},
		{input: "file {\n\tpath a b\n}", wantErr: true},
		{input: "file /x {\n\tpath /y\n}", wantErr: true},
		{input: "file {\n\tbogus 1\n}", wantErr: true},
	} {
		t.Run(tc.input, func(t *testing.T) {
			var got FileStore
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRedisStoreUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		input   string
		want    RedisStore
		wantErr bool
	}{
		{input: `redis`, want: RedisStore{}},
		{input: `redis 127.0.0.1:6379`, want: RedisStore{Addresses: []string{"127.0.0.1:6379"}}},
		{input: `redis a:1 b:2`, want: RedisStore{Addresses: []string{"a:1", "b:2"}}},
		{
			input: `redis {
				address 127.0.0.1:6379 10.0.0.2:6379
				address 10.0.0.3:6379
				username u
				password p
				db 2
				key_prefix team:
				master_name mymaster
				tls
				tls_server_name redis.internal
				timeout 300ms
			}`,
			want: RedisStore{
				Addresses:     []string{"127.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
				Username:      "u",
				Password:      "p",
				DB:            2,
				KeyPrefix:     "team:",
				MasterName:    "mymaster",
				TLS:           true,
				TLSServerName: "redis.internal",
				Timeout:       caddy.Duration(300 * time.Millisecond),
			},
		},
		{input: "redis a:1 {\n\taddress b:2\n}", want: RedisStore{Addresses: []string{"a:1", "b:2"}}},
		{input: "redis {\n\ttls on\n}", want: RedisStore{TLS: true}},
		{input: "redis {\n\ttls off\n}", want: RedisStore{}},
		{input: "redis {\n\ttls_insecure_skip_verify\n}", want: RedisStore{TLSInsecureSkipVerify: true}},
		{input: "redis {\n\ttimeout 2s\n}", want: RedisStore{Timeout: caddy.Duration(2 * time.Second)}},
		{input: "redis {\n\ttimeout 2\n}", wantErr: true},

		{input: "redis {\n\taddress\n}", wantErr: true},
		{input: "redis {\n\tusername\n}", wantErr: true},
		{input: "redis {\n\tpassword a b\n}", wantErr: true},
		{input: "redis {\n\tdb two\n}", wantErr: true},
		{input: "redis {\n\tdb -1\n}", wantErr: true},
		{input: "redis {\n\tdb 1 2\n}", wantErr: true},
		{input: "redis {\n\ttimeout soon\n}", wantErr: true},
		{input: "redis {\n\ttimeout 0s\n}", wantErr: true},
		{input: "redis {\n\ttls maybe\n}", wantErr: true},
		{input: "redis {\n\ttls on off\n}", wantErr: true},
		{input: "redis {\n\tkey_prefix\n}", wantErr: true},
		{input: "redis {\n\tcluster yes\n}", wantErr: true},
	} {
		t.Run(tc.input, func(t *testing.T) {
			var got RedisStore
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestUnmarshalModule parses the way the aiproxy directive does: through
// caddyfile.UnmarshalModule, positioned on the backend name.
func TestUnmarshalModule(t *testing.T) {
	d := caddyfile.NewTestDispenser("store redis 10.0.0.1:6379 {\n\tdb 3\n}\nnext_directive x")
	d.Next() // "store"
	d.NextArg()
	backend := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, "aiproxy.stores."+backend)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := unm.(*RedisStore)
	if !ok || got.DB != 3 || len(got.Addresses) != 1 || got.Addresses[0] != "10.0.0.1:6379" {
		t.Errorf("got %#v", unm)
	}
	if !d.Next() || d.Val() != "next_directive" {
		t.Errorf("dispenser left at %q, want the next directive", d.Val())
	}
}
