package aiproxy

import (
	"strconv"
	"strings"
	"testing"

	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/pricing"
)

// TestPriceTable: the site's prices are the built-in ones with the
// configured ones laid over them.
func TestPriceTable(t *testing.T) {
	h := &Handler{Prices: []PriceConfig{
		{Model: "gpt-4o-mini", Input: 0.2, Output: 0.8},                                // overrides the default
		{Model: "llama-*", Input: 0.59, Output: 0.79},                                  // a new family
		{Model: "llama-3.3-70b-versatile", Input: 0.5, Output: 0.7, CachedInput: 0.25}, // one of it apart
	}}
	table, err := h.priceTable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		model string
		want  pricing.Price
		ok    bool
	}{
		{"gpt-4o-mini", pricing.Price{Input: 0.2, Output: 0.8}, true},
		{"gpt-4o-mini-2024-07-18", pricing.Price{Input: 0.15, Output: 0.6, CachedInput: 0.075}, true}, // the default glob
		{"gpt-4o", pricing.Price{Input: 2.5, Output: 10, CachedInput: 1.25}, true},
		{"llama-3.1-8b-instant", pricing.Price{Input: 0.59, Output: 0.79}, true},
		{"llama-3.3-70b-versatile", pricing.Price{Input: 0.5, Output: 0.7, CachedInput: 0.25}, true},
		{"mistral-large", pricing.Price{}, false},
	} {
		if got, ok := table.Lookup(c.model); ok != c.ok || got != c.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", c.model, got, ok, c.want, c.ok)
		}
	}

	if table, err := (&Handler{}).priceTable(); err != nil {
		t.Fatal(err)
	} else if _, ok := table.Lookup("gpt-5"); !ok {
		t.Error("without prices configured, the built-in ones are missing")
	}
}

// TestPriceTableErrors: JSON configs get the checks the Caddyfile makes.
func TestPriceTableErrors(t *testing.T) {
	many := make([]PriceConfig, pricing.MaxEntries)
	for i := range many {
		many[i] = PriceConfig{Model: "m" + strconv.Itoa(i)}
	}
	for _, c := range []struct {
		name   string
		prices []PriceConfig
		err    string
	}{
		{"a model twice", []PriceConfig{{Model: "m", Input: 1}, {Model: "m", Input: 2}}, "prices: m is priced twice; keep one entry"},
		{"no model", []PriceConfig{{Input: 1}}, "prices: a price names no model"},
		{"bad glob", []PriceConfig{{Model: "m[", Input: 1}}, `prices: a price's model: "m[" is not a valid pattern`},
		{"negative", []PriceConfig{{Model: "m", Input: 1, Output: -1}}, "prices: price of m: output price -1 is not an amount"},
		{"too many", many, "prices; at most 1024, defaults included"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := (&Handler{Prices: c.prices}).priceTable()
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want it to contain %q", err, c.err)
			}
		})
	}
}

// TestValidateDefaultLimits: the policy is checked, and a USD budget needs
// a price for every model it names exactly.
func TestValidateDefaultLimits(t *testing.T) {
	prices, err := (&Handler{Prices: []PriceConfig{{Model: "llama-*", Input: 0.59, Output: 0.79}}}).priceTable()
	if err != nil {
		t.Fatal(err)
	}
	n := func(v int64) *int64 { return &v }
	usd := func(v float64) *float64 { return &v }
	budget := func(dollars float64, models ...string) *keystore.Policy {
		return &keystore.Policy{Models: models, Budget: &keystore.Budget{USD: usd(dollars)}}
	}
	for _, c := range []struct {
		name   string
		policy *keystore.Policy
		err    string
	}{
		{"none", nil, ""},
		{"rate limits only", &keystore.Policy{Limits: &keystore.Limits{RPM: n(60)}}, ""},
		{"USD budget on any model", budget(20), ""},
		{"USD budget on priced models", budget(20, "gpt-4o-mini", "gpt-4o-2024-08-06", "llama-3.1-8b-instant"), ""},
		{"USD budget on globs", budget(20, "gpt-4.1-*", "mistral-*"), ""},
		{"no USD budget on an unpriced model", &keystore.Policy{Models: []string{"mistral-large"}, Budget: &keystore.Budget{Tokens: n(1000)}}, ""},
		{"a zero USD budget is no budget", budget(0, "mistral-large"), ""},
		{"USD budget on an unpriced model", budget(20, "gpt-4o", "mistral-large"),
			"default_limits: budget_usd needs a price for model mistral-large: add `price mistral-large <input> <output>`"},
		{"invalid policy", &keystore.Policy{Limits: &keystore.Limits{TPM: n(-1)}}, "default_limits: limits.tpm: -1 is not a count"},
		{"invalid period", &keystore.Policy{Budget: &keystore.Budget{Period: "year"}}, `default_limits: budget.period: "year" is not a period`},
		{"empty models list", &keystore.Policy{Models: []string{}}, "default_limits: models: give at least one model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := validateDefaultLimits(c.policy, prices)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
		})
	}
}
