package aiproxy

// pricing_config.go: the site's model prices and default limits as
// configured, checked and turned into a price table.

import (
	"fmt"

	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/pricing"
)

// PriceConfig is the price of a model, or of every model a glob matches, in
// US dollars per million tokens. It is laid over the built-in prices of
// OpenAI's models, replacing one of the same pattern.
type PriceConfig struct {
	// Model is a model name such as "gpt-4o-mini", or a glob with '*', '?'
	// and [classes] such as "llama-*", matched as in a user's models list.
	// A model takes the price of the most specific match: its exact name
	// first; else the glob with the most characters that are not
	// wildcards. Required; each model or glob priced once.
	Model string `json:"model"`

	// Input is the price of a million input (prompt) tokens.
	Input float64 `json:"input"`

	// Output is the price of a million output (completion) tokens,
	// reasoning tokens included.
	Output float64 `json:"output"`

	// CachedInput is the price of a million input tokens the provider
	// served from its prompt cache. Default (0): the Input price.
	CachedInput float64 `json:"cached_input,omitempty"`
}

// price is c as a pricing.Price.
func (c PriceConfig) price() pricing.Price {
	return pricing.Price{Input: c.Input, Output: c.Output, CachedInput: c.CachedInput}
}

// priceTable builds the site's prices: the built-in ones, then Prices,
// which override a built-in price of the same pattern.
func (h *Handler) priceTable() (*pricing.Table, error) {
	entries := pricing.Default()
	seen := make(map[string]bool, len(h.Prices))
	for _, c := range h.Prices {
		if seen[c.Model] {
			return nil, fmt.Errorf("prices: %s is priced twice; keep one entry", c.Model)
		}
		seen[c.Model] = true
		entries = append(entries, pricing.Entry{Pattern: c.Model, Price: c.price()})
	}
	table, err := pricing.NewTable(entries)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	return table, nil
}

// validateDefaultLimits checks the site's default policy (nil: none), and
// that its USD budget can be counted (see checkPriced).
func validateDefaultLimits(p *keystore.Policy, prices *pricing.Table) error {
	if p == nil {
		return nil
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("default_limits: %w", err)
	}
	if err := checkPriced(*p, prices); err != nil {
		return fmt.Errorf("default_limits: %w", err)
	}
	return nil
}

// checkPriced checks that a policy's USD budget can be counted: every model
// it names exactly needs a price. Globs are not checked, as they may match
// priced and unpriced models alike; a request for an unpriced model is
// refused when it comes.
func checkPriced(p keystore.Policy, prices *pricing.Table) error {
	if p.Budget == nil || p.Budget.USD == nil || *p.Budget.USD <= 0 {
		return nil
	}
	for _, model := range p.Models {
		if keystore.IsModelGlob(model) {
			continue
		}
		if _, ok := prices.Lookup(model); !ok {
			return fmt.Errorf("budget_usd needs a price for model %s: add `price %s <input> <output>` to the aiproxy config", model, model)
		}
	}
	return nil
}
