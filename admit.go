package aiproxy

// admit.go: a request held to its user's policy before it is sent. The
// model must be on the user's list; then one store call checks the rate
// limits, the requests in flight and the budget, and reserves the request's
// upper bound; the answer's output cap is set to what that leaves. When the
// request ends, the reservation is settled to what it used (settle).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/meter"
	"github.com/aiproxy/aiproxy/pricing"
)

// minResponseOutput is the smallest max_output_tokens the Responses API
// takes: a request with less room is refused rather than capped lower.
const minResponseOutput = 16

// spendClock is the time admissions are made at; tests move it.
var spendClock = time.Now

// admission is an admitted request's reservation, settled when it ends.
type admission struct {
	keystore.Admission
	verdict  keystore.Verdict
	price    pricing.Price // the requested model's, if priced
	priced   bool
	knownMax bool // the price table knows the model's longest answer

	mu      sync.Mutex
	renew   *time.Timer // keeps a long request's lease
	settled bool        // the lease is let go: renew no more
}

// userPolicy is the policy user's requests are held to: its own over the
// site's defaults.
func (h *Handler) userPolicy(u keystore.User) keystore.Policy {
	if h.DefaultLimits == nil {
		return u.Policy
	}
	return u.Policy.Over(*h.DefaultLimits)
}

// holdToPolicy applies the user's policy to a request about to go: the
// model list, then the limits. It returns the request to send (its output
// cap maybe lowered to what the limits leave) and the admission to settle
// when it ends (nil for a user without limits), or false when it refused
// the request and answered it.
func (h *Handler) holdToPolicy(w http.ResponseWriter, r *http.Request, user keystore.User, policy keystore.Policy,
	mr meteredRequest, held *heldBody) (*http.Request, *admission, bool) {
	if !checkModel(w, r, policy.Models, mr) {
		h.metrics.rejected(rejectModel)
		return r, nil, false
	}
	adm, ok := h.admit(w, r, user, policy.Allowance(), mr)
	if !ok || adm == nil {
		return r, nil, ok
	}
	return capOutput(r, held, mr, adm.verdict.Output, adm.knownMax), adm, true
}

// checkModel refuses, with 403 model_not_allowed, a request for a model
// outside the user's list, or one whose model aiproxy cannot read, before
// anything is dialed. It reports whether the request may go on.
func checkModel(w http.ResponseWriter, r *http.Request, models []string, mr meteredRequest) bool {
	if models == nil {
		return true
	}
	if dep := azureDeployment(r.URL.Path); dep != "" && !keystore.MatchModel(models, dep) {
		writeModelNotAllowed(w, dep, fmt.Sprintf("The deployment %q is not allowed for this key. Allowed: %s.",
			truncate(dep, 100), strings.Join(models, ", ")))
		return false
	}
	model, known, needed := requestModel(r, mr)
	switch {
	case !needed:
		return true
	case !known:
		writeModelNotAllowed(w, "",
			"This key may only use some models, and the gateway cannot read the model of this request; send a JSON body with \"model\".")
		return false
	case !keystore.MatchModel(models, model):
		writeModelNotAllowed(w, model, fmt.Sprintf("The model %q is not allowed for this key. Allowed: %s.",
			truncate(model, 100), strings.Join(models, ", ")))
		return false
	}
	return true
}

func writeModelNotAllowed(w http.ResponseWriter, model, msg string) {
	apierror.Write(w, http.StatusForbidden, apierror.TypeInvalidRequest, "model_not_allowed", msg)
}

// requestModel is the model a request runs, as far as an allow-list goes:
// known says whether it could be read, needed whether the request runs a
// model at all. Listing models is filtered in the answer instead (see
// modelsFilter); files and uploads run none; other reads (GET) only show
// what the key's requests made.
func requestModel(r *http.Request, mr meteredRequest) (model string, known, needed bool) {
	endpoint := apiEndpoint(r.URL.Path)
	switch {
	case isWebSocket(r):
		m := r.URL.Query().Get("model")
		return m, m != "", true
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		if id, ok := strings.CutPrefix(endpoint, "models/"); ok && id != "" {
			return id, true, true
		}
		return "", false, false
	case r.Method == http.MethodDelete:
		return "", false, false
	case endpoint == "files" || strings.HasPrefix(endpoint, "files/") ||
		endpoint == "uploads" || strings.HasPrefix(endpoint, "uploads/"):
		return "", false, false
	}
	return mr.model, mr.model != "", true
}

// isWebSocket reports whether Caddy's proxy will switch r to another
// protocol, as it decides: an Upgrade header with "upgrade" among the
// Connection tokens, or an extended CONNECT. Other requests that carry an
// Upgrade header are proxied as they are, with their body.
func isWebSocket(r *http.Request) bool {
	if r.Method == http.MethodConnect {
		return true
	}
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return true
			}
		}
	}
	return false
}

// azureDeployment is the deployment an Azure-style path names
// (/openai/deployments/{id}/...), which picks the model there, or "".
func azureDeployment(path string) string {
	rest, ok := strings.CutPrefix(path, "/openai/deployments/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// apiEndpoint is path without its API prefix (/v1/, /openai/v1/,
// /openai/deployments/{id}/): "chat/completions", "models/gpt-4o".
func apiEndpoint(path string) string {
	rest := strings.TrimPrefix(path, "/")
	if r, ok := strings.CutPrefix(rest, "openai/"); ok {
		rest = r
		if dep, ok := strings.CutPrefix(rest, "deployments/"); ok {
			_, endpoint, _ := strings.Cut(dep, "/")
			return endpoint
		}
	}
	if v, endpoint, ok := strings.Cut(rest, "/"); ok && isVersionSegment(v) {
		return endpoint
	}
	return rest
}

func isVersionSegment(s string) bool {
	if len(s) < 2 || s[0] != 'v' {
		return false
	}
	_, err := strconv.ParseUint(s[1:], 10, 32)
	return err == nil
}

// admit checks the request against the user's limits and reserves its
// upper bound. It writes the refusal itself and returns nil then; a user
// without limits gets an empty admission and pays nothing.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, user keystore.User, allow keystore.Allowance, mr meteredRequest) (*admission, bool) {
	if !allow.Limited() {
		return nil, true
	}
	adm := &admission{Admission: keystore.Admission{
		User: user.Name, UserID: user.ID, Allowance: allow, Now: spendClock(),
	}}
	if allow.MaxParallel > 0 {
		adm.Lease = newLease()
	}
	if allow.CountsTokens() {
		if !checkCountable(w, r, mr) {
			h.metrics.rejected(rejectModel)
			return nil, false
		}
		if !h.boundRequest(w, adm, mr) {
			return nil, false
		}
	}
	// Not the client's context: a client gone while the store applies the
	// admission must not leave it unknown to the gateway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
	v, err := h.store.Admit(ctx, adm.Admission)
	cancel()
	if err != nil {
		h.lookupLog.fail(err)
		if adm.Lease != "" {
			// The admission may have been applied with its reply lost:
			// its place in flight goes; a reservation would only hold the
			// user to more.
			h.settler.send([]keystore.Settlement{{User: adm.User, UserID: adm.UserID,
				Admitted: adm.Now, Period: adm.BudgetPeriod(), Lease: adm.Lease}})
		}
		writeStoreUnavailable(w) // fail closed: a limit cannot be checked
		return nil, false
	}
	adm.verdict = v
	if v.Denied != "" {
		h.writeDenied(w, adm)
		return nil, false
	}
	if adm.Lease != "" {
		adm.mu.Lock()
		adm.renew = time.AfterFunc(keystore.LeaseTTL/2, func() { h.renewLease(adm) })
		adm.mu.Unlock()
	}
	return adm, true
}

// mayHaveBilled reports whether a request answered with status may have
// been billed by the provider: it answered, or the client or the gateway
// stopped waiting for it.
func mayHaveBilled(status int) bool {
	return status >= 200 && status < 300 || status == statusClientClosed || status == http.StatusGatewayTimeout
}

// newLease names a request among its user's requests in flight.
func newLease() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// renewLease keeps a long request counted in flight, every LeaseTTL/2
// until it is settled.
func (h *Handler) renewLease(adm *admission) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := h.store.RenewLease(ctx, adm.User, adm.UserID, adm.Lease, spendClock()); err != nil {
		h.logger.Warn("keeping a long request counted in flight failed", zap.String("user", adm.User), zap.Error(err))
	}
	adm.mu.Lock()
	defer adm.mu.Unlock()
	if !adm.settled {
		adm.renew.Reset(keystore.LeaseTTL / 2)
	}
}

// freeEndpoints are the POST endpoints without usage of their own that a
// key with a token or USD limit may call: they spend nothing by
// themselves.
var freeEndpoints = []string{"files", "uploads", "moderations"}

// checkCountable refuses, for a key with a token or USD limit, a request
// whose tokens the gateway cannot count: a Realtime session, or a POST
// that makes work the provider bills apart from this answer (batches,
// fine-tuning, assistants' runs, images, audio).
func checkCountable(w http.ResponseWriter, r *http.Request, mr meteredRequest) bool {
	if isUpgrade(r) {
		apierror.Write(w, http.StatusForbidden, apierror.TypePermission, "realtime_not_allowed",
			"This key has a token or spend limit, and the gateway cannot count the tokens of a Realtime session.")
		return false
	}
	if r.Method != http.MethodPost || mr.kind != meter.KindOther {
		return true
	}
	endpoint := apiEndpoint(r.URL.Path)
	first, _, _ := strings.Cut(endpoint, "/")
	if slices.Contains(freeEndpoints, first) {
		return true
	}
	apierror.Write(w, http.StatusForbidden, apierror.TypePermission, "endpoint_not_allowed",
		fmt.Sprintf("This key has a token or spend limit, and the gateway cannot count what /%s spends; it allows chat/completions, completions, responses and embeddings.",
			truncate(endpoint, 100)))
	return false
}

// unknownMaxOutput is the longest answer assumed of a model the price
// table does not know, when the client sets no cap.
const unknownMaxOutput = 32768

// boundRequest fills in the admission's upper bound of the request's
// tokens and their price. It refuses, itself, a request it cannot bound.
func (h *Handler) boundRequest(w http.ResponseWriter, adm *admission, mr meteredRequest) bool {
	if mr.kind == meter.KindOther {
		// Nothing billed by itself (see checkCountable): no tokens.
		return true
	}
	switch {
	case mr.inspected:
	case mr.tooLarge:
		apierror.Write(w, http.StatusRequestEntityTooLarge, apierror.TypeInvalidRequest, "request_too_large",
			fmt.Sprintf("This key has a token or spend limit, and the request body is larger than the %d MiB the gateway reads to bound its tokens.", maxInspectedBody>>20))
		return false
	case mr.busy:
		writeServerBusy(w)
		return false
	default:
		apierror.Write(w, http.StatusBadRequest, apierror.TypeInvalidRequest, "invalid_json",
			"This key has a token or spend limit, and the gateway reads the request's JSON body to bound its tokens: send a valid JSON object.")
		return false
	}
	// A text token is at least a byte of the body, which also holds the
	// JSON around it: the body's length bounds the prompt from above.
	adm.PromptTokens = mr.bodyLen
	if mr.kind != meter.KindEmbedding {
		adm.MinOutput = mr.choices() // a token for each answer asked for
		if mr.kind == meter.KindResponse {
			adm.MinOutput = minResponseOutput
		}
		// The output is bounded by the client's cap, else by the model's
		// longest answer (assumed for a model the table does not know).
		most, known := pricing.MaxOutput(mr.model)
		if !known {
			most = unknownMaxOutput
		}
		adm.knownMax = known
		adm.MaxOutput = mr.outputCap()
		if adm.MaxOutput < 0 || adm.MaxOutput/mr.choices() > most {
			adm.MaxOutput = most * mr.choices()
		}
	}
	if adm.BudgetNanoUSD > 0 {
		adm.price, adm.priced = h.prices.Lookup(mr.model)
		if !adm.priced {
			apierror.Write(w, http.StatusForbidden, apierror.TypeInvalidRequest, "model_price_unknown",
				fmt.Sprintf("This key has a USD budget, and the gateway has no price for the model %q; ask its admin to add one.", truncate(mr.model, 100)))
			h.metrics.rejected(rejectModel)
			return false
		}
		adm.InputNanoUSD, adm.OutputNanoUSD = adm.price.InputNanoUSD(), adm.price.OutputNanoUSD()
	}
	return true
}

// writeServerBusy answers a request whose body the gateway had no room to
// read, when it must read it (for its limits, or for its model's host).
func writeServerBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	apierror.Write(w, http.StatusServiceUnavailable, apierror.TypeServer, "server_busy",
		"The gateway is holding too many request bodies to read this one; try again shortly.")
}

// writeDenied answers a request a limit refused: 429, with Retry-After
// when waiting helps, worded as OpenAI words its own.
func (h *Handler) writeDenied(w http.ResponseWriter, adm *admission) {
	v, a := adm.verdict, adm.Allowance
	if v.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(v.RetryAfter.Seconds())), 10))
	}
	setRateLimitHeaders(w.Header(), a, v.Window)
	wait := ""
	if v.RetryAfter > 0 {
		wait = " Please try again in " + v.RetryAfter.Round(time.Second).String() + "."
	}
	switch v.Denied {
	case keystore.DeniedRequests:
		h.metrics.rejected(rejectRate)
		apierror.Write(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
			fmt.Sprintf("Rate limit reached for this key on requests per min (RPM): Limit %d, Used %d, Requested 1.%s", a.RPM, v.Window.Requests, wait))
	case keystore.DeniedTokens:
		h.metrics.rejected(rejectRate)
		apierror.Write(w, http.StatusTooManyRequests, "tokens", "rate_limit_exceeded",
			fmt.Sprintf("Rate limit reached for this key on tokens per min (TPM): Limit %d, Used %d, Requested at least %d.%s",
				a.TPM, v.Window.Tokens, adm.PromptTokens+adm.MinOutput, wait))
	case keystore.DeniedTooLarge:
		h.metrics.rejected(rejectRate)
		apierror.Write(w, http.StatusTooManyRequests, "tokens", "rate_limit_exceeded",
			fmt.Sprintf("Request too large for this key's tokens per min (TPM): Limit %d, Requested at least %d (the gateway counts the request body's bytes as its prompt's upper bound).",
				a.TPM, adm.PromptTokens+adm.MinOutput))
	case keystore.DeniedParallel:
		h.metrics.rejected(rejectParallel)
		apierror.Write(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
			fmt.Sprintf("This key may have at most %d requests in flight at once; wait for one to finish.", a.MaxParallel))
	default:
		h.metrics.rejected(rejectBudget)
		apierror.Write(w, http.StatusTooManyRequests, apierror.TypeInsufficientQuota, "insufficient_quota",
			budgetMessage(adm))
	}
}

// budgetMessage says which budget ran out and when it comes back.
func budgetMessage(adm *admission) string {
	a, v := adm.Allowance, adm.verdict
	var what string
	switch v.Denied {
	case keystore.DeniedBudgetRequests:
		what = fmt.Sprintf("its budget of %d requests", a.BudgetRequests)
	case keystore.DeniedBudgetTokens:
		what = fmt.Sprintf("its budget of %d tokens (%d used or reserved; this request needs at least %d)",
			a.BudgetTokens, v.Spent.Tokens, adm.PromptTokens+adm.MinOutput)
	default:
		what = fmt.Sprintf("its budget of $%.2f ($%.4f used or reserved)", float64(a.BudgetNanoUSD)/1e9, float64(v.Spent.NanoUSD)/1e9)
	}
	period := a.BudgetPeriod()
	if period == keystore.PeriodTotal {
		return "This key has used " + what + ", which does not reset; ask the gateway's admin for more."
	}
	_, end := period.Span(adm.Now)
	return fmt.Sprintf("This key has used %s for this %s; it resets at %s.", what, period, end.Format(time.RFC3339))
}

// setRateLimitHeaders sets OpenAI's x-ratelimit-* headers for the key's own
// rate limits, after w's window.
func setRateLimitHeaders(hdr http.Header, a keystore.Allowance, win keystore.Window) {
	if a.RPM > 0 {
		hdr.Set("X-Ratelimit-Limit-Requests", strconv.FormatInt(a.RPM, 10))
		hdr.Set("X-Ratelimit-Remaining-Requests", strconv.FormatInt(max(a.RPM-win.Requests, 0), 10))
		hdr.Set("X-Ratelimit-Reset-Requests", resetString(win.RequestsReset))
	}
	if a.TPM > 0 {
		hdr.Set("X-Ratelimit-Limit-Tokens", strconv.FormatInt(a.TPM, 10))
		hdr.Set("X-Ratelimit-Remaining-Tokens", strconv.FormatInt(max(a.TPM-win.Tokens, 0), 10))
		hdr.Set("X-Ratelimit-Reset-Tokens", resetString(win.TokensReset))
	}
}

// resetString writes a duration as OpenAI's headers do: "1s", "6m0s", "20ms".
func resetString(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return d.Round(time.Millisecond).String()
}

// dropProviderRateLimits removes the provider's x-ratelimit-* headers,
// which describe the shared provider key, not the user.
func dropProviderRateLimits(hdr http.Header) {
	for name := range hdr {
		if strings.HasPrefix(name, "X-Ratelimit-") {
			delete(hdr, name)
		}
	}
}

// settle replaces the admission's reservation by what the request used,
// after the request: through the settler's queue, or at once for a
// request that held a place in flight. A request that reached the
// provider and came back without usage (a client gone mid-answer, a
// background response, a provider that reports none) keeps its
// reservation: the provider may bill up to it.
func (h *Handler) settle(adm *admission, c keystore.UsageCounts, found bool, status int) {
	adm.mu.Lock()
	adm.settled = true
	if adm.renew != nil {
		adm.renew.Stop()
	}
	adm.mu.Unlock()
	used := keystore.Amounts{Requests: 1, Tokens: c.TotalTokens, NanoUSD: c.CostNanoUSD}
	if used.Tokens == 0 {
		used.Tokens = c.PromptTokens + c.CompletionTokens
	}
	if !found && adm.verdict.Output >= 0 && mayHaveBilled(status) {
		used = adm.verdict.Reserved
	}
	st := keystore.Settlement{
		User: adm.User, UserID: adm.UserID, Admitted: adm.Now, Period: adm.BudgetPeriod(),
		Lease: adm.Lease, Reserved: adm.verdict.Reserved, Used: used,
	}
	if adm.Lease == "" {
		h.settler.add(st)
		return
	}
	// A place among the requests in flight is freed before the answer
	// ends, so that the client's next request finds it.
	h.settler.send([]keystore.Settlement{st})
}
