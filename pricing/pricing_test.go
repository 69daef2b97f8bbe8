package pricing

import (
	"math"
	"strings"
	"testing"
)

// TestNanoUSD: the cost of a request in nano-dollars, exact and rounded up.
func TestNanoUSD(t *testing.T) {
	mini := Price{Input: 0.15, Output: 0.60, CachedInput: 0.075}
	for _, c := range []struct {
		name                       string
		p                          Price
		prompt, cached, completion int64
		want                       int64
	}{
		{"nothing", mini, 0, 0, 0, 0},
		{"one input token", mini, 1, 0, 0, 150},
		{"one output token", mini, 0, 0, 1, 600},
		{"cached at its own price", mini, 1000, 200, 50, 800*150 + 200*75 + 50*600},
		{"a million of each", mini, 1e6, 0, 1e6, 0.75e9},
		{"cached at the input price when it has none", Price{Input: 2, Output: 8}, 10, 10, 0, 10 * 2000},
		{"more cached than prompt counts the prompt", mini, 10, 50, 0, 10 * 75},
		{"negative counts are zero", mini, -5, -1, -7, 0},
		{"fractions of a nano-dollar round up", Price{Input: 0.0001}, 1, 0, 0, 1},                      // 0.1 nano
		{"rounding up is of the sum, not each part", Price{Input: 0.0004, Output: 0.0006}, 1, 0, 1, 1}, // 0.4 + 0.6
		{"decimals that binary floats miss are exact", Price{Input: 0.275, Output: 4.4}, 3, 0, 7, 3*275 + 7*4400},
		{"digits past a pico-dollar per token round off", Price{Input: 0.0000004}, 1e9, 0, 0, 0},
		{"free model", Price{}, 1e9, 0, 1e9, 0},
		{"most tokens at the most price saturates", Price{Input: MaxPrice, Output: MaxPrice}, math.MaxInt64, 0, math.MaxInt64, math.MaxInt64},
		{"just below saturation", Price{Output: 1}, 0, 0, math.MaxInt64 / 1000, math.MaxInt64 / 1000 * 1000},
		{"just past int64 saturates", Price{Output: 1}, 0, 0, math.MaxInt64/1000 + 1, math.MaxInt64},
		{"a price past MaxPrice counts as MaxPrice", Price{Input: 1e9}, 1, 0, 0, MaxPrice * 1000},
		{"a NaN price counts as 0", Price{Input: math.NaN(), Output: 1}, 5, 0, 1, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.NanoUSD(c.prompt, c.cached, c.completion); got != c.want {
				t.Errorf("%+v.NanoUSD(%d, %d, %d) = %d, want %d", c.p, c.prompt, c.cached, c.completion, got, c.want)
			}
		})
	}
}

// TestPerTokenPrices: USD per million tokens is nano-dollars per token
// times 1000.
func TestPerTokenPrices(t *testing.T) {
	p := Price{Input: 0.15, Output: 0.6, CachedInput: 0.075}
	if p.InputNanoUSD() != 150 || p.OutputNanoUSD() != 600 || p.CachedInputNanoUSD() != 75 {
		t.Errorf("per token: input %v, output %v, cached %v; want 150, 600, 75", p.InputNanoUSD(), p.OutputNanoUSD(), p.CachedInputNanoUSD())
	}
	if p := (Price{Input: 2.5}); p.CachedInputNanoUSD() != 2500 {
		t.Errorf("cached input without its own price = %v, want the input price 2500", p.CachedInputNanoUSD())
	}
}

func TestPriceValidate(t *testing.T) {
	for _, c := range []struct {
		p   Price
		err string
	}{
		{Price{}, ""},
		{Price{Input: 0.15, Output: 0.6, CachedInput: 0.075}, ""},
		{Price{Input: MaxPrice, Output: MaxPrice, CachedInput: MaxPrice}, ""},
		{Price{Input: -1}, "input price -1 is not an amount from 0 to 1e+06 dollars per million tokens"},
		{Price{Output: math.Inf(1)}, "output price +Inf"},
		{Price{CachedInput: math.NaN()}, "cached input price NaN"},
		{Price{Output: MaxPrice * 2}, "output price 2e+06"},
	} {
		err := c.p.Validate()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%+v.Validate() = %v, want %q", c.p, err, c.err)
		}
	}
}

// TestLookupMostSpecific: an exact name beats any glob, the glob with the
// most literal characters beats the others, and on a tie the later entry
// wins.
func TestLookupMostSpecific(t *testing.T) {
	price := func(n float64) Price { return Price{Input: n} }
	table, err := NewTable([]Entry{
		{"*", price(1)},
		{"m-*", price(2)},
		{"m-long-*", price(3)},
		{"m-long-exact", price(4)},
		{"m-?ong-*", price(5)},     // 6 literals: less specific than m-long-*
		{"x-[ab]-*", price(6)},     // 4 literals
		{"x-*-1", price(7)},        // 4 literals, later: wins the tie
		{"m-long-exact", price(8)}, // an exact name again: the later wins
		{`q\*-*`, price(9)},        // an escaped '*' is a literal
		{"q*", price(10)},
		{"org/*", price(11)}, // '*' matches across '/'
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		model string
		want  float64
	}{
		{"other", 1},
		{"m-short", 2},
		{"m-long-a", 3},
		{"m-long-exact", 8},
		{"m-pong-a", 5},
		{"x-a-1", 7},
		{"x-a-2", 6},
		{"q*-1", 9},
		{"q-1", 10},
		{"org/team/model", 11},
	} {
		got, ok := table.Lookup(c.model)
		if !ok || got.Input != c.want {
			t.Errorf("Lookup(%q) = %v, %v; want input %v", c.model, got, ok, c.want)
		}
	}
}

// TestLookupLaterOverrides: a configured entry after the defaults replaces
// a default of the same pattern, name or glob.
func TestLookupLaterOverrides(t *testing.T) {
	table, err := NewTable(append(Default(),
		Entry{"gpt-4o-mini", Price{Input: 1, Output: 2}},
		Entry{"gpt-4o-mini-20*", Price{Input: 3, Output: 4}},
	))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := table.Lookup("gpt-4o-mini"); p != (Price{Input: 1, Output: 2}) {
		t.Errorf("gpt-4o-mini = %+v, want the configured price", p)
	}
	if p, _ := table.Lookup("gpt-4o-mini-2024-07-18"); p != (Price{Input: 3, Output: 4}) {
		t.Errorf("gpt-4o-mini-2024-07-18 = %+v, want the configured glob's price", p)
	}
	if p, _ := table.Lookup("gpt-4o"); p != (Price{2.5, 10, 1.25}) {
		t.Errorf("gpt-4o = %+v, want the default", p)
	}
}

func TestLookupUnknown(t *testing.T) {
	table, err := NewTable([]Entry{{"a", Price{Input: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"", "b", "A", "a-1"} {
		if p, ok := table.Lookup(model); ok {
			t.Errorf("Lookup(%q) = %+v, true; want no price", model, p)
		}
	}
	var none *Table
	if _, ok := none.Lookup("a"); ok {
		t.Error("a nil table priced a model")
	}
}

func TestNewTableErrors(t *testing.T) {
	many := make([]Entry, MaxEntries+1)
	for i := range many {
		many[i] = Entry{Pattern: "m", Price: Price{}}
	}
	for _, c := range []struct {
		name    string
		entries []Entry
		err     string
	}{
		{"no model", []Entry{{"", Price{}}}, "a price names no model"},
		{"bad glob", []Entry{{"gpt-[", Price{}}}, `a price's model: "gpt-[" is not a valid pattern`},
		{"control character", []Entry{{"a\nb", Price{}}}, "control character"},
		{"negative price", []Entry{{"m", Price{Output: -0.5}}}, "price of m: output price -0.5 is not an amount"},
		{"too many", many, "1025 prices; at most 1024, defaults included"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewTable(c.entries); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("NewTable: %v, want %q", err, c.err)
			}
		})
	}
}
