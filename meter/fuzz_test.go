package meter

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// randomCuts cuts b at random places chosen by seed.
func randomCuts(b []byte, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed>>7))
	var cs [][]byte
	for len(b) > 0 {
		k := min(len(b), 1+r.IntN(16))
		cs, b = append(cs, b[:k]), b[k:]
	}
	return cs
}

func bytewise(b []byte) [][]byte {
	cs := make([][]byte, len(b))
	for i := range b {
		cs[i] = b[i : i+1]
	}
	return cs
}

// checkChunkingInvariance feeds data whole, byte by byte and in random
// pieces: what the client gets and the usage must not depend on the
// cutting, and without strip the client gets data itself.
func checkChunkingInvariance(t *testing.T, kind Kind, strip bool, contentType string, data []byte, seed uint64) []byte {
	out, u := feed(t, kind, strip, contentType, [][]byte{data})
	if !strip && !bytes.Equal(out, data) {
		t.Fatalf("without strip the output differs:\n%q\n%q", out, data)
	}
	for _, cs := range [][][]byte{bytewise(data), randomCuts(data, seed)} {
		out2, u2 := feed(t, kind, strip, contentType, cs)
		if !bytes.Equal(out2, out) || u2 != u {
			t.Fatalf("cutting changes the result:\n%q, %+v\n%q, %+v", out, u, out2, u2)
		}
	}
	return out
}

func FuzzMeterSSE(f *testing.F) {
	for _, s := range []string{
		sse(chatChunkRole, chatChunkHello, chatChunkStop, chatChunkUsage, sseDone),
		"data: {\"usage\":null,\"id\":1}\r\n\r\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":1}}\r\n\r\n",
		"data:{\"a\":1,\"usage\":null}\r\rdata: [DONE]\r\r",
		responseStream,
		": x\nid: 1\nevent: response.output_text.delta\ndata: {\"type\":\"x.delta\"}\n\n",
		"data: {\"choices\":[],\n\ndata: \"usage\":{}}\n\n",
		"data: {\"\\u0075sage\":null}\n\n",
	} {
		f.Add([]byte(s), uint64(len(s)), true)
		f.Add([]byte(s), uint64(1), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, strip bool) {
		out := checkChunkingInvariance(t, KindChat, strip, "text/event-stream", data, seed)
		if strip && !bytes.Contains(data, []byte("usage")) && !bytes.Contains(data, []byte(`\`)) && !bytes.Equal(out, data) {
			t.Fatalf("stripping changed a stream without usage:\n%q\n%q", data, out)
		}
		checkChunkingInvariance(t, KindResponse, false, "text/event-stream", data, seed)
	})
}

func FuzzMeterJSON(f *testing.F) {
	for _, s := range []string{
		chatJSON, completionJSON, embeddingJSON, responseJSON, errorJSON,
		`{"model":"m","usage":{"prompt_tokens":1},"usage":2}`,
		`{"type":"response.completed","response":{"model":"m","usage":{"input_tokens":1}},"choices":[{"delta":{"content":"x"}}]}`,
		`{"\u0075sage":{"total_tokens":1},"m\u006fdel":"\u00e9"}`,
		`{"a":[{"usage":1}],"b":"}\"{","usage":[1,{"x":"]"}]}`,
		`{"response":{"model":"a","usage":{}},"response":null}`,
	} {
		f.Add([]byte(s), uint64(len(s)))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		checkChunkingInvariance(t, KindChat, false, "application/json", data, seed)

		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) != nil || top == nil {
			return
		}
		// The scanner captures exactly the raw values encoding/json sees.
		m := New(KindChat, false)
		m.Start(200, "application/json")
		for _, c := range randomCuts(data, seed) {
			m.Write(c)
		}
		checkCapture(t, &m.json, fModel, top, "model")
		checkCapture(t, &m.json, fUsage, top, "usage")

		if bytes.ContainsAny(data, "\r\n") {
			return // not one data line
		}
		m = New(KindResponse, false)
		m.Start(200, "text/event-stream")
		for _, c := range randomCuts(append([]byte("data: "), data...), seed) {
			m.Write(c)
		}
		sc := &m.sse.json
		checkCapture(t, sc, fModel, top, "model")
		checkCapture(t, sc, fUsage, top, "usage")
		checkCapture(t, sc, fChoices, top, "choices")
		checkCapture(t, sc, fType, top, "type")
		var resp map[string]json.RawMessage
		if json.Unmarshal(top["response"], &resp) != nil || bytes.HasPrefix(top["response"], []byte("null")) {
			resp = nil
		}
		checkCapture(t, sc, fRespModel, resp, "model")
		checkCapture(t, sc, fRespUsage, resp, "usage")
	})
}

func checkCapture(t *testing.T, sc *streamScanner, f field, obj map[string]json.RawMessage, key string) {
	t.Helper()
	want, has := obj[key]
	got, ok := sc.get(f)
	if has && len(want) > fieldLimit[f] {
		return
	}
	if ok != has || !bytes.Equal(got, want) {
		t.Fatalf("field %q: captured %q (%v), encoding/json says %q (%v)", key, got, ok, want, has)
	}
}
