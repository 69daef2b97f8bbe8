package meter

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
)

// refCount and refUsage decode usage with encoding/json: the reference the
// scanner-based setUsage must agree with wherever encoding/json accepts the
// object.
type refCount struct {
	n   int64
	set bool
}

func (c *refCount) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil && !errors.Is(ferr, strconv.ErrRange) || math.IsNaN(f) {
			return nil
		}
		n = int64(min(max(f, 0), MaxTokens))
	}
	c.n, c.set = min(max(n, 0), MaxTokens), true
	return nil
}

// reference decodes raw as setUsage documents it, with keys matched
// exactly (encoding/json's struct decoding would ignore case); ok is false
// where encoding/json refuses the object (setUsage may then differ).
func reference(raw []byte) (u Usage, found, ok bool) {
	if t := trimSpace(raw); len(t) == 0 || t[0] != '{' {
		return u, false, true
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return u, false, false
	}
	count := func(key string) (c refCount) {
		if v, ok := m[key]; ok {
			_ = c.UnmarshalJSON(v)
		}
		return c
	}
	detail := func(key, field string) (n int64, isObject bool) {
		var d map[string]json.RawMessage
		if v, ok := m[key]; !ok || json.Unmarshal(v, &d) != nil || d == nil {
			return 0, false
		}
		var c refCount
		if v, ok := d[field]; ok {
			_ = c.UnmarshalJSON(v)
		}
		return c.n, true
	}
	prompt, completion, total := count("prompt_tokens"), count("completion_tokens"), count("total_tokens")
	if !prompt.set {
		prompt = count("input_tokens")
	}
	if !completion.set {
		completion = count("output_tokens")
	}
	if !prompt.set && !completion.set && !total.set {
		return u, false, true
	}
	u.Found = true
	u.PromptTokens, u.CompletionTokens, u.TotalTokens = prompt.n, completion.n, total.n
	if !total.set {
		u.TotalTokens = prompt.n + completion.n
	}
	if n, ok := detail("prompt_tokens_details", "cached_tokens"); ok {
		u.CachedTokens = n
	} else {
		u.CachedTokens, _ = detail("input_tokens_details", "cached_tokens")
	}
	if n, ok := detail("completion_tokens_details", "reasoning_tokens"); ok {
		u.ReasoningTokens = n
	} else {
		u.ReasoningTokens, _ = detail("output_tokens_details", "reasoning_tokens")
	}
	return u, true, true
}

func FuzzSetUsage(f *testing.F) {
	for _, seed := range []string{
		`{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}`,
		`{"input_tokens":5,"output_tokens":7,"total_tokens":12,"input_tokens_details":{"cached_tokens":3},"output_tokens_details":{"reasoning_tokens":4}}`,
		`{"prompt_tokens":1.5e2,"completion_tokens":null,"total_tokens":"3"}`,
		`{"prompt_tokens":1,"prompt_tokens":2,"prompt_tokens_details":null,"input_tokens_details":{"cached_tokens":9}}`,
		`{"prompt_tokens":-4}`, `{}`, `null`, `[1]`, `{"total_tokens":1}`,
		`{"prompt_tokens":9223372036854775807,"completion_tokens":1e400,"total_tokens":-1e400}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got Usage
		found := got.setUsage(raw)
		want, wantFound, ok := reference(raw)
		if !ok {
			return // encoding/json refuses it; setUsage need only not panic
		}
		if found != wantFound || got != want {
			t.Fatalf("setUsage(%s) = %v %+v, want %v %+v", raw, found, got, wantFound, want)
		}
	})
}
