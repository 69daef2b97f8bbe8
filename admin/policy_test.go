package admin

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/aiproxy/aiproxy/keystore"
)

// TestRESTUserPolicy: models, limits and budget are taken on create, shown
// on get and list, merged field by field on PATCH, where null clears one.
func TestRESTUserPolicy(t *testing.T) {
	e := newTestEnv(t)
	rec := e.rest(t, "POST", "/admin/users", `{"name":"ann","models":["gpt-4o-mini","gpt-4.1*"],
		"limits":{"rpm":60,"tpm":100000,"max_parallel":4},
		"budget":{"tokens":1000000,"requests":5000,"usd":20.5,"period":"week"}}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	u := decode[userJSON](t, e.rest(t, "GET", "/admin/users/ann", ""), http.StatusOK)
	if !slices.Equal(u.Models, []string{"gpt-4o-mini", "gpt-4.1*"}) || u.Limits == nil || *u.Limits.RPM != 60 ||
		*u.Limits.TPM != 100000 || *u.Limits.MaxParallel != 4 || u.Budget == nil || *u.Budget.Tokens != 1000000 ||
		*u.Budget.Requests != 5000 || *u.Budget.USD != 20.5 || u.Budget.Period != keystore.PeriodWeek {
		t.Fatalf("stored policy: %+v", u)
	}

	// A member replaces its own value only; null clears one, or a whole object.
	u = decode[userJSON](t, e.rest(t, "PATCH", "/admin/users/ann", `{"limits":{"rpm":10,"tpm":null},"budget":null}`), http.StatusOK)
	if *u.Limits.RPM != 10 || u.Limits.TPM != nil || *u.Limits.MaxParallel != 4 || u.Budget != nil ||
		len(u.Models) != 2 {
		t.Fatalf("after merge: %+v limits %+v", u, u.Limits)
	}
	u = decode[userJSON](t, e.rest(t, "PATCH", "/admin/users/ann", `{"models":null,"limits":{"rpm":null,"max_parallel":null}}`), http.StatusOK)
	if u.Models != nil || u.Limits != nil {
		t.Fatalf("after clearing: %+v", u)
	}
	stored, _ := e.user(t, "ann")
	if stored.Models != nil || stored.Limits != nil || stored.Budget != nil {
		t.Fatalf("store still holds a policy: %+v", stored.Policy)
	}
}

// TestRESTUserPolicyRefused: a bad policy is refused with 400 and a message
// naming the field, and the user stays as it was.
func TestRESTUserPolicyRefused(t *testing.T) {
	e := newTestEnv(t)
	e.h.CheckPolicy = func(p keystore.Policy) error {
		if p.Budget != nil && p.Budget.USD != nil && slices.Contains(p.Models, "unpriced") {
			return errors.New("budget.usd needs a price for model unpriced")
		}
		return nil
	}
	e.rest(t, "POST", "/admin/users", `{"name":"bob","limits":{"rpm":5}}`)
	for _, tc := range []struct{ body, code string }{
		{`{"limits":{"rpm":-1}}`, "invalid_policy"},
		{`{"limits":{"rpn":5}}`, "invalid_limits"},
		{`{"limits":[1]}`, "invalid_limits"},
		{`{"limits":{"rpm":"5"}}`, "invalid_limits"},
		{`{"budget":{"period":"year"}}`, "invalid_policy"},
		{`{"budget":{"usd":-3}}`, "invalid_policy"},
		{`{"models":[]}`, "invalid_policy"},
		{`{"models":["gpt-["]}`, "invalid_policy"},
		{`{"models":"gpt-4o"}`, "invalid_models"},
		{`{"models":["unpriced"],"budget":{"usd":5}}`, "invalid_policy"},
	} {
		wantError(t, e.rest(t, "PATCH", "/admin/users/bob", tc.body), http.StatusBadRequest, tc.code)
		u, _ := e.user(t, "bob")
		if u.Models != nil || u.Budget != nil || u.Limits == nil || *u.Limits.RPM != 5 {
			t.Fatalf("%s changed the user: %+v", tc.body, u.Policy)
		}
	}
	wantError(t, e.rest(t, "POST", "/admin/users", `{"name":"carl","models":["unpriced"],"budget":{"usd":5}}`),
		http.StatusBadRequest, "invalid_policy")
	if _, ok := e.user(t, "carl"); ok {
		t.Fatal("a user with a refused policy was created")
	}
	wantError(t, e.rest(t, "PATCH", "/admin/users/nobody", `{"limits":{"rpm":1}}`), http.StatusNotFound, "not_found")
}
