package aiproxy

// inspect.go: what the proxy reads from a request body before sending it:
// the model, and whether a stream must be asked for its usage.

import (
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/aiproxy/aiproxy/meter"
)

// maxInspectedBody bounds how much of a request body is read to learn its
// model and whether it streams. Larger bodies are proxied uninspected: their
// usage still counts, with the model the response names.
const maxInspectedBody = 16 << 20

// meteredRequest is what the proxy learns about one request for counting.
type meteredRequest struct {
	kind  meter.Kind
	model string
	strip bool // include_usage was injected: hide its effects from the client
	start time.Time
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
func inspectRequest(r *http.Request, budget *inspectBudget) (*http.Request, meteredRequest, *heldBody) {
	mr := meteredRequest{kind: meter.KindOther, start: time.Now()}
	// Only a POST creates a completion; a GET of the same path lists
	// stored ones, whose answers carry no usage of their own.
	if r.Method == http.MethodPost {
		mr.kind = meter.KindOf(r.URL.Path)
	}
	if mr.kind == meter.KindOther || r.Body == nil || r.Body == http.NoBody ||
		r.ContentLength > maxInspectedBody || !isJSON(r.Header.Get("Content-Type")) {
		return r, mr, nil
	}
	body, reserved, whole := readBody(r.Body, r.ContentLength, budget)
	if !whole {
		if reserved == 0 {
			return r, mr, nil // nothing read: no room in the budget
		}
		// Give the upstream everything, read or not, and count blind.
		held := newHeldBody([][]byte{body}, r.Body, budget, reserved)
		return withBody(r, held, -1), mr, held
	}
	pieces := [][]byte{body}
	if info, err := meter.InspectRequest(body); err == nil {
		// Cut now: a huge model string is let go at once.
		mr.model = cleanModel(info.Model)
		if info.Stream && !info.IncludeUsage && (mr.kind == meter.KindChat || mr.kind == meter.KindCompletion) {
			if spliced, ok := meter.IncludeUsagePieces(body); ok {
				pieces, mr.strip = spliced, true
			}
		}
	}
	held := newHeldBody(pieces, nil, budget, reserved)
	return withBody(r, held, held.size()), mr, held
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
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || mt == "text/json")
}
