package aiproxy

import (
	"net/http"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		field []string
		want  bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip, deflate, br, zstd"}, true},
		{[]string{"br", "gzip"}, true}, // two field lines
		{[]string{"br;q=1.0, gzip;q=0.8"}, true},
		{[]string{"gzip;q=0.001"}, true},
		{[]string{"gzip ; q=1"}, true},
		{[]string{"*"}, true},
		{[]string{"br, *;q=0.1"}, true},
		{[]string{"identity"}, false},
		{[]string{"br, zstd"}, false},
		{[]string{"gzipped"}, false},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;Q=0.000"}, false},
		{[]string{"gzip;q=0."}, false},
		{[]string{"gzip;q=0, *"}, false}, // named: the star does not cover it
		{[]string{"*, gzip;q=0"}, false},
		{[]string{"*;q=0"}, false},
		{[]string{"*;q=0, identity"}, false},
		{[]string{"gzip;level=1;q=0"}, false},
		{[]string{"gzip;q=abc"}, true}, // a weight that is not 0
	} {
		if got := acceptsGzip(tc.field); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.field, got, tc.want)
		}
	}
}

func TestSetUpstreamEncoding(t *testing.T) {
	for _, tc := range []struct {
		accept         []string
		passCompressed bool
		edited         bool
		want           []string // nil: no Accept-Encoding
	}{
		{[]string{"gzip, deflate, br"}, true, false, []string{"gzip"}},
		{[]string{"br", "gzip;q=0.5"}, true, false, []string{"gzip"}},
		{[]string{"gzip"}, true, false, []string{"gzip"}},
		{[]string{"gzip"}, false, false, nil},
		{[]string{"br"}, true, false, nil},
		{[]string{"identity"}, true, false, nil},
		{nil, true, false, nil},
		// An answer the meter edits must come plain, whatever the client.
		{[]string{"gzip"}, false, true, []string{"identity"}},
		{nil, false, true, []string{"identity"}},
	} {
		hdr := http.Header{}
		if tc.accept != nil {
			hdr["Accept-Encoding"] = tc.accept
		}
		setUpstreamEncoding(hdr, tc.passCompressed, tc.edited)
		if got := hdr["Accept-Encoding"]; len(got) != len(tc.want) || len(got) == 1 && got[0] != tc.want[0] {
			t.Errorf("%q (pass compressed %v, edited %v): the provider gets %q, want %q", tc.accept, tc.passCompressed, tc.edited, got, tc.want)
		}
	}
}

// TestSetUpstreamEncodingAllocs: the field most clients send, gzip alone
// (Go's and most SDKs'), is kept as it is, at no cost.
func TestSetUpstreamEncodingAllocs(t *testing.T) {
	hdr := http.Header{"Accept-Encoding": {"gzip"}}
	if n := testing.AllocsPerRun(100, func() { setUpstreamEncoding(hdr, true, false) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
