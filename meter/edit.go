package meter

// edit.go: byte-level edits of a request body, composed and applied
// without copying or re-encoding the body.

import (
	"slices"
	"strconv"
)

// Edit replaces body[Start:End] by Text; Start == End inserts Text before
// body[Start]. Edits are made by [IncludeUsageEdits] and [CapEdits] and
// applied by [Pieces], so that several changes to one body (asking a
// stream for its usage and capping its output, say) are sent in one pass,
// as slices of the body.
type Edit struct {
	Start, End int
	Text       []byte
}

// Pieces applies edits to body and returns the result as pieces to send
// one after the other: the slices of body between the edits and the
// edits' Texts, in order, empty ones left out (no edits: body is the only
// piece). body is neither copied nor modified, and the pieces alias it
// and the Texts.
//
// The edits need not be sorted; they must not overlap, that is, no byte
// may be replaced by two edits, and no insertion may fall strictly inside
// a replaced range. Pieces orders them by Start and, at the same Start,
// puts insertions before a replacement, and several insertions in the
// order they are given: so Pieces(body, append(usageEdits, capEdits...)...)
// is deterministic even when both insert a first member. Pieces panics if
// an edit is out of range or two edits overlap: that is a bug of the
// caller.
func Pieces(body []byte, edits ...Edit) [][]byte {
	if len(edits) == 0 {
		return [][]byte{body}
	}
	if !slices.IsSortedFunc(edits, compareEdits) {
		edits = slices.Clone(edits) // the caller's order is left alone
		slices.SortStableFunc(edits, compareEdits)
	}
	pieces := make([][]byte, 0, 2*len(edits)+1)
	add := func(p []byte) {
		if len(p) > 0 {
			pieces = append(pieces, p)
		}
	}
	prev := 0
	for _, e := range edits {
		if e.Start < prev || e.End < e.Start || e.End > len(body) {
			panic("meter: Pieces: edit [" + strconv.Itoa(e.Start) + ":" + strconv.Itoa(e.End) +
				"] is out of range or overlaps another one, in a body of " + strconv.Itoa(len(body)) + " bytes")
		}
		add(body[prev:e.Start])
		add(e.Text)
		prev = e.End
	}
	add(body[prev:])
	if len(pieces) == 0 {
		return [][]byte{body[:0]}
	}
	return pieces
}

// compareEdits orders edits by Start, insertions first.
func compareEdits(a, b Edit) int {
	if a.Start != b.Start {
		return a.Start - b.Start
	}
	ai, bi := a.Start == a.End, b.Start == b.End
	switch {
	case ai && !bi:
		return -1
	case !ai && bi:
		return 1
	}
	return 0
}

// CapEdits returns the edits that set an output cap of body to n: every
// top-level member whose name (escapes decoded) is one of names, each
// occurrence of a repeated one included, gets n as its value, whatever
// that value was. When there is none, `"<names[0]>":n` is inserted as the
// object's first member, right after its opening brace, followed by a
// comma unless the object is empty. Nothing is re-encoded: only those
// values change, and every other byte stays where it was.
//
// The names are the caps to set, e.g. "max_completion_tokens" and
// "max_tokens" for chat completions (the one inserted first), "max_tokens"
// for legacy completions, "max_output_tokens" for the Responses API. ok is
// false, and edits nil, when body is not a single valid JSON object (the
// verdict of [InspectRequest]) or names is empty.
//
// The edits touch only the named members' values and the insertion point,
// so unless names holds "stream_options", they never overlap those of
// [IncludeUsageEdits] for the same body: apply both with [Pieces].
func CapEdits(body []byte, n int64, names ...string) (edits []Edit, ok bool) {
	if len(names) == 0 {
		return nil, false
	}
	var value []byte // n, shared by the edits
	it := newObjIter(body, 0)
	for it.next() {
		if !isOneOf(it.keyName(), names) {
			continue
		}
		if value == nil {
			value = strconv.AppendInt(nil, n, 10)
		}
		edits = append(edits, Edit{Start: it.m.valStart, End: it.m.valEnd, Text: value})
	}
	if it.err != nil || skipSpace(body, it.end) != len(body) {
		return nil, false
	}
	if len(edits) > 0 {
		return edits, true
	}
	text := appendQuoted(nil, names[0])
	text = append(text, ':')
	text = strconv.AppendInt(text, n, 10)
	if it.n > 0 {
		text = append(text, ',')
	}
	open := skipSpace(body, 0) + 1
	return []Edit{{Start: open, End: open, Text: text}}, true
}

// isOneOf reports whether name is one of names.
func isOneOf(name []byte, names []string) bool {
	for _, n := range names {
		if string(name) == n {
			return true
		}
	}
	return false
}

// appendQuoted appends s as a JSON string literal: quotes, backslashes and
// control characters escaped, everything else as is.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// StringEdits returns edits that set every top-level member named name
// (duplicates included) to the JSON string s, the rest of the body
// untouched. ok is false when body is not a JSON object or has no such
// member.
func StringEdits(body []byte, name, s string) (edits []Edit, ok bool) {
	var value []byte // s quoted, shared by the edits
	it := newObjIter(body, 0)
	for it.next() {
		if string(it.keyName()) != name {
			continue
		}
		if value == nil {
			value = appendQuoted(nil, s)
		}
		edits = append(edits, Edit{Start: it.m.valStart, End: it.m.valEnd, Text: value})
	}
	if it.err != nil || skipSpace(body, it.end) != len(body) || len(edits) == 0 {
		return nil, false
	}
	return edits, true
}
