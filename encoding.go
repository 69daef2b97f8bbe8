package aiproxy

// encoding.go: the compression a provider is asked for. When the client
// accepts gzip, so is the provider, and its gzipped answer passes to the
// client as it came (inflate.go meters it); otherwise Go's transport asks
// for gzip itself and hands the answer on decompressed.

import (
	"net/http"
	"strings"
)

// setUpstreamEncoding sets the Accept-Encoding a provider receives: gzip
// alone when the client accepts it and the answer may pass compressed
// (passCompressed); identity when the answer is to be edited (a stream
// the meter strips, a model list filtered), which the meter can only do
// to plain bytes and Go's transport decodes a bare gzip only; else none,
// and Go's transport asks for gzip and decodes it. Only gzip is ever asked
// for: it is the one encoding the standard library can inflate to meter an
// answer.
func setUpstreamEncoding(hdr http.Header, passCompressed, edited bool) {
	switch v := hdr["Accept-Encoding"]; {
	case edited:
		hdr["Accept-Encoding"] = []string{"identity"}
	case passCompressed && acceptsGzip(v):
		if len(v) != 1 || v[0] != "gzip" {
			hdr["Accept-Encoding"] = []string{"gzip"}
		}
	default:
		delete(hdr, "Accept-Encoding")
	}
}

// acceptsGzip reports whether an Accept-Encoding field accepts gzip
// (RFC 9110, section 12.5.3): named, or as x-gzip, with a weight above 0,
// or not named and covered by a "*" with one. No field at all is taken as
// not accepting it: such clients have always had plain answers. It does
// not allocate; the field is as long as Caddy lets a header be.
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			name, params, _ := strings.Cut(item, ";")
			switch name = strings.TrimSpace(name); {
			case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
				return !zeroWeight(params)
			case name == "*":
				star = !zeroWeight(params)
			}
		}
	}
	return star
}

// zeroWeight reports whether an Accept-Encoding item's parameters give it
// the weight 0 ("q=0", "q=0.000"), which refuses the encoding.
func zeroWeight(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		rest, ok := strings.CutPrefix(strings.TrimSpace(value), "0")
		if !ok {
			return false
		}
		if rest == "" {
			return true
		}
		rest, ok = strings.CutPrefix(rest, ".")
		return ok && strings.Trim(rest, "0") == ""
	}
	return false
}
