package meter

// usage.go: the usage a response reports, and how its JSON shapes decode.

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// Usage is what a Meter learned from a response.
type Usage struct {
	// Found is true when the response carried a usage object with at least
	// one token count. Without it the token counts are zero.
	Found bool
	// Model is the model the response names (the last one seen in a
	// stream), or "". It may differ from the requested one, e.g.
	// "gpt-4o-mini-2024-07-18" for "gpt-4o-mini".
	Model string
	// PromptTokens is prompt_tokens, or the Responses API's input_tokens.
	PromptTokens int64
	// CompletionTokens is completion_tokens, or output_tokens.
	CompletionTokens int64
	// TotalTokens is total_tokens, or PromptTokens+CompletionTokens when
	// the usage omits it.
	TotalTokens int64
	// CachedTokens is prompt_tokens_details.cached_tokens, or
	// input_tokens_details.cached_tokens.
	CachedTokens int64
	// ReasoningTokens is completion_tokens_details.reasoning_tokens, or
	// output_tokens_details.reasoning_tokens.
	ReasoningTokens int64
	// ContentChunks counts the stream events that carried output: chat and
	// completion chunks with a choice whose delta has non-empty content,
	// refusal or reasoning text, or tool or function calls, or whose text is
	// non-empty; and events of a type ending in ".delta" (Responses API).
	// Each is typically one token, so it is a rough completion estimate
	// when no usage arrives (the client left before the usage chunk). It
	// counts whether or not usage was found, and is 0 for JSON bodies.
	ContentChunks int64
}

// tokenCount is a token count in a usage object. It accepts integers and,
// from lax providers, numbers with a fraction or exponent; anything else
// (null, strings) leaves it unset. Negative counts read as 0.
type tokenCount struct {
	n   int64
	set bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *tokenCount) UnmarshalJSON(b []byte) error {
	s := string(b)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || math.Abs(f) > 1<<62 {
			return nil
		}
		n = int64(f)
	}
	c.n, c.set = max(n, 0), true
	return nil
}

// usageDetails covers both detail objects of both usage shapes.
type usageDetails struct {
	CachedTokens    tokenCount `json:"cached_tokens"`
	ReasoningTokens tokenCount `json:"reasoning_tokens"`
}

// wireUsage is the union of the Chat Completions and Responses API usage
// objects; a provider sends one shape or the other.
type wireUsage struct {
	PromptTokens            tokenCount    `json:"prompt_tokens"`
	CompletionTokens        tokenCount    `json:"completion_tokens"`
	InputTokens             tokenCount    `json:"input_tokens"`
	OutputTokens            tokenCount    `json:"output_tokens"`
	TotalTokens             tokenCount    `json:"total_tokens"`
	PromptTokensDetails     *usageDetails `json:"prompt_tokens_details"`
	CompletionTokensDetails *usageDetails `json:"completion_tokens_details"`
	InputTokensDetails      *usageDetails `json:"input_tokens_details"`
	OutputTokensDetails     *usageDetails `json:"output_tokens_details"`
}

// setUsage decodes a raw usage object into u's token counts and reports
// whether it held one. u is left alone when it did not.
func (u *Usage) setUsage(raw []byte) bool {
	raw = trimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false // null, or not a usage object
	}
	var w wireUsage
	if json.Unmarshal(raw, &w) != nil {
		return false
	}
	prompt, completion := w.PromptTokens, w.CompletionTokens
	if !prompt.set {
		prompt = w.InputTokens
	}
	if !completion.set {
		completion = w.OutputTokens
	}
	if !prompt.set && !completion.set && !w.TotalTokens.set {
		return false
	}
	u.Found = true
	u.PromptTokens, u.CompletionTokens = prompt.n, completion.n
	u.TotalTokens = w.TotalTokens.n
	if !w.TotalTokens.set {
		u.TotalTokens = prompt.n + completion.n
	}
	u.CachedTokens = detail(w.PromptTokensDetails, w.InputTokensDetails).CachedTokens.n
	u.ReasoningTokens = detail(w.CompletionTokensDetails, w.OutputTokensDetails).ReasoningTokens.n
	return true
}

// detail returns the first non-nil details, or empty ones.
func detail(a, b *usageDetails) usageDetails {
	if a != nil {
		return *a
	}
	if b != nil {
		return *b
	}
	return usageDetails{}
}

// modelName tracks the model a response names, decoding it only when it
// changes, so a stream of chunks naming the same model costs no allocation.
type modelName struct {
	raw  []byte
	name string
}

// set records a raw "model" value; a non-string or empty one is ignored.
func (m *modelName) set(raw []byte) {
	if bytes.Equal(raw, m.raw) {
		return
	}
	if s, ok := decodeString(raw); ok && s != "" {
		m.raw, m.name = append(m.raw[:0], raw...), s
	}
}
