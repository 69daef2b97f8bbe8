package meter

// strip.go: hiding an injected include_usage from a client. With it, OpenAI
// adds "usage":null to every chunk and sends one more chunk, with empty
// choices and the usage, before [DONE]. Stripping drops that chunk's event
// and removes the null member from the others, leaving every other byte as
// it was, so the client sees what it would have seen without the injection.

import (
	"bytes"
	"sync"
)

// maxHeld bounds the bytes of one event held back while stripping. A
// larger event passes on as it comes, unedited (chat chunks are tiny).
const maxHeld = 1 << 20

// keepBuf is the largest held or output buffer kept for reuse: larger
// ones, left by an outsized event, go back to the garbage collector.
const keepBuf = 64 << 10

// outBuffers lend stripping meters the buffer Write returns, from Write to
// Sent: a stream waiting for its next chunk then holds none. Kept by each
// meter, a buffer would stay at the size of the largest batch of events
// read at once (up to keepBuf) for the rest of the stream, a thousand open
// streams holding up to 64 MiB.
var outBuffers = sync.Pool{New: func() any { return new([]byte) }}

// writeStrip is Write for a stripping meter: it emits whole events only,
// each edited by appendStripped.
func (m *Meter) writeStrip(p []byte) []byte {
	if m.outBox == nil {
		m.outBox = outBuffers.Get().(*[]byte)
		m.out = *m.outBox
	}
	m.out = m.out[:0]
	if cap(m.out) > keepBuf {
		m.out = nil
	}
	for len(p) > 0 {
		start := 0
		if m.sse.cr && p[0] == '\n' && len(m.held) == 0 && !m.passEvent {
			// The '\n' of a "\r\n" that ended the previous event, which
			// was emitted already: it goes (or went) with that event.
			if !m.dropLF {
				m.out = append(m.out, '\n')
			}
			start = 1 // scan consumes it
		}
		m.dropLF = false
		n, ended := m.sse.scan(p)
		part := p[start:n]
		switch {
		case m.passEvent:
			m.out = append(m.out, part...)
		case ended:
			ev := part
			if len(m.held) > 0 {
				m.held = appendHeld(m.held, part)
				ev = m.held
			}
			m.out = m.appendStripped(m.out, ev)
			m.held = m.held[:0]
			if cap(m.held) > keepBuf {
				m.held = nil
			}
		case len(m.held)+len(part) > maxHeld:
			// Too big to hold: send what is held, and the rest as it comes.
			if len(m.out) == 0 { // reuse the held buffer rather than copy it
				m.out, m.held = m.held, m.out[:0]
			} else {
				m.out = append(m.out, m.held...)
				m.held = m.held[:0]
			}
			m.out = append(m.out, part...)
			m.passEvent = true
		default:
			m.held = appendHeld(m.held, part)
		}
		if ended {
			m.onEvent()
			m.sse.resetEvent()
			m.passEvent = false
		}
		p = p[n:]
	}
	return m.out
}

// appendHeld appends b to held, doubling its capacity as needed, up to
// maxHeld when that suffices: append's gentler growth for large slices
// would allocate several times maxHeld on the way to it.
func appendHeld(held, b []byte) []byte {
	need := len(held) + len(b)
	if need <= cap(held) {
		return append(held, b...)
	}
	c := max(2*cap(held), need, 512)
	if need <= maxHeld {
		c = min(c, maxHeld)
	}
	return append(append(make([]byte, 0, c), held...), b...)
}

// appendStripped appends the complete event ev to dst as the client must
// see it: dropped if it is the usage chunk, without its "usage":null
// member if it has one, else unchanged. The parser still holds what the
// event's data said.
func (m *Meter) appendStripped(dst, ev []byte) []byte {
	sc := &m.sse.json
	usage, ok := sc.get(fUsage)
	if !ok || m.sse.dataLines != 1 {
		return append(dst, ev...)
	}
	if string(usage) != "null" {
		if choices, ok := sc.get(fChoices); ok && isEmptyArray(choices) {
			m.dropLF = m.sse.cr // its "\r\n" may end in the next chunk
			return dst
		}
		return append(dst, ev...)
	}
	a, b, ok := nullUsageSpan(ev)
	if !ok {
		return append(dst, ev...)
	}
	return append(append(dst, ev[:a]...), ev[b:]...)
}

// isEmptyArray reports whether raw is [] (whitespace allowed inside).
func isEmptyArray(raw []byte) bool {
	raw = trimSpace(raw)
	return len(raw) >= 2 && raw[0] == '[' && raw[len(raw)-1] == ']' && len(trimSpace(raw[1:len(raw)-1])) == 0
}

var dataField = []byte("data:")

// nullUsageSpan finds, in an event with a single data line, the bytes to
// cut to remove the data's top-level "usage":null member so that the rest
// reads as if it had never been there: from the end of the previous
// member's value (taking the comma before it), else from the key up to the
// next member's key (taking the comma after it), else just the member.
// ok is false if the data is not a valid object with exactly one "usage",
// whose value is null.
func nullUsageSpan(ev []byte) (start, end int, ok bool) {
	for i := 0; i < len(ev); {
		eol := indexEOL(ev[i:])
		lineEnd := len(ev)
		if eol >= 0 {
			lineEnd = i + eol
		}
		if line := ev[i:lineEnd]; bytes.HasPrefix(line, dataField) {
			v := i + len(dataField)
			if v < lineEnd && ev[v] == ' ' {
				v++
			}
			a, b, ok := usageMemberSpan(ev[v:lineEnd])
			return v + a, v + b, ok
		}
		i = lineEnd + 1
		if lineEnd+1 < len(ev) && ev[lineEnd] == '\r' && ev[lineEnd+1] == '\n' {
			i++
		}
	}
	return 0, 0, false
}

// usageMemberSpan is nullUsageSpan for the JSON text js.
func usageMemberSpan(js []byte) (start, end int, ok bool) {
	var (
		it       = newObjIter(js, 0)
		u        member
		found    int
		prevEnd  = -1 // the value end of the member before the last one seen
		before   = -1 // the value end of the member before "usage"
		after    = -1 // the key start of the member after "usage"
		lastWasU bool
	)
	for it.next() {
		if lastWasU {
			after = it.m.keyStart
		}
		lastWasU = it.key("usage")
		if lastWasU {
			found++
			u, before = it.m, prevEnd
		}
		prevEnd = it.m.valEnd
	}
	if it.err != nil || found != 1 || string(js[u.valStart:u.valEnd]) != "null" {
		return 0, 0, false
	}
	switch {
	case before >= 0:
		return before, u.valEnd, true
	case after >= 0:
		return u.keyStart, after, true
	}
	return u.keyStart, u.valEnd, true
}
