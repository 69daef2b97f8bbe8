package meter

// request.go: what the proxy reads from, and splices into, a request body.

import "bytes"

// RequestInfo is what InspectRequest learns from a request body.
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
}

// InspectRequest reads the model and streaming options of a complete JSON
// request body. It walks only the top-level members, validating and skipping
// every other value without allocating (only the model string is), so its
// cost is one pass over the body. Keys match exactly (case-sensitive, escapes
// decoded); a repeated key counts by its last occurrence, as with
// encoding/json and Python's json module. It returns an error if body is not
// a single valid JSON object (the same verdict as encoding/json); the caller
// should then proxy the body untouched.
func InspectRequest(body []byte) (RequestInfo, error) {
	var info RequestInfo
	var model []byte
	it := newObjIter(body, 0)
	for it.next() {
		switch {
		case it.key("model"):
			model = it.value() // decoded once, after the last one
		case it.key("stream"):
			info.Stream = string(it.value()) == "true"
		case it.key("stream_options"):
			info.HasStreamOptions, info.IncludeUsage = streamOptions(it.value())
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

// splice replaces body[start:end] with repl.
type splice struct {
	start, end int
	repl       string
}

// Text spliced into request bodies.
const (
	includeUsageMember  = `"include_usage":true`
	streamOptionsValue  = `{` + includeUsageMember + `}`
	streamOptionsMember = `"stream_options":` + streamOptionsValue
)

// IncludeUsagePieces returns body changed to ask for
// stream_options.include_usage = true, as pieces to send one after the
// other: slices of body and, between them, the few bytes spliced in. ok is
// false, and pieces nil, when it changes nothing: the body is invalid (see
// [InspectRequest]), does not stream ("stream" is not true), already asks
// for usage (as InspectRequest reports IncludeUsage), or has a
// stream_options that is neither an object nor null (the upstream will
// reject it anyway). ok therefore tells the caller whether it must strip
// the usage from the response ([New] with strip true).
//
// body is neither copied nor modified, so a proxy that sends the pieces
// (with an io.MultiReader, say) holds the body once, not twice. Only the
// bytes that must change are touched; nothing is re-encoded:
//   - no "stream_options": `"stream_options":{"include_usage":true}` is
//     inserted right after the opening brace (with a comma unless the
//     object is empty);
//   - "stream_options": null becomes {"include_usage":true};
//   - an object without include_usage gets `"include_usage":true` inserted
//     right after its opening brace, keeping its other members;
//   - an include_usage that is not true has just its value replaced by true.
//
// Every occurrence of a repeated stream_options or include_usage key is
// fixed, so the result asks for usage whichever occurrence a parser keeps.
func IncludeUsagePieces(body []byte) (pieces [][]byte, ok bool) {
	var (
		stream   bool
		arr      [2]splice
		edits    = arr[:0]
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
		open := skipSpace(body, 0) + 1
		repl := streamOptionsMember + ","
		if it.n == 0 {
			repl = streamOptionsMember
		}
		edits = append(edits, splice{start: open, end: open, repl: repl})
	}
	if len(edits) == 0 {
		return nil, false
	}
	pieces = make([][]byte, 0, 2*len(edits)+1)
	prev := 0
	for _, e := range edits { // in body order: members are visited in order
		pieces = append(pieces, body[prev:e.start], []byte(e.repl))
		prev = e.end
	}
	return append(pieces, body[prev:]), true
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

// fixStreamOptions appends the splices that make the valid stream_options
// value body[start:end] ask for usage. asks reports whether it already did;
// fixable is false when the value is neither an object nor null.
func fixStreamOptions(edits []splice, body []byte, start, end int) (_ []splice, asks, fixable bool) {
	raw := body[start:end]
	if string(raw) == "null" {
		return append(edits, splice{start: start, end: end, repl: streamOptionsValue}), false, true
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
			edits = append(edits, splice{start: start + it.m.valStart, end: start + it.m.valEnd, repl: "true"})
		}
	}
	if found {
		return edits, asks, true
	}
	repl := includeUsageMember + ","
	if it.n == 0 {
		repl = includeUsageMember
	}
	return append(edits, splice{start: start + 1, end: start + 1, repl: repl}), false, true
}
