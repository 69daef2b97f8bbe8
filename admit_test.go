package aiproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/aiproxy/aiproxy/internal/storetest"
	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/meter"
)

// admitHandler is a Handler with just what admissions need, over a store
// that can fail on demand.
func admitHandler(t *testing.T) (*Handler, *storetest.Store) {
	st := storetest.New(t)
	h := &Handler{store: st, logger: zap.NewNop(),
		lookupLog: newOutageLog(zap.NewNop(), zapcore.ErrorLevel, "down", "up")}
	h.settler = newSettler(st, zap.NewNop())
	t.Cleanup(h.settler.close)
	return h, st
}

var admitUser = keystore.User{Name: "ann", ID: "0123456789abcdef"}

func (h *Handler) spent(t *testing.T) keystore.Spending {
	t.Helper()
	h.settler.close() // what is queued is settled
	sp, err := h.store.Spending(context.Background(), keystore.SpendQuery{User: admitUser.Name, UserID: admitUser.ID,
		Period: keystore.PeriodMonth, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestEmbeddingReservesItsPromptOnly: an embedding has no output, so it
// reserves its prompt bound, not all a budget has left; two fit at once.
func TestEmbeddingReservesItsPromptOnly(t *testing.T) {
	h, _ := admitHandler(t)
	allow := keystore.Allowance{BudgetTokens: 10000}
	mr := meteredRequest{kind: meter.KindEmbedding, model: "text-embedding-3-small", inspected: true, bodyLen: 60}
	r := httptest.NewRequest("POST", "/v1/embeddings", strings.NewReader("{}"))
	for i := range 2 {
		rec := httptest.NewRecorder()
		adm, ok := h.admit(rec, r, admitUser, allow, mr)
		if !ok || adm == nil || adm.verdict.Reserved.Tokens != 60 {
			t.Fatalf("embedding %d: %v %d %s", i, adm, rec.Code, rec.Body)
		}
	}
}

// TestRequestWithoutTokensReservesNone: a GET under a tpm reserves the
// request only.
func TestRequestWithoutTokensReservesNone(t *testing.T) {
	h, _ := admitHandler(t)
	adm, ok := h.admit(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/files", nil), admitUser,
		keystore.Allowance{TPM: 5000}, meteredRequest{kind: meter.KindOther})
	if !ok || adm == nil || adm.verdict.Reserved != (keystore.Amounts{Requests: 1}) {
		t.Fatalf("GET /v1/files reserved %+v", adm)
	}
}

// TestUncountableEndpointsRefused: a key with a token or USD limit cannot
// start work the provider bills apart from the answer.
func TestUncountableEndpointsRefused(t *testing.T) {
	h, _ := admitHandler(t)
	allow := keystore.Allowance{BudgetNanoUSD: 1e9}
	for _, path := range []string{"/v1/batches", "/v1/fine_tuning/jobs", "/v1/threads/t1/runs", "/v1/images/generations", "/v1/audio/speech"} {
		rec := httptest.NewRecorder()
		if _, ok := h.admit(rec, httptest.NewRequest("POST", path, strings.NewReader("{}")), admitUser, allow,
			meteredRequest{kind: meter.KindOther}); ok || rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "endpoint_not_allowed") {
			t.Errorf("POST %s: %d %s", path, rec.Code, rec.Body)
		}
	}
	for _, path := range []string{"/v1/files", "/v1/moderations"} {
		if _, ok := h.admit(httptest.NewRecorder(), httptest.NewRequest("POST", path, strings.NewReader("{}")), admitUser, allow,
			meteredRequest{kind: meter.KindOther}); !ok {
			t.Errorf("POST %s refused", path)
		}
	}
}

// TestAdmitReplyLostFreesItsPlace: when the store applied an admission but
// its reply was lost, the request's place in flight is let go.
func TestAdmitReplyLostFreesItsPlace(t *testing.T) {
	h, st := admitHandler(t)
	allow := keystore.Allowance{MaxParallel: 1}
	r := httptest.NewRequest("GET", "/v1/models", nil)
	st.FailNextAfterApplying("Admit", 1, storetest.ErrOutage)
	rec := httptest.NewRecorder()
	if _, ok := h.admit(rec, r, admitUser, allow, meteredRequest{kind: meter.KindOther}); ok || rec.Code != 503 {
		t.Fatalf("reply lost: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	if _, ok := h.admit(rec, r, admitUser, allow, meteredRequest{kind: meter.KindOther}); !ok {
		t.Fatalf("no request in flight, yet refused: %d %s", rec.Code, rec.Body)
	}
}

// TestLeaseRenewalStopsAtSettle: a renewal running as the request settles
// does not arm the timer again.
func TestLeaseRenewalStopsAtSettle(t *testing.T) {
	h, st := admitHandler(t)
	adm, ok := h.admit(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/models", nil), admitUser,
		keystore.Allowance{MaxParallel: 1}, meteredRequest{kind: meter.KindOther})
	if !ok || adm == nil {
		t.Fatal("refused")
	}
	entered, release := st.BlockNext("RenewLease")
	done := make(chan struct{})
	go func() { h.renewLease(adm); close(done) }() // as the timer would, at LeaseTTL/2
	<-entered
	h.settle(adm, keystore.UsageCounts{Requests: 1}, true, 200)
	close(release)
	<-done
	if adm.renew.Stop() {
		t.Fatal("the renewal timer is armed again after the request was settled")
	}
}

// TestAnswerWithoutUsageKeepsItsReservation: a request that reached the
// provider and came back without usage (a client gone mid-stream, a
// background response) is held to its reservation, which bounds what the
// provider may bill; an upstream error gives it back.
func TestAnswerWithoutUsageKeepsItsReservation(t *testing.T) {
	for _, tc := range []struct {
		status int
		keep   bool
	}{{200, true}, {statusClientClosed, true}, {504, true}, {500, false}, {502, false}, {429, false}} {
		h, _ := admitHandler(t)
		mr := meteredRequest{kind: meter.KindChat, model: "gpt-4o-mini", inspected: true, bodyLen: 4000,
			info: meter.RequestInfo{N: 1, MaxTokens: 10, MaxCompletionTokens: -1, MaxOutputTokens: -1, Prompts: 1}}
		adm, ok := h.admit(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader("{}")),
			admitUser, keystore.Allowance{BudgetTokens: 100000}, mr)
		if !ok || adm == nil {
			t.Fatal("refused")
		}
		// What record passes for an answer whose usage never came.
		h.settle(adm, keystore.UsageCounts{Requests: 1, EstimatedRequests: 1, CompletionTokens: 3, TotalTokens: 3}, false, tc.status)
		got, want := h.spent(t).Spent.Tokens, int64(3)
		if tc.keep {
			want = 4010
		}
		if got != want {
			t.Errorf("status %d without usage: %d tokens spent, want %d", tc.status, got, want)
		}
	}
}

// TestLegacyPromptListCountsEachPrompt: each prompt of a legacy
// completion's list gets its choices, and its cap.
func TestLegacyPromptListCountsEachPrompt(t *testing.T) {
	info, err := meter.InspectRequest([]byte(`{"model":"gpt-3.5-turbo-instruct","prompt":["a","b","c","d"],"max_tokens":100,"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	mr := meteredRequest{kind: meter.KindCompletion, info: info}
	if got := mr.outputCap(); got != 800 {
		t.Fatalf("outputCap %d, want 4 prompts x 2 choices x 100 tokens", got)
	}
}

// TestTinyUSDBudgetIsStillABudget: a positive USD budget too small for a
// nano-dollar is the smallest budget, not no budget.
func TestTinyUSDBudgetIsStillABudget(t *testing.T) {
	usd := 1e-10
	p := keystore.Policy{Budget: &keystore.Budget{USD: &usd}}
	if p.Validate() != nil || p.Allowance().BudgetNanoUSD != 1 {
		t.Fatalf("budget.usd 1e-10: %+v", p.Allowance())
	}
}
