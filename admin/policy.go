package admin

// policy.go: a user's models, limits and budget as the REST API takes them:
// whole on create, as a JSON merge patch (RFC 7396) on PATCH, where null
// clears a field so the site default applies again.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/keystore"
)

// policyFields are the policy members of a create or PATCH body.
type policyFields struct {
	Models json.RawMessage `json:"models"`
	Limits json.RawMessage `json:"limits"`
	Budget json.RawMessage `json:"budget"`
}

func (f policyFields) empty() bool {
	return f.Models == nil && f.Limits == nil && f.Budget == nil
}

// apply merges the fields into p: a member that is null clears what it
// names; an object's members replace p's one by one, null clearing one.
func (f policyFields) apply(p *keystore.Policy) *adminError {
	if f.Models != nil {
		if isNull(f.Models) {
			p.Models = nil
		} else if err := strictDecode(f.Models, &p.Models); err != nil {
			return badRequest("invalid_models", `"models" must be a list of model names or patterns, or null: %v`, err)
		} else if p.Models == nil {
			p.Models = []string{} // [] is refused by Validate, not taken as null
		}
	}
	if f.Limits != nil {
		if e := mergeObject(f.Limits, &p.Limits, "limits", limitsMembers); e != nil {
			return e
		}
	}
	if f.Budget != nil {
		if e := mergeObject(f.Budget, &p.Budget, "budget", budgetMembers); e != nil {
			return e
		}
	}
	if err := p.Validate(); err != nil {
		return invalid("invalid_policy", err)
	}
	return nil
}

// The members each object may hold, so that a typo is refused.
var (
	limitsMembers = []string{"rpm", "tpm", "max_parallel"}
	budgetMembers = []string{"tokens", "requests", "usd", "period"}
)

// mergeObject merges the raw JSON object patch into *dst (a *Limits or
// *Budget): null clears *dst; each member replaces dst's, null clearing it.
// An object left with no member set becomes nil.
func mergeObject[T any](patch json.RawMessage, dst **T, name string, members []string) *adminError {
	if isNull(patch) {
		*dst = nil
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(patch, &fields); err != nil || fields == nil {
		return badRequest("invalid_"+name, "%q must be an object or null", name)
	}
	// Merge on the JSON form: the current object's members, then the
	// patch's, nulls dropping them.
	current := map[string]json.RawMessage{}
	if *dst != nil {
		raw, _ := json.Marshal(*dst)
		_ = json.Unmarshal(raw, &current)
	}
	for k, v := range fields {
		if !contains(members, k) {
			return badRequest("invalid_"+name, "%q has no member %q; it takes %v", name, k, members)
		}
		if isNull(v) {
			delete(current, k)
		} else {
			current[k] = v
		}
	}
	if len(current) == 0 {
		*dst = nil
		return nil
	}
	raw, _ := json.Marshal(current)
	var out T
	if err := strictDecode(raw, &out); err != nil {
		return badRequest("invalid_"+name, "%q: %v", name, err)
	}
	*dst = &out
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// strictDecode decodes raw into v, refusing unknown members.
func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if e := bodyError(err); e != nil {
			return fmt.Errorf("%s", e.msg)
		}
		return err
	}
	return nil
}

// checkPolicy runs the site's own check of a user's policy (prices for a
// USD budget), if it has one.
func (h *Handler) checkPolicy(p keystore.Policy) *adminError {
	if h.CheckPolicy == nil {
		return nil
	}
	if err := h.CheckPolicy(p); err != nil {
		return invalid("invalid_policy", err)
	}
	return nil
}

// updatePolicy applies a PATCH's policy fields to the stored user
// atomically, checked as a whole before it is written.
func (h *Handler) updatePolicy(ctx context.Context, name string, f policyFields) (keystore.User, *adminError) {
	var refused *adminError
	u, err := h.Store.UpdatePolicy(ctx, name, func(p *keystore.Policy) error {
		if refused = f.apply(p); refused != nil {
			return refused
		}
		if refused = h.checkPolicy(*p); refused != nil {
			return refused
		}
		return nil
	})
	if refused != nil {
		return keystore.User{}, refused
	}
	if err != nil {
		return keystore.User{}, h.storeError(err, "update policy", userWhat(name))
	}
	h.logger.Info("user policy set", policyLogFields(name, u.Policy)...)
	return u, nil
}

// policyLogFields describe a user's policy for the audit log.
func policyLogFields(name string, p keystore.Policy) []zap.Field {
	fields := []zap.Field{zap.String("user", name)}
	if p.Models != nil {
		fields = append(fields, zap.Strings("models", p.Models))
	}
	if p.Limits != nil {
		fields = append(fields, zap.Any("limits", p.Limits))
	}
	if p.Budget != nil {
		fields = append(fields, zap.Any("budget", p.Budget))
	}
	return fields
}
