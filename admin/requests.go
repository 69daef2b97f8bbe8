package admin

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/internal/jsonresp"
	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/usage"
)

// defaultRequestLimit is how many records GET /admin/requests returns when
// the query names no limit.
const defaultRequestLimit = 100

// maxRequestsAnswered bounds one answer, whatever the log's size: a million
// records would be hundreds of megabytes held and encoded at once.
const maxRequestsAnswered = 10_000

// RequestObject is one record of the request log as GET /admin/requests
// shows it. Dashboards and the CLI read these field names.
type RequestObject struct {
	// Time is when the request finished, UTC to the millisecond:
	// "2026-12-01T02:03:04.123Z".
	Time             string `json:"time"`
	User             string `json:"user"`
	Model            string `json:"model"` // as usage statistics count it
	Host             string `json:"host"`  // the provider host it went to
	Path             string `json:"path"`  // canonical, without the query
	Status           int    `json:"status"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	// CostUSD is what it cost in US dollars, exactly; absent when its
	// model has no price or it cost nothing.
	CostUSD    json.Number `json:"cost_usd,omitempty"`
	DurationMS float64     `json:"duration_ms"`
	Stream     bool        `json:"stream"`
}

// requestTimeLayout writes a record's time: always three decimals, and Z.
const requestTimeLayout = "2006-01-02T15:04:05.000Z"

// NewRequestObject shows a request log record.
func NewRequestObject(r keystore.RequestRecord) RequestObject {
	return RequestObject{
		Time:             r.Time.UTC().Format(requestTimeLayout),
		User:             r.User,
		Model:            r.Model,
		Host:             r.Host,
		Path:             r.Path,
		Status:           r.Status,
		PromptTokens:     r.PromptTokens,
		CompletionTokens: r.CompletionTokens,
		CostUSD:          usage.USD(r.CostNanoUSD),
		DurationMS:       float64(r.Duration.Microseconds()) / 1000,
		Stream:           r.Stream,
	}
}

type requestList struct {
	Data []RequestObject `json:"data"`
}

// serveRequests answers GET /admin/requests?user=&limit=: the newest
// records of the request log, newest first. limit defaults to 100; one
// above the log's size returns the whole log.
func (h *Handler) serveRequests(w http.ResponseWriter, r *http.Request) {
	if h.Requests == nil {
		apierror.Write(w, http.StatusNotFound, apierror.TypeNotFound, "request_log_off",
			"the request log is off on this gateway (request_log off); turn it on with request_log <records> in its aiproxy block")
		return
	}
	q := r.URL.Query()
	user := q.Get("user")
	if user != "" {
		if err := keystore.ValidUserName(user); err != nil {
			writeError(w, invalid("invalid_name", err))
			return
		}
	}
	limit := min(defaultRequestLimit, h.RequestLogSize, maxRequestsAnswered)
	if text := q.Get("limit"); text != "" {
		n, err := strconv.Atoi(text)
		if err != nil || n < 1 {
			writeError(w, badRequest("invalid_limit", "limit %q: want a whole number of records from 1 to %d, the request log's size", text, h.RequestLogSize))
			return
		}
		limit = min(n, h.RequestLogSize, maxRequestsAnswered)
	}
	recs, err := h.Requests(r.Context(), user, limit)
	if err != nil {
		writeError(w, h.storeError(err, "read the request log", "request log"))
		return
	}
	list := requestList{Data: make([]RequestObject, 0, len(recs))}
	for _, rec := range recs {
		list.Data = append(list.Data, NewRequestObject(rec))
	}
	jsonresp.Write(w, http.StatusOK, list)
}
