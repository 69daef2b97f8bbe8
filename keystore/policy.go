package keystore

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
	"unicode/utf8"
)

// Policy is what a user may spend: the models it may call, its rate limits
// and its budget. A field left nil takes the site's default; a limit of 0
// means no limit on that axis, whatever the default.
type Policy struct {
	// Models lists the models the user may call: exact names or globs with
	// '*' (path.Match syntax). nil: the site default (any model if none).
	Models []string `json:"models,omitempty"`
	// Limits caps the user's request rate and requests in flight.
	Limits *Limits `json:"limits,omitempty"`
	// Budget caps what the user spends in a calendar period.
	Budget *Budget `json:"budget,omitempty"`
}

// Limits are per-minute rates, over a sliding minute, and a cap on requests
// in flight. A nil field takes the site default; 0 means unlimited.
type Limits struct {
	// RPM is the most requests per minute.
	RPM *int64 `json:"rpm,omitempty"`
	// TPM is the most tokens (input and output) per minute.
	TPM *int64 `json:"tpm,omitempty"`
	// MaxParallel is the most requests in flight at once; a stream counts
	// until it ends.
	MaxParallel *int64 `json:"max_parallel,omitempty"`
}

// Budget caps spending over a period. A nil field takes the site default;
// 0 means unlimited.
type Budget struct {
	// Tokens is the most tokens (input and output) per period.
	Tokens *int64 `json:"tokens,omitempty"`
	// Requests is the most requests per period.
	Requests *int64 `json:"requests,omitempty"`
	// USD is the most spent per period, in US dollars, at the site's prices.
	USD *float64 `json:"usd,omitempty"`
	// Period is day, week, month (UTC calendar, weeks from Monday) or
	// total (never resets). Empty: the site default, else month.
	Period Period `json:"period,omitempty"`
}

// Bounds of a Policy, so that a record stays small and a limit stays within
// what the stores' integer counters hold.
const (
	// MaxModelPatterns is the longest models list.
	MaxModelPatterns = 256
	// MaxModelPatternLen is the longest models entry, in bytes.
	MaxModelPatternLen = 128
	// MaxLimit is the largest count a limit or budget may take.
	MaxLimit = int64(1) << 50
	// MaxBudgetUSD is the largest USD budget: a million dollars.
	MaxBudgetUSD = 1e6
)

// Validate reports the first thing wrong with p, in words an admin can act on.
func (p Policy) Validate() error {
	if p.Models != nil {
		if err := ValidModelPatterns(p.Models); err != nil {
			return err
		}
	}
	if l := p.Limits; l != nil {
		for _, f := range []struct {
			name string
			v    *int64
		}{{"rpm", l.RPM}, {"tpm", l.TPM}, {"max_parallel", l.MaxParallel}} {
			if err := validCount("limits."+f.name, f.v); err != nil {
				return err
			}
		}
	}
	if b := p.Budget; b != nil {
		if err := validCount("budget.tokens", b.Tokens); err != nil {
			return err
		}
		if err := validCount("budget.requests", b.Requests); err != nil {
			return err
		}
		if b.USD != nil && (math.IsNaN(*b.USD) || *b.USD < 0 || *b.USD > MaxBudgetUSD) {
			return fmt.Errorf("budget.usd: %v is not an amount from 0 to %v dollars", *b.USD, MaxBudgetUSD)
		}
		if b.Period != "" {
			if err := b.Period.Validate(); err != nil {
				return fmt.Errorf("budget.period: %v", err)
			}
		}
	}
	return nil
}

func validCount(name string, v *int64) error {
	if v != nil && (*v < 0 || *v > MaxLimit) {
		return fmt.Errorf("%s: %d is not a count from 0 (no limit) to %d", name, *v, MaxLimit)
	}
	return nil
}

// ValidModelPatterns checks a models list: 1 to MaxModelPatterns entries,
// each an exact model name or a glob with '*', '?' or [classes], of valid
// UTF-8 without control characters, at most MaxModelPatternLen bytes.
func ValidModelPatterns(patterns []string) error {
	if len(patterns) == 0 {
		return errors.New(`models: give at least one model or pattern ("*" allows any model)`)
	}
	if len(patterns) > MaxModelPatterns {
		return fmt.Errorf("models: %d entries; at most %d", len(patterns), MaxModelPatterns)
	}
	for _, p := range patterns {
		if err := ValidModelPattern(p); err != nil {
			return fmt.Errorf("models: %w", err)
		}
	}
	return nil
}

// ValidModelPattern checks one models entry (see ValidModelPatterns).
func ValidModelPattern(p string) error {
	switch {
	case p == "":
		return errors.New("an entry is empty")
	case len(p) > MaxModelPatternLen:
		return fmt.Errorf("%q is longer than %d bytes", p[:32]+"...", MaxModelPatternLen)
	case !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("%q has a control character or invalid UTF-8", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern (use *, ? and [a-z] classes)", p)
	}
	return nil
}

// IsModelGlob reports whether a models entry is a glob, matching names by
// '*', '?' or [classes], rather than an exact model name.
func IsModelGlob(pattern string) bool {
	return strings.ContainsAny(pattern, "*?[")
}

// MatchModel reports whether model matches one of patterns (see
// ValidModelPatterns). A '*' also matches '/', so "meta-llama/*" and "*"
// match names with slashes.
func MatchModel(patterns []string, model string) bool {
	for _, p := range patterns {
		if p == model || globMatch(p, model) {
			return true
		}
	}
	return false
}

// globMatch is path.Match with '*' and '?' matching '/' too: model names
// such as "meta-llama/Llama-3" are not paths. Slashes are swapped for a
// control character, which patterns cannot hold (see ValidModelPatterns).
func globMatch(pattern, name string) bool {
	if !IsModelGlob(pattern) {
		return false
	}
	ok, _ := path.Match(strings.ReplaceAll(pattern, "/", "\x01"), strings.ReplaceAll(name, "/", "\x01"))
	return ok
}

// Over returns p with every field it leaves nil taken from defaults: the
// policy a user's requests are held to.
func (p Policy) Over(defaults Policy) Policy {
	out := Policy{Models: p.Models}
	if out.Models == nil {
		out.Models = defaults.Models
	}
	if p.Limits != nil || defaults.Limits != nil {
		own, def := deref(p.Limits), deref(defaults.Limits)
		out.Limits = &Limits{
			RPM:         firstSet(own.RPM, def.RPM),
			TPM:         firstSet(own.TPM, def.TPM),
			MaxParallel: firstSet(own.MaxParallel, def.MaxParallel),
		}
	}
	if p.Budget != nil || defaults.Budget != nil {
		own, def := deref(p.Budget), deref(defaults.Budget)
		out.Budget = &Budget{
			Tokens:   firstSet(own.Tokens, def.Tokens),
			Requests: firstSet(own.Requests, def.Requests),
			USD:      firstSet(own.USD, def.USD),
			Period:   own.Period,
		}
		if out.Budget.Period == "" {
			out.Budget.Period = def.Period
		}
	}
	return out
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func firstSet[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// Allowance is what p allows per request, its USD budget in nano-dollars.
func (p Policy) Allowance() Allowance {
	var a Allowance
	if l := p.Limits; l != nil {
		a.RPM, a.TPM, a.MaxParallel = deref(l.RPM), deref(l.TPM), deref(l.MaxParallel)
	}
	if b := p.Budget; b != nil {
		a.BudgetTokens, a.BudgetRequests = deref(b.Tokens), deref(b.Requests)
		usd := deref(b.USD)
		a.BudgetNanoUSD = int64(math.Round(usd * 1e9))
		if a.BudgetNanoUSD == 0 && usd > 0 {
			a.BudgetNanoUSD = 1 // a budget, however small, is no "no limit"
		}
		a.Period = b.Period
	}
	return a
}
