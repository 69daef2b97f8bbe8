package meter

// events.go: what each server-sent event tells about usage.

import "bytes"

// scanEvents feeds p to the event parser, handling each event that ends.
func (m *Meter) scanEvents(p []byte) {
	for len(p) > 0 {
		n, ended := m.sse.scan(p)
		if ended {
			m.onEvent()
			m.sse.resetEvent()
		}
		p = p[n:]
	}
}

// onEvent learns from the event the parser just finished. The rules hold
// for every kind, so a stream is metered whatever endpoint produced it:
//   - "model" or "response"."model" names the model;
//   - a non-null "usage" (chat and completion usage chunks) or
//     "response"."usage" (response.completed, response.incomplete,
//     response.failed) gives the usage; the last one wins;
//   - content counts as in [Usage.ContentChunks].
func (m *Meter) onEvent() {
	if m.sse.dataLines == 0 {
		return // no data: not an event a client sees
	}
	sc := &m.sse.json
	if raw, ok := sc.get(fModel); ok {
		m.model.set(raw)
	}
	if raw, ok := sc.get(fRespModel); ok {
		m.model.set(raw)
	}
	if raw, ok := sc.get(fUsage); ok {
		m.usage.setUsage(raw)
	}
	if raw, ok := sc.get(fRespUsage); ok {
		m.usage.setUsage(raw)
	}
	if m.carriesContent() {
		m.usage.ContentChunks++
	}
}

// carriesContent reports whether the current event carries output.
func (m *Meter) carriesContent() bool {
	sc := &m.sse.json
	if c := &sc.caps[fChoices]; c.over {
		return true // only output makes a chunk's choices that large
	} else if c.done {
		return choicesHaveContent(c.buf)
	}
	if typ, ok := sc.get(fType); ok {
		if bytes.IndexByte(typ, '\\') < 0 && len(typ) >= 2 && typ[0] == '"' {
			return isDelta(typ[1 : len(typ)-1])
		}
		s, _ := decodeString(typ) // rare: escapes
		return isDelta([]byte(s))
	}
	return isDelta(m.sse.eventName())
}

// isDelta reports whether an event type names a delta, such as
// "response.output_text.delta".
func isDelta(typ []byte) bool {
	const suffix = ".delta"
	return len(typ) > len(suffix) && string(typ[len(typ)-len(suffix):]) == suffix
}

// choicesHaveContent reports whether a raw "choices" array has a choice
// with output (see [Usage.ContentChunks]).
func choicesHaveContent(raw []byte) bool {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return false
	}
	i++
	for n := 0; ; n++ {
		if i = skipSpace(raw, i); i >= len(raw) || raw[i] == ']' {
			return false
		}
		if n > 0 {
			if raw[i] != ',' {
				return false
			}
			i++
		}
		start := skipSpace(raw, i)
		end, err := skipValue(raw, start, 1)
		if err != nil {
			return false
		}
		if choiceHasContent(raw[start:end]) {
			return true
		}
		i = end
	}
}

// choiceHasContent reports whether one raw choice carries output: a
// completion's "text", or a chat delta's text, refusal, reasoning or calls.
func choiceHasContent(raw []byte) bool {
	it := newObjIter(raw, 0)
	for it.next() {
		switch {
		case it.key("text"):
			if nonEmptyString(it.value()) {
				return true
			}
		case it.key("delta"):
			d := newObjIter(it.value(), 0)
			for d.next() {
				v := d.value()
				switch {
				case d.key("content"), d.key("refusal"), d.key("reasoning_content"), d.key("reasoning"):
					if nonEmptyString(v) {
						return true
					}
				case d.key("tool_calls"):
					if v[0] == '[' && skipSpace(v, 1) < len(v)-1 {
						return true
					}
				case d.key("function_call"):
					if v[0] == '{' {
						return true
					}
				}
			}
		}
	}
	return false
}

// nonEmptyString reports whether a valid raw JSON value is a non-empty string.
func nonEmptyString(v []byte) bool { return len(v) > 2 && v[0] == '"' }
