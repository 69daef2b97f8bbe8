package meter

// jsonstream.go: a JSON scanner fed chunk by chunk. It follows the structure
// of one top-level object across arbitrary chunk boundaries, skipping what it
// does not need and copying out only the raw bytes of a few member values
// (fields), each up to a bound. Its memory is those bounded copies, whatever
// the size of the document. It does not validate: malformed input stops the
// scan, and only values that were complete are reported.

import "encoding/json"

// field is a member value the stream scanner can capture.
type field uint8

const (
	fNone      field = iota
	fModel           // top-level "model"
	fUsage           // top-level "usage"
	fChoices         // top-level "choices" (events only)
	fType            // top-level "type" (events only)
	fRespModel       // "response"."model" (events only)
	fRespUsage       // "response"."usage" (events only)
	numFields
)

// fieldLimit bounds each capture. A larger value is dropped, not truncated:
// no real model name or usage object comes near these sizes.
var fieldLimit = [numFields]int{
	fModel:     1 << 10,
	fUsage:     64 << 10,
	fChoices:   64 << 10,
	fType:      256,
	fRespModel: 1 << 10,
	fRespUsage: 64 << 10,
}

// capture holds the raw bytes of one field's value.
type capture struct {
	buf  []byte
	done bool // the value ended and fit in the limit
	over bool // the value outgrew the limit: buf was dropped
}

type scanState uint8

const (
	sTop        scanState = iota // before the top-level value
	sObjOpen                     // after '{': a key or '}'
	sKey                         // inside a key
	sColon                       // after a key: ':'
	sValue                       // after ':': the start of a value
	sInValue                     // inside a value being skipped or captured
	sAfterValue                  // after a member's value: ',' or '}'
	sNextKey                     // after ',': a key
	sEnd                         // done (or gave up): ignore the rest
)

// maxKeyLen bounds a key kept for matching; longer keys are not ours.
const maxKeyLen = 64

// streamScanner captures fields of one JSON object fed to it in pieces.
type streamScanner struct {
	events bool // an SSE event's data: capture the event fields too

	st       scanState
	level    int  // objects entered along a captured path: 1 top level, 2 "response"
	depth    int  // brackets open inside the current value
	inStr    bool // inside a string of the current value
	esc      bool // the previous byte was a backslash inside a string or key
	cur      field
	descend  bool // the current value, if an object, is entered (top-level "response")
	complete bool // the top-level object closed

	key     [maxKeyLen]byte
	keyLen  int
	keyLong bool
	keyEsc  bool

	caps [numFields]capture
}

// reset prepares the scanner for a new document, keeping its buffers.
func (s *streamScanner) reset() {
	s.st, s.level, s.depth = sTop, 0, 0
	s.inStr, s.esc, s.descend, s.complete = false, false, false, false
	s.cur = fNone
	for f := range s.caps {
		s.clear(field(f))
	}
}

// clear forgets a field's capture, keeping its buffer.
func (s *streamScanner) clear(f field) {
	c := &s.caps[f]
	c.buf, c.done, c.over = c.buf[:0], false, false
}

// get returns a field's raw value if it was captured whole.
func (s *streamScanner) get(f field) ([]byte, bool) {
	c := &s.caps[f]
	return c.buf, c.done
}

// write feeds the next piece of the document.
func (s *streamScanner) write(p []byte) {
	for i := 0; i < len(p); {
		switch s.st {
		case sEnd:
			return
		case sInValue:
			i = s.value(p, i)
		case sKey:
			i = s.keyBytes(p, i)
		default:
			c := p[i]
			if isSpace(c) {
				i++
				continue
			}
			if s.st == sValue {
				if s.descend && c == '{' {
					s.level++
					s.st = sObjOpen
					i++
					continue
				}
				s.beginValue()
				continue // sInValue reads c
			}
			i++
			s.token(c)
		}
	}
}

// token handles a structural byte outside values and keys.
func (s *streamScanner) token(c byte) {
	switch {
	case s.st == sTop && c == '{':
		s.level, s.st = 1, sObjOpen
	case (s.st == sObjOpen || s.st == sNextKey) && c == '"':
		s.keyLen, s.keyLong, s.keyEsc, s.esc = 0, false, false, false
		s.st = sKey
	case s.st == sColon && c == ':':
		s.cur, s.descend = s.lookup()
		if s.descend { // a repeated "response": the last one counts
			s.clear(fRespModel)
			s.clear(fRespUsage)
		}
		s.st = sValue
	case s.st == sAfterValue && c == ',':
		s.st = sNextKey
	case (s.st == sObjOpen || s.st == sAfterValue) && c == '}':
		s.level--
		if s.level == 0 {
			s.st, s.complete = sEnd, true
		} else {
			s.st = sAfterValue // the entered object was a member value of its parent
		}
	default:
		s.st = sEnd // not an object, or malformed: nothing more to learn
	}
}

// keyBytes reads key bytes from p[i:] and returns where it stopped.
func (s *streamScanner) keyBytes(p []byte, i int) int {
	j := i
	for ; j < len(p); j++ {
		c := p[j]
		if s.esc {
			s.esc = false
		} else if c == '\\' {
			s.esc, s.keyEsc = true, true
		} else if c == '"' {
			break
		}
	}
	if !s.keyLong {
		if s.keyLen+j-i > maxKeyLen {
			s.keyLong = true
		} else {
			s.keyLen += copy(s.key[s.keyLen:], p[i:j])
		}
	}
	if j == len(p) {
		return j
	}
	s.st = sColon
	return j + 1
}

// lookup tells what to do with the value of the key just read.
func (s *streamScanner) lookup() (f field, descend bool) {
	if s.keyLong || s.level > 2 {
		return fNone, false
	}
	if s.keyEsc {
		return s.lookupEscaped()
	}
	return s.match(s.key[:s.keyLen])
}

// lookupEscaped is lookup for a key spelled with escapes, which providers
// do not send: it decodes the key, allocating.
func (s *streamScanner) lookupEscaped() (f field, descend bool) {
	raw := make([]byte, 0, s.keyLen+2)
	raw = append(append(append(raw, '"'), s.key[:s.keyLen]...), '"')
	var name string
	if json.Unmarshal(raw, &name) != nil {
		return fNone, false
	}
	return s.match([]byte(name))
}

// match maps a key at the current level to a field, or to descending into
// the top-level "response" object.
func (s *streamScanner) match(name []byte) (f field, descend bool) {
	if s.level == 2 { // inside the top-level "response"
		switch string(name) { // compiled without a conversion
		case "model":
			return fRespModel, false
		case "usage":
			return fRespUsage, false
		}
		return fNone, false
	}
	switch string(name) {
	case "model":
		return fModel, false
	case "usage":
		return fUsage, false
	}
	if s.events {
		switch string(name) {
		case "choices":
			return fChoices, false
		case "type":
			return fType, false
		case "response":
			return fNone, true
		}
	}
	return fNone, false
}

// beginValue starts skipping (or capturing) a member's value.
func (s *streamScanner) beginValue() {
	s.st, s.depth, s.inStr, s.esc = sInValue, 0, false, false
	s.clear(s.cur) // a repeated key: the last one counts
}

// value reads the current value's bytes from p[i:] and returns where it
// stopped: at the end of p, or where the value ended.
func (s *streamScanner) value(p []byte, i int) int {
	start := i
	for i < len(p) {
		if s.inStr {
			if s.esc {
				s.esc = false
				i++
				continue
			}
			j := indexStringStop(p[i:], false)
			if j < 0 {
				i = len(p)
				break
			}
			i += j
			if p[i] == '\\' {
				s.esc = true
				i++
				continue
			}
			i++ // the closing quote
			s.inStr = false
			if s.depth == 0 {
				return s.endValue(p[start:i], i)
			}
			continue
		}
		switch p[i] {
		case '"':
			s.inStr = true
		case '{', '[':
			s.depth++
		case '}', ']':
			if s.depth == 0 { // a scalar, ended by its container
				return s.endValue(p[start:i], i)
			}
			if s.depth--; s.depth == 0 {
				return s.endValue(p[start:i+1], i+1)
			}
		case ',', ' ', '\t', '\r', '\n':
			if s.depth == 0 { // a scalar's end
				return s.endValue(p[start:i], i)
			}
		}
		i++
	}
	s.keep(p[start:i])
	return i
}

// endValue finishes the current value with its last bytes b and returns i.
func (s *streamScanner) endValue(b []byte, i int) int {
	s.keep(b)
	if s.cur != fNone {
		c := &s.caps[s.cur]
		c.done = !c.over
		s.cur = fNone
	}
	s.st = sAfterValue
	return i
}

// keep adds b to the current capture, if any, within its limit.
func (s *streamScanner) keep(b []byte) {
	if s.cur == fNone || len(b) == 0 {
		return
	}
	c := &s.caps[s.cur]
	if c.over {
		return
	}
	if len(c.buf)+len(b) > fieldLimit[s.cur] {
		c.over, c.buf = true, c.buf[:0]
		return
	}
	c.buf = append(c.buf, b...)
}
