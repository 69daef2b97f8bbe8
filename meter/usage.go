package meter

// usage.go: the usage a response reports, and how its JSON shapes decode.

import (
	"bytes"
	"errors"
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

// MaxTokens bounds every token count read from a usage object: a larger
// one (a provider's bug, or 9223372036854775807) reads as MaxTokens, about
// 1.1 trillion tokens, far beyond any real request. Sums of such counts
// stay within int64 for millions of requests, and a Usage's computed total
// (prompt plus completion) always does.
const MaxTokens = 1 << 40

// tokenCount is a token count in a usage object. It accepts integers and,
// from lax providers, numbers with a fraction or exponent; anything else
// (null, strings) leaves it unset. Counts are clamped to [0, MaxTokens].
type tokenCount struct {
	n   int64
	set bool
}

// parseCount reads a raw JSON value as a token count.
func parseCount(b []byte) tokenCount {
	s := string(b)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Out of int64's range, a fraction or an exponent. ParseFloat
		// gives ±Inf with ErrRange for numbers beyond float64's range.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil && !errors.Is(ferr, strconv.ErrRange) || math.IsNaN(f) {
			return tokenCount{}
		}
		n = int64(min(max(f, 0), MaxTokens))
	}
	return tokenCount{n: min(max(n, 0), MaxTokens), set: true}
}

// detailCount is a count inside a details object (e.g. cached_tokens in
// prompt_tokens_details); isObject is false for null or a non-object.
func detailCount(raw []byte, name string) (c tokenCount, isObject bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return c, false
	}
	it := newObjIter(raw, 0)
	for it.next() {
		if it.key(name) {
			c = parseCount(it.value())
		}
	}
	return c, it.err == nil
}

// setUsage decodes a raw usage object into u's token counts and reports
// whether it held one. u is left alone when it did not. Both shapes (Chat
// Completions' prompt/completion and the Responses API's input/output) are
// read in one pass with the package's scanner, without allocating: the
// first details object of each pair that is an object wins.
func (u *Usage) setUsage(raw []byte) bool {
	raw = trimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false // null, or not a usage object
	}
	var prompt, completion, input, output, total tokenCount
	var promptCached, inputCached, completionReasoning, outputReasoning tokenCount
	var promptDetails, completionDetails bool
	it := newObjIter(raw, 0)
	for it.next() {
		v := it.value()
		switch {
		case it.key("prompt_tokens"):
			prompt = parseCount(v)
		case it.key("completion_tokens"):
			completion = parseCount(v)
		case it.key("input_tokens"):
			input = parseCount(v)
		case it.key("output_tokens"):
			output = parseCount(v)
		case it.key("total_tokens"):
			total = parseCount(v)
		case it.key("prompt_tokens_details"):
			promptCached, promptDetails = detailCount(v, "cached_tokens")
		case it.key("input_tokens_details"):
			inputCached, _ = detailCount(v, "cached_tokens")
		case it.key("completion_tokens_details"):
			completionReasoning, completionDetails = detailCount(v, "reasoning_tokens")
		case it.key("output_tokens_details"):
			outputReasoning, _ = detailCount(v, "reasoning_tokens")
		}
	}
	if it.err != nil {
		return false
	}
	if !prompt.set {
		prompt = input
	}
	if !completion.set {
		completion = output
	}
	if !prompt.set && !completion.set && !total.set {
		return false
	}
	u.Found = true
	u.PromptTokens, u.CompletionTokens = prompt.n, completion.n
	u.TotalTokens = total.n
	if !total.set {
		u.TotalTokens = prompt.n + completion.n
	}
	u.CachedTokens = inputCached.n
	if promptDetails {
		u.CachedTokens = promptCached.n
	}
	u.ReasoningTokens = outputReasoning.n
	if completionDetails {
		u.ReasoningTokens = completionReasoning.n
	}
	return true
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
