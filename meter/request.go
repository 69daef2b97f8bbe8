package meter

// request.go: what the proxy reads from, and splices into, a request body.

import "bytes"

// RequestInfo is what InspectRequest learns from a request body.
//
// The output caps and counts are read from integer literals only, with
// the value encoding/json would decode into an int64: 5 and -0 are
// integers; 5.0, 5e0, "5", null and 9223372036854775808 are not.
type RequestInfo struct {
	// Model is the top-level "model" string, or "" if absent or not a string.
	Model string
	// Stream is true when the top-level "stream" is the literal true.
	Stream bool
	// HasStreamOptions is true when a top-level "stream_options" is present
	// and not null.
	HasStreamOptions bool
	// IncludeUsage is true when stream_options is an object whose
	// "include_usage" is the literal true: the client asked for usage.
	IncludeUsage bool
	// MaxTokens is the top-level "max_tokens" (the output cap of chat
	// completions, deprecated there, and of legacy completions), or -1 when
	// it is absent, null, not a non-negative integer, or too large for an
	// int64.
	MaxTokens int64
	// MaxCompletionTokens is the top-level "max_completion_tokens" (the
	// output cap of chat completions, reasoning included), or -1 as for
	// MaxTokens.
	MaxCompletionTokens int64
	// MaxOutputTokens is the top-level "max_output_tokens" (the output cap
	// of the Responses API), or -1 as for MaxTokens.
	MaxOutputTokens int64
	// N is the top-level "n", the number of choices asked for, or 1 when it
	// is absent, null, not a positive integer, or too large for an int64
	// (the provider rejects those, or defaults to 1).
	N int64
	// BestOf is the top-level "best_of" (legacy completions: candidates
	// generated, and billed, server-side), or 1 as for N.
	BestOf int64
	// Prompts is the number of prompts a legacy completion asks to
	// complete, each with its own choices: the elements of a top-level
	// "prompt" array of strings or of token arrays; 1 for anything else (a
	// string, an array of token numbers, no prompt).
	Prompts int64
}

// noRequestInfo is RequestInfo's value for a body with none of its members.
var noRequestInfo = RequestInfo{MaxTokens: -1, MaxCompletionTokens: -1, MaxOutputTokens: -1, N: 1, BestOf: 1, Prompts: 1}

// InspectRequest reads the model, streaming options, output caps and
// choice counts of a complete JSON request body. It walks only the
// top-level members, validating and skipping every other value without
// allocating (only the model string is, and a key holding escapes), so its
// cost is one pass over the body. Keys match exactly (case-sensitive,
// escapes decoded); a repeated key counts by its last occurrence, as with
// encoding/json and Python's json module. It returns an error if body is not
// a single valid JSON object (the same verdict as encoding/json); the caller
// should then proxy the body untouched.
func InspectRequest(body []byte) (RequestInfo, error) {
	info := noRequestInfo
	var model []byte
	it := newObjIter(body, 0)
	for it.next() {
		switch string(it.keyName()) { // compiled without a conversion
		case "model":
			model = it.value() // decoded once, after the last one
		case "stream":
			info.Stream = string(it.value()) == "true"
		case "stream_options":
			info.HasStreamOptions, info.IncludeUsage = streamOptions(it.value())
		case "max_tokens":
			info.MaxTokens = nonNegativeInt(it.value())
		case "max_completion_tokens":
			info.MaxCompletionTokens = nonNegativeInt(it.value())
		case "max_output_tokens":
			info.MaxOutputTokens = nonNegativeInt(it.value())
		case "n":
			info.N = positiveCount(it.value())
		case "best_of":
			info.BestOf = positiveCount(it.value())
		case "prompt":
			info.Prompts = promptCount(it.value())
		}
	}
	if it.err != nil {
		return RequestInfo{}, it.err
	}
	if i := skipSpace(body, it.end); i != len(body) {
		return RequestInfo{}, errAt(i, "data after the top-level value")
	}
	info.Model, _ = decodeString(model)
	return info, nil
}

// promptCount counts the prompts of a valid raw "prompt" value (see
// RequestInfo.Prompts).
func promptCount(raw []byte) int64 {
	if len(raw) == 0 || raw[0] != '[' {
		return 1
	}
	i := skipSpace(raw, 1)
	if i >= len(raw) || (raw[i] != '"' && raw[i] != '[') {
		return 1 // empty, or token numbers: one prompt
	}
	var n int64
	for {
		end, err := skipValue(raw, i, 1)
		if err != nil {
			return 1
		}
		n++
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ',' {
			return n
		}
		i = skipSpace(raw, i+1)
	}
}

// nonNegativeInt returns the value of a valid raw JSON value that is an
// integer literal (no fraction, no exponent) from 0 to math.MaxInt64, and
// -1 for anything else.
func nonNegativeInt(raw []byte) int64 {
	neg := len(raw) > 1 && raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return -1
	}
	var v int64
	for _, c := range raw {
		if !isDigit(c) {
			return -1
		}
		d := int64(c - '0')
		if v > (1<<63-1-d)/10 {
			return -1 // too large for an int64
		}
		v = 10*v + d
	}
	if neg && v != 0 {
		return -1 // -0 is 0, as encoding/json decodes it
	}
	return v
}

// positiveCount returns the value of a valid raw JSON value that is a
// positive integer literal (see nonNegativeInt), and 1 for anything else.
func positiveCount(raw []byte) int64 {
	if v := nonNegativeInt(raw); v >= 1 {
		return v
	}
	return 1
}

// streamOptions reads a valid raw stream_options value.
func streamOptions(raw []byte) (present, includeUsage bool) {
	if string(raw) == "null" {
		return false, false
	}
	it := newObjIter(raw, 0)
	for it.next() {
		if it.key("include_usage") {
			includeUsage = string(it.value()) == "true"
		}
	}
	return true, includeUsage && it.err == nil
}

// Text spliced into request bodies. Edits share these; they are never
// modified.
var (
	includeUsageMember      = []byte(`"include_usage":true`)
	includeUsageMemberComma = []byte(`"include_usage":true,`)
	streamOptionsValue      = []byte(`{"include_usage":true}`)
	streamOptionsComma      = []byte(`"stream_options":{"include_usage":true},`)
	trueValue               = []byte(`true`)
)

// IncludeUsageEdits returns the edits that make body ask for
// stream_options.include_usage = true, in body order. ok is false, and
// edits nil, when none are needed or possible: the body is invalid (see
// [InspectRequest]), does not stream ("stream" is not true), already asks
// for usage (as InspectRequest reports IncludeUsage), or has a
// stream_options that is neither an object nor null (the upstream will
// reject it anyway). ok therefore tells the caller whether it must strip
// the usage from the response ([New] with strip true).
//
// Only the bytes that must change are touched; nothing is re-encoded:
//   - no "stream_options": `"stream_options":{"include_usage":true}` is
//     inserted right after the opening brace, followed by a comma (a
//     streaming request is never an empty object);
//   - "stream_options": null becomes {"include_usage":true};
//   - an object without include_usage gets `"include_usage":true` inserted
//     right after its opening brace, keeping its other members;
//   - an include_usage that is not true has just its value replaced by true.
//
// Every occurrence of a repeated stream_options or include_usage key is
// fixed, so the result asks for usage whichever occurrence a parser keeps.
// The edits touch nothing outside the stream_options values but that
// insertion, so they never overlap those of [CapEdits] for other members.
// The edits' Text is shared: do not modify it.
func IncludeUsageEdits(body []byte) (edits []Edit, ok bool) {
	var (
		stream   bool
		asks     bool // the last stream_options asks for usage
		sawStrOp bool
	)
	it := newObjIter(body, 0)
	for it.next() {
		switch {
		case it.key("stream"):
			stream = string(it.value()) == "true"
		case it.key("stream_options"):
			sawStrOp = true
			var fixable bool
			if edits, asks, fixable = fixStreamOptions(edits, body, it.m.valStart, it.m.valEnd); !fixable {
				return nil, false
			}
		}
	}
	if it.err != nil || skipSpace(body, it.end) != len(body) || !stream || asks {
		return nil, false
	}
	if !sawStrOp {
		// The only edit; "stream" is a member, so the comma is due.
		open := skipSpace(body, 0) + 1
		return []Edit{{Start: open, End: open, Text: streamOptionsComma}}, true
	}
	if len(edits) == 0 {
		return nil, false
	}
	return edits, true
}

// IncludeUsagePieces returns body changed to ask for
// stream_options.include_usage = true (the edits of [IncludeUsageEdits]),
// as pieces to send one after the other: slices of body and, between
// them, the few bytes spliced in (see [Pieces]). ok is false, and pieces
// nil, when it changes nothing; see IncludeUsageEdits for when, and for
// what changes.
//
// body is neither copied nor modified, so a proxy that sends the pieces
// (with an io.MultiReader, say) holds the body once, not twice.
func IncludeUsagePieces(body []byte) (pieces [][]byte, ok bool) {
	edits, ok := IncludeUsageEdits(body)
	if !ok {
		return nil, false
	}
	return Pieces(body, edits...), true
}

// InjectIncludeUsage returns [IncludeUsagePieces] joined into a new slice,
// and ok true; or body itself and ok false when it changes nothing.
func InjectIncludeUsage(body []byte) (newBody []byte, ok bool) {
	pieces, ok := IncludeUsagePieces(body)
	if !ok {
		return body, false
	}
	return bytes.Join(pieces, nil), true
}

// fixStreamOptions appends the edits that make the valid stream_options
// value body[start:end] ask for usage. asks reports whether it already did;
// fixable is false when the value is neither an object nor null.
func fixStreamOptions(edits []Edit, body []byte, start, end int) (_ []Edit, asks, fixable bool) {
	raw := body[start:end]
	if string(raw) == "null" {
		return append(edits, Edit{Start: start, End: end, Text: streamOptionsValue}), false, true
	}
	if raw[0] != '{' {
		return edits, false, false
	}
	it := newObjIter(raw, 0)
	found := false
	for it.next() {
		if !it.key("include_usage") {
			continue
		}
		found = true
		asks = string(it.value()) == "true"
		if !asks {
			edits = append(edits, Edit{Start: start + it.m.valStart, End: start + it.m.valEnd, Text: trueValue})
		}
	}
	if found {
		return edits, asks, true
	}
	text := includeUsageMemberComma
	if it.n == 0 {
		text = includeUsageMember
	}
	return append(edits, Edit{Start: start + 1, End: start + 1, Text: text}), false, true
}
