package meter

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// bigBase64 returns a chat request carrying an n-byte base64 image, the
// case InspectRequest must be cheap for.
func bigBase64(n int, tail string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is \"this\"?\n"},`)
	b.WriteString(`{"type":"image_url","image_url":{"url":"data:image/png;base64,`)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < n; i++ {
		b.WriteByte(alphabet[(i*7+i/64)%64])
	}
	b.WriteString(`"}}]}]` + tail + `}`)
	return b.Bytes()
}

func TestInspectRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want RequestInfo
	}{
		{"minimal", `{"model":"gpt-4o-mini"}`, RequestInfo{Model: "gpt-4o-mini"}},
		{"stream", `{"model":"m","stream":true,"messages":[]}`, RequestInfo{Model: "m", Stream: true}},
		{"stream false", `{"stream":false}`, RequestInfo{}},
		{"stream not a bool", `{"stream":"true"}`, RequestInfo{}},
		{"stream 1", `{"stream":1}`, RequestInfo{}},
		{"include usage", `{"stream":true,"stream_options":{"include_usage":true}}`,
			RequestInfo{Stream: true, HasStreamOptions: true, IncludeUsage: true}},
		{"include usage false", `{"stream":true,"stream_options":{"include_usage":false}}`,
			RequestInfo{Stream: true, HasStreamOptions: true}},
		{"stream options without include usage", `{"stream_options":{"include_obfuscation":false},"stream":true}`,
			RequestInfo{Stream: true, HasStreamOptions: true}},
		{"stream options null", `{"stream":true,"stream_options":null}`, RequestInfo{Stream: true}},
		{"stream options not an object", `{"stream_options":[true]}`, RequestInfo{HasStreamOptions: true}},
		{"whitespace everywhere", " \r\n\t{ \"model\" :\n\"m\" , \"stream\" : true , \"stream_options\" : { \"include_usage\" : true } }\n ",
			RequestInfo{Model: "m", Stream: true, HasStreamOptions: true, IncludeUsage: true}},
		{"escaped model", `{"model":"a\"b\\c\u00e9\n"}`, RequestInfo{Model: "a\"b\\c\u00e9\n"}},
		{"escaped key", `{"mod\u0065l":"m","str\u0065am":true}`, RequestInfo{Model: "m", Stream: true}},
		{"keys are case-sensitive", `{"Model":"m","STREAM":true}`, RequestInfo{}},
		{"last duplicate wins", `{"model":"a","model":"b","stream":true,"stream":false}`, RequestInfo{Model: "b"}},
		{"nested members are not top-level",
			`{"messages":[{"role":"user","content":"{\"model\":\"x\"}","model":"inner","stream":true}],"tools":[{"function":{"parameters":{"stream_options":{"include_usage":true},"model":{"type":"string"}}}}],"model":"outer"}`,
			RequestInfo{Model: "outer"}},
		{"model not a string", `{"model":{"name":"m"}}`, RequestInfo{}},
		{"model null", `{"model":null}`, RequestInfo{}},
		{"numbers and literals", `{"temperature":-0.5e+3,"n":1,"top_p":0,"logprobs":false,"user":null,"x":[1.0,2E-3,-0]}`, RequestInfo{}},
		{"empty", `{}`, RequestInfo{}},
		{"invalid UTF-8 model", "{\"model\":\"a\xffb\"}", RequestInfo{Model: "a\uFFFDb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := InspectRequest([]byte(tt.body))
			if err != nil {
				t.Fatalf("InspectRequest(%s): %v", tt.body, err)
			}
			// None of these bodies has a cap or a count.
			tt.want.MaxTokens, tt.want.MaxCompletionTokens, tt.want.MaxOutputTokens = -1, -1, -1
			tt.want.N, tt.want.BestOf, tt.want.Prompts = 1, 1, 1
			if got != tt.want {
				t.Errorf("InspectRequest(%s) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
}

func TestInspectRequestBig(t *testing.T) {
	body := bigBase64(8<<20, `,"stream":true,"model":"gpt-4o-2024-08-06"`)
	got, err := InspectRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	want := noRequestInfo
	want.Model, want.Stream = "gpt-4o-2024-08-06", true
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if n := testing.AllocsPerRun(3, func() { _, _ = InspectRequest(body) }); n > 1 {
		t.Errorf("InspectRequest on an 8 MiB body allocates %v times, want at most 1 (the model string)", n)
	}

	// Reading the caps and counts allocates nothing.
	body = bigBase64(1<<20, `,"max_tokens":100,"max_completion_tokens":200,"max_output_tokens":300,"n":2,"best_of":3,"model":"m"`)
	got, err = InspectRequest(body)
	want = RequestInfo{Model: "m", MaxTokens: 100, MaxCompletionTokens: 200, MaxOutputTokens: 300, N: 2, BestOf: 3, Prompts: 1}
	if err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	if n := testing.AllocsPerRun(3, func() { _, _ = InspectRequest(body) }); n > 1 {
		t.Errorf("InspectRequest with caps allocates %v times, want at most 1 (the model string)", n)
	}
}

// TestInspectRequestCaps reads the output caps and the choice counts.
func TestInspectRequestCaps(t *testing.T) {
	type caps struct{ maxTokens, maxCompletion, maxOutput, n, bestOf int64 }
	none := caps{-1, -1, -1, 1, 1}
	tests := []struct {
		name, body string
		want       caps
	}{
		{"none", `{"model":"m"}`, none},
		{"all", `{"max_tokens":10,"max_completion_tokens":20,"max_output_tokens":30,"n":4,"best_of":5}`, caps{10, 20, 30, 4, 5}},
		{"zero", `{"max_tokens":0,"max_completion_tokens":0,"max_output_tokens":0,"n":0,"best_of":0}`, caps{0, 0, 0, 1, 1}},
		{"minus zero", `{"max_tokens":-0,"n":-0}`, caps{0, -1, -1, 1, 1}},
		{"negative", `{"max_tokens":-1,"max_completion_tokens":-20,"n":-2,"best_of":-3}`, none},
		{"fraction", `{"max_tokens":1.0,"max_output_tokens":2.5,"n":2.0}`, none},
		{"exponent", `{"max_tokens":1e3,"max_completion_tokens":1E+2,"n":2e0}`, none},
		{"strings", `{"max_tokens":"100","n":"2","best_of":"3"}`, none},
		{"null", `{"max_tokens":null,"max_completion_tokens":null,"max_output_tokens":null,"n":null,"best_of":null}`, none},
		{"other types", `{"max_tokens":true,"max_completion_tokens":[1],"max_output_tokens":{"a":1},"n":false}`, none},
		{"largest int64", `{"max_tokens":9223372036854775807,"n":9223372036854775807}`, caps{1<<63 - 1, -1, -1, 1<<63 - 1, 1}},
		{"too large", `{"max_tokens":9223372036854775808,"max_completion_tokens":99999999999999999999,"n":9223372036854775808}`, none},
		{"whitespace", "{ \"max_tokens\" :\n 7 ,\"n\"\t:\t2 }", caps{7, -1, -1, 2, 1}},
		{"last duplicate wins", `{"max_tokens":5,"max_tokens":7,"n":3,"n":2}`, caps{7, -1, -1, 2, 1}},
		{"last duplicate invalid", `{"max_tokens":5,"max_tokens":null,"n":3,"n":"x"}`, none},
		{"escaped keys", `{"max_tokens":9,"n":2,"best_of":3}`, caps{9, -1, -1, 2, 3}},
		{"keys are case-sensitive", `{"MAX_TOKENS":5,"N":2,"Best_Of":3}`, none},
		{"nested members are not top-level", `{"metadata":{"max_tokens":5,"n":3},"messages":[{"max_output_tokens":1}]}`, none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := InspectRequest([]byte(tt.body))
			if err != nil {
				t.Fatalf("InspectRequest(%s): %v", tt.body, err)
			}
			got := caps{info.MaxTokens, info.MaxCompletionTokens, info.MaxOutputTokens, info.N, info.BestOf}
			if got != tt.want {
				t.Errorf("InspectRequest(%s) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
}

func TestInspectRequestInvalid(t *testing.T) {
	for _, body := range []string{
		``, ` `, `null`, `[]`, `"s"`, `1`, `true`,
		`{`, `}`, `{"model"}`, `{"model":}`, `{"model":"m",}`, `{,"model":"m"}`, `{"model" "m"}`,
		`{"model":"m"`, `{"model":"m"}}`, `{"model":"m"} x`, `{"model":"m"}{}`, `{model:"m"}`, `{'model':'m'}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":True}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":+1}`,
		`{"a":NaN}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, "{\"a\":\"tab\there\"}", "{\"a\":\"nl\n\"}",
		`{"a":"unterminated}`, `{"a":"esc at end\`, `{"a":[1,2}`, `{"a":{"b":1]}`, `{"a":[1,]}`, `{"a":[,1]}`,
		`{"a":{"b"}}`, `{"a":{"b":1,}}`, `{"a":[[[[[]]]]}`, "{\"a\":1}\x00", `{"a":1 "b":2}`,
		`{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`,
	} {
		if info, err := InspectRequest([]byte(body)); err == nil {
			t.Errorf("InspectRequest(%.60q) = %+v, nil; want an error", body, info)
		}
		if json.Valid([]byte(body)) && strings.HasPrefix(strings.TrimSpace(body), "{") {
			t.Errorf("test case %.60q is valid JSON", body)
		}
	}
	// The depth limit is encoding/json's, the top-level object included.
	deep := `{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`
	if _, err := InspectRequest([]byte(deep)); err != nil || !json.Valid([]byte(deep)) {
		t.Errorf("depth %d: err %v, json.Valid %v", maxDepth, err, json.Valid([]byte(deep)))
	}
}

func TestInjectIncludeUsage(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"no stream_options", `{"model":"m","stream":true}`,
			`{"stream_options":{"include_usage":true},"model":"m","stream":true}`},
		{"leading whitespace", " \n{ \"stream\": true }",
			" \n{\"stream_options\":{\"include_usage\":true}, \"stream\": true }"},
		{"empty stream_options", `{"stream":true,"stream_options":{}}`,
			`{"stream":true,"stream_options":{"include_usage":true}}`},
		{"empty stream_options with space", `{"stream":true,"stream_options":{ }}`,
			`{"stream":true,"stream_options":{"include_usage":true }}`},
		{"other stream options kept", `{"stream_options":{"include_obfuscation":false},"stream":true}`,
			`{"stream_options":{"include_usage":true,"include_obfuscation":false},"stream":true}`},
		{"include_usage false", `{"stream":true,"stream_options":{"x":1,"include_usage":false,"y":[2]}}`,
			`{"stream":true,"stream_options":{"x":1,"include_usage":true,"y":[2]}}`},
		{"include_usage null", `{"stream":true,"stream_options":{"include_usage" : null }}`,
			`{"stream":true,"stream_options":{"include_usage" : true }}`},
		{"stream_options null", `{"stream":true,"stream_options":null,"n":1}`,
			`{"stream":true,"stream_options":{"include_usage":true},"n":1}`},
		{"repeated stream_options", `{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":false}}`,
			`{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}}`},
		{"repeated include_usage", `{"stream":true,"stream_options":{"include_usage":false,"include_usage":0}}`,
			`{"stream":true,"stream_options":{"include_usage":true,"include_usage":true}}`},
		{"escaped key", `{"str\u0065am":true,"stream_\u006fptions":{}}`,
			`{"str\u0065am":true,"stream_\u006fptions":{"include_usage":true}}`},
		{"nested stream_options ignored", `{"stream":true,"metadata":{"stream_options":{}}}`,
			`{"stream_options":{"include_usage":true},"stream":true,"metadata":{"stream_options":{}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			got, ok := InjectIncludeUsage(body)
			if !ok || string(got) != tt.want {
				t.Fatalf("InjectIncludeUsage(%s)\n = %s, %v\nwant %s, true", tt.body, got, ok, tt.want)
			}
			if string(body) != tt.body {
				t.Errorf("the input was modified: %s", body)
			}
			checkInjected(t, body, got)
		})
	}

	big := bigBase64(1<<20, `,"stream":true,"stream_options":{"include_obfuscation":false}`)
	got, ok := InjectIncludeUsage(big)
	if !ok {
		t.Fatal("big body: not injected")
	}
	checkInjected(t, big, got)

	for _, body := range []string{
		`{"model":"m"}`,     // not streaming
		`{"stream":false}`,  // not streaming
		`{"stream":"true"}`, // not streaming
		`{"stream":true,"stream_options":{"include_usage":true}}`, // already asks
		`{"stream_options":{"x":1, "include_usage":true},"stream":true}`,
		`{"stream":true,"stream_options":"yes"}`, // not an object: the upstream rejects it
		`{"stream":true,"stream_options":[]}`,
		`{"stream":true,`, `[{"stream":true}]`, `{"stream":true} x`, `{"stream":true,"a":tru}`, // invalid
	} {
		got, ok := InjectIncludeUsage([]byte(body))
		if ok || string(got) != body {
			t.Errorf("InjectIncludeUsage(%s) = %s, %v; want it unchanged, false", body, got, ok)
		}
	}
}

// TestIncludeUsagePiecesShareTheBody: the pieces of a 1 MiB body are slices
// of it, joined they are InjectIncludeUsage's result, and making them
// allocates next to nothing.
func TestIncludeUsagePiecesShareTheBody(t *testing.T) {
	big := bigBase64(1<<20, `,"stream":true,"stream_options":{"include_obfuscation":false}`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pieces, ok := IncludeUsagePieces(big)
	runtime.ReadMemStats(&after)
	if !ok {
		t.Fatal("not injected")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<10 {
		t.Errorf("splitting 1 MiB allocated %d bytes", alloc)
	}
	joined := bytes.Join(pieces, nil)
	checkInjected(t, big, joined)
	if injected, _ := InjectIncludeUsage(big); !bytes.Equal(joined, injected) {
		t.Errorf("the pieces differ from InjectIncludeUsage's result")
	}
	if pieces, ok := IncludeUsagePieces([]byte(`{"stream":false}`)); ok || pieces != nil {
		t.Errorf("a body left unchanged: %q, %v", pieces, ok)
	}
}

// checkInjected checks that injected is body asking for include_usage,
// every other member unchanged.
func checkInjected(t *testing.T, body, injected []byte) {
	t.Helper()
	info, err := InspectRequest(injected)
	if err != nil || !info.Stream || !info.IncludeUsage || !info.HasStreamOptions {
		t.Fatalf("InspectRequest(injected) = %+v, %v", info, err)
	}
	var before, after map[string]json.RawMessage
	if err := json.Unmarshal(body, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(injected, &after); err != nil {
		t.Fatalf("the injected body does not parse: %v\n%s", err, injected)
	}
	var opts map[string]json.RawMessage
	if err := json.Unmarshal(after["stream_options"], &opts); err != nil || string(opts["include_usage"]) != "true" {
		t.Fatalf("stream_options = %s (%v), want include_usage true", after["stream_options"], err)
	}
	var oldOpts map[string]json.RawMessage
	_ = json.Unmarshal(before["stream_options"], &oldOpts)
	for k, v := range oldOpts {
		if k != "include_usage" && !bytes.Equal(opts[k], v) {
			t.Errorf("stream_options.%s = %s, want %s", k, opts[k], v)
		}
	}
	if len(opts) != len(oldOpts)+1 && (len(opts) != len(oldOpts) || oldOpts["include_usage"] == nil) {
		t.Errorf("stream_options members: %d -> %d", len(oldOpts), len(opts))
	}
	delete(before, "stream_options")
	delete(after, "stream_options")
	if len(before) != len(after) {
		t.Errorf("top-level members: %d -> %d", len(before), len(after))
	}
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Errorf("member %q changed: %.80s -> %.80s", k, v, after[k])
		}
	}
}

func FuzzInspectRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`,
		`{"mod\u0065l":"m","stream":false,"x":[1,{"y":"\"z"}],"stream_options":null}`,
		`{"stream_options":{"include_usage":false,"x":-1.5e3},"model":"a\\b"}`,
		`{"model":"m","model":"n"}`, `{}`, `[1]`, `{"a":}`, "{\"a\":\"\xff\"}",
		`{"max_tokens":10,"max_completion_tokens":-0,"max_output_tokens":1e3,"n":2,"best_of":"3"}`,
		`{"max_tokens":9223372036854775807,"n":9223372036854775808,"max_\u0074okens":0.5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		info, err := InspectRequest(body)
		var top map[string]json.RawMessage
		isObject := json.Unmarshal(body, &top) == nil && top != nil
		if (err == nil) != isObject {
			t.Fatalf("InspectRequest(%q): err %v, but encoding/json says object=%v (valid=%v)", body, err, isObject, json.Valid(body))
		}
		if err != nil {
			return
		}
		want := RequestInfo{
			MaxTokens:           wantInt(top, "max_tokens", 0, -1),
			MaxCompletionTokens: wantInt(top, "max_completion_tokens", 0, -1),
			MaxOutputTokens:     wantInt(top, "max_output_tokens", 0, -1),
			N:                   wantInt(top, "n", 1, 1),
			BestOf:              wantInt(top, "best_of", 1, 1),
			Prompts:             1,
		}
		var prompts []json.RawMessage
		if json.Unmarshal(top["prompt"], &prompts) == nil && len(prompts) > 0 &&
			(prompts[0][0] == '"' || prompts[0][0] == '[') {
			want.Prompts = int64(len(prompts))
		}
		_ = json.Unmarshal(top["model"], &want.Model)
		want.Stream = string(top["stream"]) == "true"
		if so, ok := top["stream_options"]; ok && string(so) != "null" {
			want.HasStreamOptions = true
			var opts map[string]json.RawMessage
			if json.Unmarshal(so, &opts) == nil {
				want.IncludeUsage = string(opts["include_usage"]) == "true"
			}
		}
		if info != want {
			t.Fatalf("InspectRequest(%q) = %+v, encoding/json says %+v", body, info, want)
		}

		got, ok := InjectIncludeUsage(body)
		if !ok {
			if !bytes.Equal(got, body) {
				t.Fatalf("not injected, yet changed: %q -> %q", body, got)
			}
			if info.Stream && !info.IncludeUsage {
				so := top["stream_options"]
				if len(so) == 0 || so[0] == '{' || string(so) == "null" {
					t.Fatalf("InjectIncludeUsage(%q) refused a streaming request", body)
				}
			}
			return
		}
		if !info.Stream || info.IncludeUsage {
			t.Fatalf("InjectIncludeUsage(%q) injected into %+v", body, info)
		}
		checkInjected(t, body, got)
	})
}

// wantInt is what encoding/json says of top[key]: the int64 it decodes,
// when at least min, and otherwise def.
func wantInt(top map[string]json.RawMessage, key string, min, def int64) int64 {
	raw, ok := top[key]
	var v int64
	if !ok || string(raw) == "null" || json.Unmarshal(raw, &v) != nil || v < min {
		return def
	}
	return v
}

func BenchmarkInspectRequest1MB(b *testing.B) {
	body := bigBase64(1<<20, `,"stream":true`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := InspectRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInjectIncludeUsage1MB(b *testing.B) {
	body := bigBase64(1<<20, `,"stream":true`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := InjectIncludeUsage(body); !ok {
			b.Fatal("not injected")
		}
	}
}

// smallChatRequest is a typical chat request: a dozen top-level members.
const smallChatRequest = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about the sea, please."}],"temperature":0.7,"top_p":1,"n":1,"stream":true,"stream_options":{"include_usage":true},"max_tokens":256,"presence_penalty":0,"frequency_penalty":0,"user":"user-1234","seed":42}`

// BenchmarkInspectRequestSmall inspects a typical small chat request: the
// cost per member rather than per byte.
func BenchmarkInspectRequestSmall(b *testing.B) {
	body := []byte(smallChatRequest)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := InspectRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestInspectRequestPrompts: legacy completions' prompt arrays count one
// prompt per string or token array; a token array is one prompt.
func TestInspectRequestPrompts(t *testing.T) {
	for body, want := range map[string]int64{
		`{"prompt":"a"}`:                 1,
		`{"prompt":["a","b","c"]}`:       3,
		`{"prompt":[ "a" , "b" ]}`:       2,
		`{"prompt":[1,2,3]}`:             1,
		`{"prompt":[[1,2],[3],[4,5,6]]}`: 3,
		`{"prompt":[]}`:                  1,
		`{"prompt":null}`:                1,
		`{}`:                             1,
		`{"prompt":["a"],"prompt":"b"}`:  1,
	} {
		info, err := InspectRequest([]byte(body))
		if err != nil || info.Prompts != want {
			t.Errorf("%s: Prompts = %d, %v; want %d", body, info.Prompts, err, want)
		}
	}
}
