package aiproxy

// inspect.go: what the proxy reads from a request body before sending it:
// the model, and whether a stream must be asked for its usage.

import (
	"io"
	"math"
	"mime"
	"net/http"
	"time"

	"github.com/aiproxy/aiproxy/meter"
)

// maxInspectedBody bounds how much of a request body is read to learn its
// model and whether it streams. Larger bodies are proxied uninspected: their
// usage still counts, with the model the response names.
const maxInspectedBody = 16 << 20

// meteredRequest is what the proxy learns about one request for counting
// and for holding it to its user's limits.
type meteredRequest struct {
	kind  meter.Kind
	model string
	alias string // the alias the client asked for; counted under it
	strip bool   // include_usage was injected: hide its effects from the client
	start time.Time
	path  string // the client's canonical path, for the request log
	host  string // the host of the latest try, for the request log

	info      meter.RequestInfo // the body's output caps and choices
	bodyLen   int64             // the body's length, when inspected
	inspected bool              // the body was read whole and is JSON
	tooLarge  bool              // the body was not read: over maxInspectedBody
	busy      bool              // the body was not read: no room in inspect_memory
}

// legacyCompletionCap is the output cap of /v1/completions when the
// request sets none: OpenAI's default max_tokens there.
const legacyCompletionCap = 16

// choices is how many answers the request asks for: n (best_of for a
// legacy completion, when larger).
func (mr meteredRequest) choices() int64 {
	n := max(mr.info.N, 1)
	if mr.kind == meter.KindCompletion {
		// Each prompt of a list gets its choices.
		n = max(n, mr.info.BestOf)
		if p := max(mr.info.Prompts, 1); n <= math.MaxInt32 && p <= math.MaxInt32 {
			n *= p
		}
	}
	return n
}

// outputCap is the request's own cap on output tokens, all choices
// together, or -1 when it sets none.
func (mr meteredRequest) outputCap() int64 {
	var each int64 = -1
	switch mr.kind {
	case meter.KindChat:
		each = mr.info.MaxCompletionTokens
		if each < 0 {
			each = mr.info.MaxTokens
		}
	case meter.KindCompletion:
		each = mr.info.MaxTokens
		if each < 0 {
			each = legacyCompletionCap
		}
	case meter.KindResponse:
		each = mr.info.MaxOutputTokens
	}
	if each < 0 {
		return -1
	}
	if n := mr.choices(); each > math.MaxInt64/n {
		return math.MaxInt64
	}
	return each * mr.choices()
}

// inspectRequest reads a JSON body of the API kinds that report usage, learns
// its model, and asks a stream for usage when the client did not. It returns
// the request to proxy, whose body is restored (and maybe spliced), and the
// body it holds in memory for that, if any: the caller releases it when the
// request is done, in case the upstream never read it.
//
// A body is held once, within budget: the splice is sent as slices of it,
// and it is let go as soon as it is sent. A body the budget has no room for
// is proxied as it comes, uninspected, like one over maxInspectedBody.
//
// anyKind reads the body of any JSON POST, for its model, not only of the
// kinds that report usage: the user may only call some models.
func inspectRequest(r *http.Request, budget *inspectBudget, anyKind bool) (*http.Request, meteredRequest, *heldBody) {
	mr := meteredRequest{kind: meter.KindOther, start: time.Now()}
	// Only a POST creates a completion; a GET of the same path lists
	// stored ones, whose answers carry no usage of their own.
	if r.Method == http.MethodPost {
		mr.kind = meter.KindOf(r.URL.Path)
	}
	if (mr.kind == meter.KindOther && !(anyKind && r.Method == http.MethodPost)) ||
		r.Body == nil || r.Body == http.NoBody || !isJSON(r.Header.Get("Content-Type")) {
		return r, mr, nil
	}
	if r.ContentLength > maxInspectedBody {
		mr.tooLarge = true
		return r, mr, nil
	}
	body, reserved, whole := readBody(r.Body, r.ContentLength, budget)
	if !whole {
		mr.tooLarge = len(body) > maxInspectedBody
		mr.busy = !mr.tooLarge
		if reserved == 0 {
			return r, mr, nil // nothing read: no room in the budget
		}
		// Give the upstream everything, read or not, and count blind.
		held := newHeldBody([][]byte{body}, r.Body, budget, reserved)
		return withBody(r, held, -1), mr, held
	}
	pieces := [][]byte{body}
	var usageEdits []meter.Edit
	if info, err := meter.InspectRequest(body); err == nil {
		// Cut now: a huge model string is let go at once.
		mr.model = cleanModel(info.Model)
		mr.info, mr.bodyLen, mr.inspected = info, int64(len(body)), true
		mr.info.Model = ""
		if info.Stream && !info.IncludeUsage && (mr.kind == meter.KindChat || mr.kind == meter.KindCompletion) {
			if edits, ok := meter.IncludeUsageEdits(body); ok {
				usageEdits, mr.strip = edits, true
				pieces = meter.Pieces(body, edits...)
			}
		}
	}
	held := newHeldBody(pieces, nil, budget, reserved)
	held.body, held.edits = body, usageEdits
	return withBody(r, held, held.size()), mr, held
}

// outputCapMembers names, per kind, the members that cap the output,
// the one to add first.
var outputCapMembers = map[meter.Kind][]string{
	meter.KindChat:       {"max_completion_tokens", "max_tokens"},
	meter.KindCompletion: {"max_tokens"},
	meter.KindResponse:   {"max_output_tokens"},
}

// capOutput returns r with its body's output cap lowered to out tokens
// (all choices together), what the key's limits left for the answer, when
// the request asked for more or set no cap, so that the answer cannot pass
// what was reserved. A model whose longest answer is unknown gets a cap
// only below the length assumed of it: a larger one could exceed what the
// model takes, and the provider would refuse the request.
func capOutput(r *http.Request, held *heldBody, mr meteredRequest, out int64, knownMax bool) *http.Request {
	names := outputCapMembers[mr.kind]
	if out < 0 || !mr.inspected || held == nil || names == nil {
		return r
	}
	if own := mr.outputCap(); own >= 0 && own <= out {
		return r // the client's own cap is within the reservation
	}
	each := max(out/mr.choices(), 1)
	if !knownMax && each >= unknownMaxOutput {
		return r
	}
	edits, ok := meter.CapEdits(held.body, each, names...)
	if !ok {
		return r
	}
	held.addEdits(edits)
	return withBody(r, held, held.size())
}

// readBody reads a body of the given length (-1: unknown) whole, in one
// allocation when the length is known, with the budget's leave. whole is
// false when it could not: no room left in the budget, a body longer than
// maxInspectedBody, or a read error. body is what was read, and reserved
// the bytes of budget taken for it (0 when nothing was read).
func readBody(r io.Reader, length int64, budget *inspectBudget) (body []byte, reserved int64, whole bool) {
	if length >= 0 {
		if !budget.reserve(length) {
			return nil, 0, false
		}
		buf := make([]byte, length)
		n, err := io.ReadFull(r, buf)
		return buf[:n], length, err == nil
	}
	// Unknown length: grow the buffer, taking budget as it grows.
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			c := min(max(2*cap(buf), 64<<10), maxInspectedBody+1)
			if !budget.reserve(int64(c - cap(buf))) {
				return buf, reserved, false
			}
			reserved += int64(c - cap(buf))
			buf = append(make([]byte, 0, c), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case len(buf) > maxInspectedBody:
			return buf, reserved, false
		case err == io.EOF:
			return buf, reserved, true
		case err != nil:
			return buf, reserved, false
		}
	}
}

// withBody returns a shallow copy of r reading body, of the given length
// (-1: unknown, sent chunked).
func withBody(r *http.Request, body io.ReadCloser, length int64) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = body
	r2.ContentLength = length
	if length >= 0 {
		r2.TransferEncoding = nil
	}
	return r2
}

func isJSON(contentType string) bool {
	if contentType == "" {
		return true // SDKs always set it; curl users often forget
	}
	if contentType == "application/json" {
		return true // what SDKs send: no parsing needed
	}
	mt, _, err := mime.ParseMediaType(contentType)
	// curl -d sends JSON as a form unless told otherwise: the API takes
	// only JSON and multipart bodies, so such a body is JSON or nothing.
	return err == nil && (mt == "application/json" || mt == "text/json" || mt == "application/x-www-form-urlencoded")
}
