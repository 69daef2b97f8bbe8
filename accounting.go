package aiproxy

// accounting.go: a finished request counted in the usage statistics and
// metrics, under a bounded, clean model name and its UTC day.

import (
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/meter"
)

// record counts a finished request in the usage statistics and metrics,
// and settles its admission, if it had one, to what it used.
func (h *Handler) record(user keystore.User, mr meteredRequest, w *proxyWriter, adm *admission) {
	if w.status == 0 {
		// Cut off before any answer: Caddy's proxy aborted the response.
		w.status = statusClientClosed
	}
	u := w.usage()
	date := usageDate(mr.start)
	answered := u.Model
	if mr.alias != "" {
		answered = mr.alias // the provider names its own model
	}
	model := usageModel(mr.model, answered, w.status)
	if model != modelFailed {
		model = h.models.Model(user.ID, date, model)
	}
	c := keystore.UsageCounts{
		Requests:         1,
		PromptTokens:     u.PromptTokens,
		CompletionTokens: u.CompletionTokens,
		TotalTokens:      u.TotalTokens,
		CachedTokens:     u.CachedTokens,
		ReasoningTokens:  u.ReasoningTokens,
	}
	if !u.Found && mr.kind != meter.KindOther && w.status >= 200 && w.status < 300 {
		// The answer should have carried usage but did not (a client gone
		// mid-stream, a provider that omits it): count the request, estimate
		// the completion from the content chunks seen, and say so.
		c.EstimatedRequests = 1
		c.CompletionTokens = u.ContentChunks
		c.TotalTokens = u.ContentChunks
	}
	c.CostNanoUSD = h.cost(u.Model, mr.model, c)
	if h.requestLog != nil {
		// Before the usage: counts added after Close flush the log too.
		h.logRequest(user, mr, w, model, c)
	}
	h.usage.Add(keystore.UsageKey{User: user.Name, UserID: user.ID, Model: model, Date: date}, c)
	if adm != nil {
		h.settle(adm, c, u.Found, w.status)
	}
	h.metrics.observe(user.Name, model, mr.kind.String(), w.status, tokenCounts{
		prompt: c.PromptTokens, completion: c.CompletionTokens, cached: c.CachedTokens, reasoning: c.ReasoningTokens,
	})
}

// logRequest queues the request log's record of a finished request.
func (h *Handler) logRequest(user keystore.User, mr meteredRequest, w *proxyWriter, model string, c keystore.UsageCounts) {
	now := time.Now()
	h.requestLog.add(keystore.RequestRecord{
		Time:             now.UTC().Truncate(time.Millisecond),
		User:             user.Name,
		Model:            model,
		Host:             mr.host,
		Path:             clipText(mr.path, keystore.MaxRequestPath),
		Status:           w.status,
		PromptTokens:     c.PromptTokens,
		CompletionTokens: c.CompletionTokens,
		CostNanoUSD:      c.CostNanoUSD,
		Duration:         now.Sub(mr.start),
		Stream:           mr.info.Stream || w.meter.Mode() == meter.ModeSSE,
	})
}

// cost is what c cost at the price of the model the answer named, else of
// the one the request named; 0 when neither has a price.
func (h *Handler) cost(answered, requested string, c keystore.UsageCounts) int64 {
	if c.PromptTokens == 0 && c.CompletionTokens == 0 {
		return 0
	}
	p, ok := h.prices.Lookup(answered)
	if !ok {
		if p, ok = h.prices.Lookup(requested); !ok {
			return 0
		}
	}
	return p.NanoUSD(c.PromptTokens, c.CachedTokens, c.CompletionTokens)
}

// maxModelLen bounds a model name kept in statistics and metric labels, in
// bytes.
const maxModelLen = 128

// The models usage is counted under when it cannot be the request's own.
const (
	modelFailed = "-"      // a failed request (not 2xx)
	modelNone   = "(none)" // a successful request that names no model
)

// usageModel is the model a request is counted under: the one the answer
// names, which the provider chose (e.g. gpt-4o-mini-2024-07-18 for
// gpt-4o-mini), else the one the client asked for. Failed requests count
// under modelFailed: the name is the client's, unchecked by the provider,
// and would let anyone mint rows and metric series at will. Successful
// requests that name no model (a model list, a file upload) count under
// modelNone, apart from the failures. Successful ones are bounded per user
// and day by the caller (usage.ModelBound).
func usageModel(requested, answered string, status int) string {
	model := answered
	if model == "" {
		model = requested
	}
	switch {
	case status < 200 || status >= 300:
		return modelFailed
	case model == "":
		return modelNone
	}
	return cleanModel(model)
}

// cleanModel returns model as valid UTF-8, each run of invalid bytes
// replaced by U+FFFD, cut on a character boundary to at most maxModelLen
// bytes: Prometheus refuses invalid UTF-8 in a label, and usage rows are
// JSON. A cut name is a copy, so it does not keep a long body's string
// alive in the statistics.
func cleanModel(model string) string {
	return clipText(model, maxModelLen)
}

// clipText returns s as valid UTF-8 of at most n bytes, as cleanModel
// describes.
func clipText(s string, n int) string {
	if len(s) > n+utf8.UTFMax {
		// What lies further is cut anyway: a replacement only lengthens
		// what precedes it.
		s = s[:n+utf8.UTFMax]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n
	for !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.Clone(s[:cut])
}

// today caches the current UTC date string, so that counting a request
// formats no date.
var today atomic.Pointer[cachedDate]

type cachedDate struct {
	start, end time.Time // the day's bounds
	date       string
}

// usageDate returns t's UTC date as YYYY-MM-DD.
func usageDate(t time.Time) string {
	if d := today.Load(); d != nil && !t.Before(d.start) && t.Before(d.end) {
		return d.date
	}
	start := t.UTC().Truncate(24 * time.Hour)
	d := &cachedDate{start: start, end: start.Add(24 * time.Hour), date: start.Format(time.DateOnly)}
	today.Store(d)
	return d.date
}
