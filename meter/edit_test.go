package meter

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
)

func TestPieces(t *testing.T) {
	body := []byte("0123456789")
	ins := func(at int, s string) Edit { return Edit{Start: at, End: at, Text: []byte(s)} }
	rep := func(start, end int, s string) Edit { return Edit{Start: start, End: end, Text: []byte(s)} }
	tests := []struct {
		name   string
		edits  []Edit
		want   string
		pieces int
	}{
		{"no edits", nil, "0123456789", 1},
		{"insert at the start", []Edit{ins(0, "a")}, "a0123456789", 2},
		{"insert at the end", []Edit{ins(10, "a")}, "0123456789a", 2},
		{"replace", []Edit{rep(2, 4, "ab")}, "01ab456789", 3},
		{"delete", []Edit{rep(2, 4, "")}, "01456789", 2},
		{"replace all", []Edit{rep(0, 10, "x")}, "x", 1},
		{"sorted", []Edit{ins(1, "a"), rep(3, 5, "b"), ins(9, "c")}, "0a12b5678c9", 7},
		{"unsorted", []Edit{ins(9, "c"), ins(1, "a"), rep(3, 5, "b")}, "0a12b5678c9", 7},
		{"adjacent replacements", []Edit{rep(4, 6, "y"), rep(2, 4, "x")}, "01xy6789", 4},
		{"insertions at one offset keep their order", []Edit{ins(5, "a"), ins(5, "b"), ins(5, "c")}, "01234abc56789", 5},
		{"insertions at one offset, reversed", []Edit{ins(5, "c"), ins(5, "b"), ins(5, "a")}, "01234cba56789", 5},
		{"insertion before a replacement at its start", []Edit{rep(5, 7, "R"), ins(5, "i")}, "01234iR789", 4},
		{"insertion after a replacement at its end", []Edit{ins(7, "i"), rep(5, 7, "R")}, "01234Ri789", 4},
		{"empty insertion", []Edit{ins(5, "")}, "0123456789", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order := slices.Clone(tt.edits)
			pieces := Pieces(body, tt.edits...)
			if got := string(bytes.Join(pieces, nil)); got != tt.want || len(pieces) != tt.pieces {
				t.Errorf("Pieces = %q (%d pieces), want %q (%d)", got, len(pieces), tt.want, tt.pieces)
			}
			if !slices.EqualFunc(order, tt.edits, func(a, b Edit) bool { return a.Start == b.Start && a.End == b.End }) {
				t.Errorf("the edits were reordered: %v", tt.edits)
			}
			if string(body) != "0123456789" {
				t.Fatalf("the body was modified: %q", body)
			}
		})
	}

	for _, edits := range [][]Edit{
		{rep(2, 5, "a"), rep(4, 6, "b")}, // overlapping replacements
		{rep(2, 5, "a"), rep(2, 3, "b")}, // same start
		{rep(2, 5, "a"), ins(3, "b")},    // insertion inside a replacement
		{rep(5, 4, "a")},                 // backwards
		{rep(8, 11, "a")},                // past the end
		{ins(11, "a")},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Pieces(%v) did not panic", edits)
				}
			}()
			Pieces(body, edits...)
		}()
	}
}

func TestCapEdits(t *testing.T) {
	chat := []string{"max_completion_tokens", "max_tokens"}
	tests := []struct {
		name  string
		body  string
		n     int64
		names []string
		want  string
	}{
		{"inserted first", `{"model":"m"}`, 5, []string{"max_tokens"}, `{"max_tokens":5,"model":"m"}`},
		{"inserted into an empty object", `{}`, 5, []string{"max_tokens"}, `{"max_tokens":5}`},
		{"inserted, whitespace", " \n{ } ", 5, []string{"max_tokens"}, " \n{\"max_tokens\":5 } "},
		{"inserted, first name", `{"model":"m"}`, 7, chat, `{"max_completion_tokens":7,"model":"m"}`},
		{"replaced", `{"model":"m","max_tokens": 1000 }`, 5, []string{"max_tokens"}, `{"model":"m","max_tokens": 5 }`},
		{"replaced null", `{"max_tokens":null}`, 5, []string{"max_tokens"}, `{"max_tokens":5}`},
		{"replaced any value", `{"max_tokens":{"a":[1,"}"]},"x":1}`, 5, []string{"max_tokens"}, `{"max_tokens":5,"x":1}`},
		{"every duplicate", `{"max_tokens":1,"x":2,"max_tokens":"3"}`, 5, []string{"max_tokens"}, `{"max_tokens":5,"x":2,"max_tokens":5}`},
		{"every name", `{"max_tokens":1,"model":"m","max_completion_tokens":2}`, 9, chat, `{"max_tokens":9,"model":"m","max_completion_tokens":9}`},
		{"the other name only", `{"model":"m","max_tokens":100}`, 9, chat, `{"model":"m","max_tokens":9}`},
		{"escaped key", `{"max\u005ftokens":1}`, 5, []string{"max_tokens"}, `{"max\u005ftokens":5}`},
		{"nested members are not top-level", `{"metadata":{"max_tokens":1}}`, 5, []string{"max_tokens"},
			`{"max_tokens":5,"metadata":{"max_tokens":1}}`},
		{"case-sensitive", `{"MAX_TOKENS":1}`, 5, []string{"max_tokens"}, `{"max_tokens":5,"MAX_TOKENS":1}`},
		{"zero", `{"n":3}`, 0, []string{"n"}, `{"n":0}`},
		{"negative", `{}`, -1, []string{"max_output_tokens"}, `{"max_output_tokens":-1}`},
		{"largest", `{}`, 1<<63 - 1, []string{"max_tokens"}, `{"max_tokens":9223372036854775807}`},
		{"name quoted", `{"a":1}`, 1, []string{"q\"b\\s\n\u00e9"}, `{"q\"b\\s\u000a` + "\u00e9" + `":1,"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			edits, ok := CapEdits(body, tt.n, tt.names...)
			if !ok {
				t.Fatalf("CapEdits(%s) failed", tt.body)
			}
			if got := string(bytes.Join(Pieces(body, edits...), nil)); got != tt.want {
				t.Errorf("CapEdits(%s, %d, %q)\n = %s\nwant %s", tt.body, tt.n, tt.names, got, tt.want)
			}
			if string(body) != tt.body {
				t.Errorf("the input was modified: %s", body)
			}
		})
	}

	for _, body := range []string{``, ` `, `null`, `[]`, `"s"`, `1`, `{`, `{"a":1} x`, `{"a":1}{}`, `{"max_tokens":}`, `{"a":tru}`} {
		if edits, ok := CapEdits([]byte(body), 5, "max_tokens"); ok || edits != nil {
			t.Errorf("CapEdits(%q) = %v, %v; want nil, false", body, edits, ok)
		}
	}
	if edits, ok := CapEdits([]byte(`{"max_tokens":1}`), 5); ok || edits != nil {
		t.Errorf("CapEdits without names = %v, %v; want nil, false", edits, ok)
	}
}

// TestCapAndIncludeUsageEdits applies both kinds of edits to one body, in
// either order.
func TestCapAndIncludeUsageEdits(t *testing.T) {
	chat := []string{"max_completion_tokens", "max_tokens"}
	tests := []struct {
		name, body           string
		names                []string
		usageFirst, capFirst string
	}{
		{"both inserted", `{"model":"m","stream":true}`, chat,
			`{"stream_options":{"include_usage":true},"max_completion_tokens":5,"model":"m","stream":true}`,
			`{"max_completion_tokens":5,"stream_options":{"include_usage":true},"model":"m","stream":true}`},
		{"both replaced", `{"max_tokens":100,"stream":true,"stream_options":null,"max_tokens":null}`, chat,
			`{"max_tokens":5,"stream":true,"stream_options":{"include_usage":true},"max_tokens":5}`, ""},
		{"include_usage inserted, cap inserted", `{"stream_options":{},"stream":true}`, []string{"max_tokens"},
			`{"max_tokens":5,"stream_options":{"include_usage":true},"stream":true}`, ""},
		{"cap next to stream_options", `{"stream":true,"stream_options":{"include_usage":false},"max_tokens":1}`, []string{"max_tokens"},
			`{"stream":true,"stream_options":{"include_usage":true},"max_tokens":5}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			usage, ok := IncludeUsageEdits(body)
			if !ok {
				t.Fatal("IncludeUsageEdits failed")
			}
			capped, ok := CapEdits(body, 5, tt.names...)
			if !ok {
				t.Fatal("CapEdits failed")
			}
			if got := string(bytes.Join(Pieces(body, append(slices.Clone(usage), capped...)...), nil)); got != tt.usageFirst {
				t.Errorf("usage edits first:\n got %s\nwant %s", got, tt.usageFirst)
			}
			capFirst := tt.capFirst
			if capFirst == "" {
				capFirst = tt.usageFirst // no insertions at one offset
			}
			if got := string(bytes.Join(Pieces(body, append(slices.Clone(capped), usage...)...), nil)); got != capFirst {
				t.Errorf("cap edits first:\n got %s\nwant %s", got, capFirst)
			}
			if string(body) != tt.body {
				t.Errorf("the input was modified: %s", body)
			}
		})
	}
}

// TestCapEditsShareTheBody: capping a 1 MiB body makes pieces that are
// slices of it, allocating next to nothing.
func TestCapEditsShareTheBody(t *testing.T) {
	big := bigBase64(1<<20, `,"stream":true,"max_tokens":4096`)
	var pieces [][]byte
	allocs := testing.AllocsPerRun(3, func() {
		usage, _ := IncludeUsageEdits(big)
		capped, _ := CapEdits(big, 100, "max_completion_tokens", "max_tokens")
		pieces = Pieces(big, append(usage, capped...)...)
	})
	if allocs > 5 {
		t.Errorf("editing allocates %v times", allocs)
	}
	var size int
	for _, p := range pieces {
		size += len(p)
	}
	if size > len(big)+64 || !bytes.Contains(pieces[len(pieces)-2], []byte("100")) {
		t.Errorf("%d pieces of %d bytes in all, for a body of %d", len(pieces), size, len(big))
	}
	info, err := InspectRequest(bytes.Join(pieces, nil))
	if err != nil || info.MaxTokens != 100 || !info.IncludeUsage {
		t.Errorf("edited body: %+v, %v", info, err)
	}
}

// capNameSets are the name lists FuzzCapEdits picks from.
var capNameSets = [][]string{
	{"max_tokens"},
	{"max_completion_tokens", "max_tokens"},
	{"max_output_tokens"},
	{"n"},
	{"stream"},
	{"q\"b\\s\n\u00e9\x7f"},
}

func FuzzCapEdits(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","stream":true,"max_tokens":100}`,
		`{"max_tokens":1,"max_completion_tokens":2,"max_tokens":null,"stream":true,"stream_options":{}}`,
		`{"max\u005ftokens":1,"stream":true,"stream_options":null}`,
		`{}`, ` { } `, `{"a":{"max_tokens":1}}`, `[1]`, `{"a":}`, "{\"max_tokens\":\"\xff\"}",
	} {
		for which := range len(capNameSets) {
			f.Add([]byte(s), int64(len(s)), uint8(which))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, n int64, which uint8) {
		names := capNameSets[int(which)%len(capNameSets)]
		edits, ok := CapEdits(body, n, names...)
		var top map[string]json.RawMessage
		isObject := json.Unmarshal(body, &top) == nil && top != nil
		if ok != isObject {
			t.Fatalf("CapEdits(%q): ok %v, but encoding/json says object=%v", body, ok, isObject)
		}
		if !ok {
			if edits != nil {
				t.Fatalf("CapEdits(%q) failed with edits %v", body, edits)
			}
			return
		}
		checkCapped(t, body, bytes.Join(Pieces(body, edits...), nil), n, names, false)

		usage, ok := IncludeUsageEdits(body)
		if !ok {
			return
		}
		both := bytes.Join(Pieces(body, append(slices.Clone(usage), edits...)...), nil)
		checkCapped(t, body, both, n, names, true)
		both = bytes.Join(Pieces(body, append(slices.Clone(edits), usage...)...), nil)
		checkCapped(t, body, both, n, names, true)
	})
}

// checkCapped checks that edited is body with the caps in names set to n
// (and, with usage, asking for include_usage), every other member
// unchanged.
func checkCapped(t *testing.T, body, edited []byte, n int64, names []string, usage bool) {
	t.Helper()
	var before, after map[string]json.RawMessage
	if err := json.Unmarshal(body, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(edited, &after); err != nil || !json.Valid(edited) {
		t.Fatalf("the edited body does not parse: %v\n%q\n%q", err, body, edited)
	}
	info, err := InspectRequest(edited)
	if err != nil {
		t.Fatalf("InspectRequest(edited): %v", err)
	}
	present := false
	for _, name := range names {
		_, ok := before[name]
		present = present || ok
	}
	set := map[string]bool{} // the members that must now be n
	for i, name := range names {
		if _, ok := before[name]; ok || (!present && i == 0) {
			set[name] = true
		}
	}
	value := strconv.FormatInt(n, 10)
	for _, name := range names {
		if _, ok := after[name]; ok != set[name] || ok && string(after[name]) != value {
			t.Fatalf("%q = %s (%v), want %s (%v)\n%q\n%q", name, after[name], ok, value, set[name], body, edited)
		}
		delete(before, name)
		delete(after, name)
	}
	for name, got := range map[string]int64{
		"max_tokens": info.MaxTokens, "max_completion_tokens": info.MaxCompletionTokens, "max_output_tokens": info.MaxOutputTokens,
	} {
		if set[name] && n >= 0 && got != n {
			t.Fatalf("InspectRequest(edited).%s = %d, want %d\n%q", name, got, n, edited)
		}
	}
	if usage {
		var opts map[string]json.RawMessage
		if err := json.Unmarshal(after["stream_options"], &opts); err != nil || string(opts["include_usage"]) != "true" || !info.IncludeUsage {
			t.Fatalf("stream_options = %s (%v), want include_usage true\n%q", after["stream_options"], err, edited)
		}
		delete(before, "stream_options")
		delete(after, "stream_options")
	}
	if len(before) != len(after) {
		t.Fatalf("top-level members: %d -> %d\n%q\n%q", len(before), len(after), body, edited)
	}
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Fatalf("member %q changed: %.80s -> %.80s", k, v, after[k])
		}
	}
}

// BenchmarkEdits1MB asks a 1 MiB streaming request for its usage and caps
// its output, as pieces: the cost of a proxy's edits.
func BenchmarkEdits1MB(b *testing.B) {
	body := bigBase64(1<<20, `,"stream":true,"max_tokens":4096`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		usage, ok := IncludeUsageEdits(body)
		capped, ok2 := CapEdits(body, 100, "max_completion_tokens", "max_tokens")
		if !ok || !ok2 || len(Pieces(body, append(usage, capped...)...)) == 0 {
			b.Fatal("not edited")
		}
	}
}

// TestStringEdits: a member's value becomes the string, every copy of it,
// and nothing else changes; no member, no edit.
func TestStringEdits(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"model":"fast","messages":[]}`, `{"model":"llama-3.3-70b","messages":[]}`},
		{`{ "model" : "fast" , "x":{"model":"keep"}}`, `{ "model" : "llama-3.3-70b" , "x":{"model":"keep"}}`},
		{`{"model":"a","model":"fast"}`, `{"model":"llama-3.3-70b","model":"llama-3.3-70b"}`},
	} {
		edits, ok := StringEdits([]byte(tc.body), "model", "llama-3.3-70b")
		if !ok {
			t.Fatalf("%s: no edits", tc.body)
		}
		if got := string(bytes.Join(Pieces([]byte(tc.body), edits...), nil)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.body, got, tc.want)
		}
	}
	for _, body := range []string{`{"messages":[]}`, `[1]`, `{"model":`} {
		if _, ok := StringEdits([]byte(body), "model", "x"); ok {
			t.Errorf("%s: edits", body)
		}
	}
	edits, _ := StringEdits([]byte(`{"model":"m"}`), "model", "a\"b\n")
	if got := string(bytes.Join(Pieces([]byte(`{"model":"m"}`), edits...), nil)); got != `{"model":"a\"b\u000a"}` {
		t.Errorf("quoting: %s", got)
	}
}
