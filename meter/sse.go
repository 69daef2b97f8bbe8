package meter

// sse.go: a server-sent events tokenizer fed chunk by chunk. It follows the
// event stream format of the HTML standard (lines end in "\r\n", "\n" or
// "\r"; "field: value" lines; ":" comments; a blank line ends an event) and
// stores no line: the bytes of data fields go straight to a stream scanner,
// and an event's name is kept only up to a short bound.

import "bytes"

type sseState uint8

const (
	lineStart  sseState = iota // at the start of a line
	fieldName                  // reading a field name
	valueStart                 // after "name:": one optional space, then the value
	fieldValue                 // reading a field's value
	skipLine                   // a comment, or a field we ignore
)

// maxEventName bounds the kept "event:" value; Responses API names are short.
const maxEventName = 64

// sseParser splits an event stream into events and feeds each event's
// data to its scanner.
type sseParser struct {
	st sseState
	cr bool // the last byte was a '\r' ending a line: a '\n' right after belongs to it

	name    [5]byte // a field name, enough for "event" and "data"
	nameLen int
	isData  bool // the current field is "data"
	isEvent bool // the current field is "event"

	dataLines int // data fields of the current event
	event     [maxEventName]byte
	eventLen  int
	eventLong bool

	json streamScanner // the current event's data
}

// resetEvent forgets the current event, after it was handled.
func (s *sseParser) resetEvent() {
	s.dataLines, s.eventLen, s.eventLong = 0, 0, false
	s.json.reset()
}

// eventName returns the current event's "event:" field, if short.
func (s *sseParser) eventName() []byte {
	if s.eventLong {
		return nil
	}
	return s.event[:s.eventLen]
}

// scan reads p up to and including the first blank line in it, which ends
// an event. It returns how many bytes it consumed and whether an event
// ended there; the caller handles that event and calls resetEvent before
// scanning on.
func (s *sseParser) scan(p []byte) (n int, ended bool) {
	i := 0
	if s.cr {
		s.cr = false
		if len(p) > 0 && p[0] == '\n' {
			i = 1
		}
	}
	for i < len(p) {
		switch s.st {
		case lineStart:
			switch c := p[i]; c {
			case '\r', '\n':
				return s.endLine(p, i), true
			case ':':
				s.st = skipLine
				i++
			default:
				s.nameLen, s.isData, s.isEvent = 0, false, false
				s.st = fieldName
			}
		case fieldName:
			j := i
			for j < len(p) && p[j] != ':' && p[j] != '\r' && p[j] != '\n' {
				j++
			}
			if s.nameLen+j-i <= len(s.name) {
				s.nameLen += copy(s.name[s.nameLen:], p[i:j])
			} else {
				s.nameLen = len(s.name) + 1 // too long for a name we know
			}
			if j == len(p) {
				i = j
				continue
			}
			s.beginField()
			if p[j] == ':' {
				s.st = valueStart
				i = j + 1
			} else {
				i = s.endLine(p, j) // a field with an empty value
			}
		case valueStart:
			if p[i] == ' ' {
				i++
			}
			s.st = fieldValue
		case fieldValue:
			j := indexEOL(p[i:])
			if j < 0 {
				s.value(p[i:])
				i = len(p)
				continue
			}
			s.value(p[i : i+j])
			i = s.endLine(p, i+j)
		case skipLine:
			j := indexEOL(p[i:])
			if j < 0 {
				i = len(p)
				continue
			}
			i = s.endLine(p, i+j)
		}
	}
	return i, false
}

// beginField starts the field whose name was just read.
func (s *sseParser) beginField() {
	if s.nameLen > len(s.name) {
		return // longer than any name we handle
	}
	switch string(s.name[:s.nameLen]) {
	case "data":
		s.isData = true
		if s.dataLines > 0 {
			s.json.write(newline) // data lines join with "\n": JSON whitespace
		}
		s.dataLines++
	case "event":
		s.isEvent = true
		s.eventLen, s.eventLong = 0, false
	}
}

var newline = []byte{'\n'}

// value handles a piece of the current field's value.
func (s *sseParser) value(b []byte) {
	switch {
	case s.isData:
		s.json.write(b)
	case s.isEvent && !s.eventLong:
		if s.eventLen+len(b) > len(s.event) {
			s.eventLong = true
		} else {
			s.eventLen += copy(s.event[s.eventLen:], b)
		}
	}
}

// endLine consumes the line ending at p[j] and returns the index after it.
func (s *sseParser) endLine(p []byte, j int) int {
	s.st = lineStart
	if p[j] == '\r' {
		if j+1 == len(p) {
			s.cr = true // the '\n' of a "\r\n" may come in the next chunk
		} else if p[j+1] == '\n' {
			return j + 2
		}
	}
	return j + 1
}

// indexEOL returns the index of the first '\r' or '\n' in b, or -1.
func indexEOL(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	if n < 0 {
		n = len(b)
	}
	if r := bytes.IndexByte(b[:n], '\r'); r >= 0 {
		return r
	}
	if n == len(b) {
		return -1
	}
	return n
}
