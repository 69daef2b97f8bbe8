package meter

// jsonscan.go: a validating scanner for complete JSON documents held in
// memory. It walks an object's members and skips values without decoding
// or allocating, so a request with megabytes of base64 costs one pass.

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// maxDepth is the deepest nesting accepted, the same limit as encoding/json.
const maxDepth = 10000

// syntaxError describes invalid JSON.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return "meter: invalid JSON at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

func errAt(off int, msg string) error { return &syntaxError{off: off, msg: msg} }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// SWAR constants: one bit or byte value per byte lane of a uint64.
const (
	lanesLow  = 0x0101010101010101
	lanesHigh = 0x8080808080808080
)

// hasByteBelow reports (non-zero) whether any byte lane of x is below n (n <= 128).
func hasByteBelow(x, n uint64) uint64 { return (x - lanesLow*n) &^ x & lanesHigh }

// hasByte reports (non-zero) whether any byte lane of x equals c.
func hasByte(x uint64, c byte) uint64 { return hasByteBelow(x^(lanesLow*uint64(c)), 1) }

// indexStringStop returns the index of the first byte of b that ends a run
// of plain string content: '"' or '\\', and, when ctl is set, a control
// character (invalid in a JSON string). It returns -1 if there is none. It
// tests eight bytes at a time, so long strings (base64 images) are cheap.
func indexStringStop(b []byte, ctl bool) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		m := hasByte(x, '"') | hasByte(x, '\\')
		if ctl {
			m |= hasByteBelow(x, 0x20)
		}
		if m != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || (ctl && c < 0x20) {
			return i
		}
	}
	return -1
}

// scanString validates the string starting at b[i] == '"' and returns the
// index just past its closing quote, and whether it holds escapes.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for {
		j := indexStringStop(b[i:], true)
		if j < 0 {
			return 0, false, errAt(len(b), "unterminated string")
		}
		i += j
		switch b[i] {
		case '"':
			return i + 1, escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, false, errAt(len(b), "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, false, errAt(len(b), "unterminated string")
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return 0, false, errAt(i, `invalid \u escape`)
					}
				}
				i += 6
			default:
				return 0, false, errAt(i, "invalid escape")
			}
		default:
			return 0, false, errAt(i, "control character in string")
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber validates the number starting at b[i] and returns the index
// just past it.
func scanNumber(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, errAt(start, "invalid value")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, errAt(i, "invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, errAt(i, "invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

// scanLiteral checks that b[i:] starts with lit and returns the index past it.
func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, errAt(i, "invalid value")
	}
	return i + len(lit), nil
}

// skipValue validates the value starting at b[i] (leading whitespace
// allowed), inside outer enclosing containers, and returns the index just
// past it. Nesting is tracked on a stack of open brackets, not by
// recursion, so depth costs one byte a level.
func skipValue(b []byte, i, outer int) (int, error) {
	var arr [64]byte
	stack := arr[:0] // '{' or '[' for each open container
	var err error
	for {
		// A value starts at i.
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, errAt(i, "unexpected end of input")
		}
		switch c := b[i]; c {
		case '"':
			i, _, err = scanString(b, i)
		case '{', '[':
			if outer+len(stack)+1 > maxDepth { // counted as encoding/json does
				return 0, errAt(i, "exceeded max depth")
			}
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			if i = skipSpace(b, i+1); i < len(b) && b[i] == closer {
				i++ // empty container
				break
			}
			stack = append(stack, c)
			if c == '{' {
				i, err = scanKey(b, i)
				if err != nil {
					return 0, err
				}
			}
			continue // the first element's value
		case 't':
			i, err = scanLiteral(b, i, "true")
		case 'f':
			i, err = scanLiteral(b, i, "false")
		case 'n':
			i, err = scanLiteral(b, i, "null")
		default:
			i, err = scanNumber(b, i)
		}
		if err != nil {
			return 0, err
		}
		// A value ended at i: close containers until one has a next element.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, errAt(i, "unexpected end of input")
			}
			top := stack[len(stack)-1]
			if b[i] == ',' {
				i++
				if top == '{' {
					if i, err = scanKey(b, i); err != nil {
						return 0, err
					}
				}
				break
			}
			if top == '{' && b[i] == '}' || top == '[' && b[i] == ']' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			return 0, errAt(i, "expected ',' or end of container")
		}
	}
}

// scanKey validates `"key" :` starting at b[i] (leading whitespace allowed)
// and returns the index just past the colon.
func scanKey(b []byte, i int) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '"' {
		return 0, errAt(i, "expected object key")
	}
	i, _, err := scanString(b, i)
	if err != nil {
		return 0, err
	}
	if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
		return 0, errAt(i, "expected ':' after object key")
	}
	return i + 1, nil
}

// member is one object member found by objIter. Offsets index the scanned buffer.
type member struct {
	keyStart, keyEnd int // the key, quotes included
	keyEscaped       bool
	valStart, valEnd int // the value
}

// objIter walks the members of an object held in memory, validating every
// value it skips. Use: it := newObjIter(b, i); for it.next() { it.m ... }; it.err.
type objIter struct {
	b   []byte
	i   int // next byte to read
	n   int // members returned so far
	m   member
	end int // index just past the closing '}', once next has returned false without error
	err error
}

// newObjIter starts walking the object whose '{' is at b[i] or after
// whitespace; it reports an error through err if there is none.
func newObjIter(b []byte, i int) objIter {
	it := objIter{b: b}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		it.err = errAt(i, "expected an object")
		return it
	}
	it.i = i + 1
	return it
}

// next advances to the next member and reports whether there is one.
func (it *objIter) next() bool {
	if it.err != nil || it.end > 0 {
		return false
	}
	b := it.b
	i := skipSpace(b, it.i)
	if i < len(b) && b[i] == '}' {
		it.end = i + 1
		return false
	}
	if it.n > 0 {
		if i >= len(b) || b[i] != ',' {
			it.err = errAt(i, "expected ',' or '}'")
			return false
		}
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		it.err = errAt(i, "expected object key")
		return false
	}
	var m member
	m.keyStart = i
	m.keyEnd, m.keyEscaped, it.err = scanString(b, i)
	if it.err != nil {
		return false
	}
	if i = skipSpace(b, m.keyEnd); i >= len(b) || b[i] != ':' {
		it.err = errAt(i, "expected ':' after object key")
		return false
	}
	m.valStart = skipSpace(b, i+1)
	if m.valEnd, it.err = skipValue(b, m.valStart, 1); it.err != nil {
		return false
	}
	it.m, it.i = m, m.valEnd
	it.n++
	return true
}

// key reports whether the current member's key is name.
func (it *objIter) key(name string) bool {
	raw := it.b[it.m.keyStart+1 : it.m.keyEnd-1]
	if !it.m.keyEscaped {
		return string(raw) == name // compiled without a conversion
	}
	s, ok := decodeString(it.b[it.m.keyStart:it.m.keyEnd])
	return ok && s == name
}

// keyName returns the current member's key without its quotes: a slice
// of the scanned buffer, or a decoded copy when the key holds escapes.
// Compare it as string(it.keyName()) == name, or switch on that, which
// the compiler does without a conversion.
func (it *objIter) keyName() []byte {
	if !it.m.keyEscaped {
		return it.b[it.m.keyStart+1 : it.m.keyEnd-1]
	}
	s, _ := decodeString(it.b[it.m.keyStart:it.m.keyEnd])
	return []byte(s)
}

// value returns the current member's raw value.
func (it *objIter) value() []byte { return it.b[it.m.valStart:it.m.valEnd] }

// decodeString decodes a raw JSON string literal; ok is false if raw is
// not a string. Like encoding/json, it replaces invalid UTF-8 with U+FFFD,
// so the result is always valid UTF-8 (model names end up in metric
// labels). Plain valid strings take the fast path.
func decodeString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if indexStringStop(inner, true) < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// trimSpace returns b without leading and trailing JSON whitespace.
func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}
