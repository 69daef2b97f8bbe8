// Package pricing knows what a model costs and how long its answers can be.
//
// A [Table] prices models by name: each [Entry] gives a [Price] in US
// dollars per million tokens to a model name or to every model a glob
// matches (the globs of keystore.MatchModel). The most specific entry wins,
// so a table can price a family with a glob and one member apart:
//
//	t, _ := pricing.NewTable(append(pricing.Default(),
//		pricing.Entry{Pattern: "llama-*", Price: pricing.Price{Input: 0.1, Output: 0.2}}))
//	p, ok := t.Lookup("gpt-4o-mini-2024-07-18") // the default "gpt-4o-mini-20*": 0.15, 0.60, 0.075
//	cost := p.NanoUSD(1000, 200, 50)              // 800×150 + 200×75 + 50×600 = 165000 nano-dollars
//
// Costs are counted in nano-dollars (1e-9 USD) as int64: a price of 1 USD
// per million tokens is 1000 nano-dollars per token. [MaxOutput] tells how
// many tokens the answer of a known model can hold at most, to bound what a
// request may cost before it is sent.
//
// Only the standard library and package keystore (for model patterns) are
// used.
package pricing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/aiproxy/aiproxy/keystore"
)

// Price is what a model's tokens cost, in US dollars per million tokens.
// Prices count to the millionth of a dollar per million tokens (a
// pico-dollar per token); finer digits are rounded off.
type Price struct {
	// Input is the price of a million input (prompt) tokens.
	Input float64
	// Output is the price of a million output (completion) tokens,
	// reasoning tokens included.
	Output float64
	// CachedInput is the price of a million input tokens the provider
	// served from its prompt cache; 0 means the same as Input.
	CachedInput float64
}

// MaxPrice is the highest price a Table takes, in US dollars per million
// tokens: far above any model's (the dearest of OpenAI's, o1-pro's output,
// is 600).
const MaxPrice = 1e6

// Validate reports the first price of p that is not an amount from 0 to
// MaxPrice.
func (p Price) Validate() error {
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"input", p.Input}, {"output", p.Output}, {"cached input", p.CachedInput}} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > MaxPrice {
			return fmt.Errorf("%s price %v is not an amount from 0 to %v dollars per million tokens", f.name, f.v, MaxPrice)
		}
	}
	return nil
}

// cachedInput is the price of cached input tokens, CachedInput or Input.
func (p Price) cachedInput() float64 {
	if p.CachedInput == 0 {
		return p.Input
	}
	return p.CachedInput
}

// NanoUSD returns what a request costs, in nano-dollars, rounded up:
//
//	((prompt-cached)×Input + cached×CachedInput + completion×Output) × 1000
//
// with prices in dollars per million tokens. cached is the part of prompt
// served from the prompt cache (as OpenAI reports cached_tokens); it is
// taken as 0 to prompt, and negative counts as 0. The product is computed
// exactly; a cost beyond int64 saturates at math.MaxInt64.
func (p Price) NanoUSD(prompt, cached, completion int64) int64 {
	prompt = max(prompt, 0)
	cached = min(max(cached, 0), prompt)
	completion = max(completion, 0)
	// The cost in pico-dollars, as a 128-bit hi:lo: each product is below
	// 2^63 × 2^40, so the sum of three fits.
	var hi, lo uint64
	for _, t := range [...]struct {
		tokens int64
		price  float64
	}{{prompt - cached, p.Input}, {cached, p.cachedInput()}, {completion, p.Output}} {
		h, l := bits.Mul64(uint64(t.tokens), picoPerToken(t.price))
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi += h + carry
	}
	if hi >= 1000 { // the quotient would not fit 64 bits
		return math.MaxInt64
	}
	nano, rem := bits.Div64(hi, lo, 1000)
	if rem != 0 {
		nano++
	}
	if nano > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(nano)
}

// InputNanoUSD is the price of one input token, in nano-dollars.
func (p Price) InputNanoUSD() float64 { return float64(picoPerToken(p.Input)) / 1000 }

// CachedInputNanoUSD is the price of one cached input token, in nano-dollars.
func (p Price) CachedInputNanoUSD() float64 { return float64(picoPerToken(p.cachedInput())) / 1000 }

// OutputNanoUSD is the price of one output token, in nano-dollars.
func (p Price) OutputNanoUSD() float64 { return float64(picoPerToken(p.Output)) / 1000 }

// picoPerToken converts dollars per million tokens to pico-dollars (1e-12
// USD) per token, the unit NanoUSD computes in: 0.15 becomes 150000. A
// price outside 0 to MaxPrice is taken as the nearer bound, NaN as 0.
func picoPerToken(usdPerMillion float64) uint64 {
	if !(usdPerMillion > 0) {
		return 0
	}
	return uint64(math.Round(min(usdPerMillion, MaxPrice) * 1e6))
}

// Entry prices one model, or every model a glob matches.
type Entry struct {
	// Pattern is a model name or a glob with '*', '?' and [classes], as
	// keystore.MatchModel matches them.
	Pattern string
	// Price is what the model's tokens cost.
	Price
}

// MaxEntries is the most entries a Table holds, defaults included: a
// lookup tries the globs one by one.
const MaxEntries = 1024

// Table prices models by name. The most specific entry matching a model
// wins: an exact name beats any glob; among globs, the one with the most
// characters that are not wildcards ('*', '?' or a [class]); on a tie, the
// later entry, so an entry put after the defaults overrides a default of
// the same pattern. A Table is immutable and safe for concurrent use; a nil
// *Table prices no model.
type Table struct {
	prices keystore.ModelRules[Price]
}

// NewTable builds a Table from entries, checking each pattern
// (keystore.ValidModelPattern) and price (Price.Validate).
func NewTable(entries []Entry) (*Table, error) {
	if len(entries) > MaxEntries {
		return nil, fmt.Errorf("%d prices; at most %d, defaults included", len(entries), MaxEntries)
	}
	t := &Table{}
	for _, e := range entries {
		if e.Pattern == "" {
			return nil, errors.New("a price names no model")
		}
		if err := keystore.ValidModelPattern(e.Pattern); err != nil {
			return nil, fmt.Errorf("a price's model: %v", err)
		}
		if err := e.Price.Validate(); err != nil {
			return nil, fmt.Errorf("price of %s: %v", e.Pattern, err)
		}
		t.prices.Add(e.Pattern, e.Price)
	}
	return t, nil
}

// Lookup returns the price of model from the most specific entry that
// matches it, and false when none does.
func (t *Table) Lookup(model string) (Price, bool) {
	if t == nil {
		return Price{}, false
	}
	return t.prices.Lookup(model)
}
