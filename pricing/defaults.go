package pricing

// defaults.go: OpenAI's prices and answer lengths, built in so that a site
// on api.openai.com needs no price lines.

import "github.com/aiproxy/aiproxy/keystore"

// DefaultPricesDate is when the Default prices were last checked against
// OpenAI's pricing page.
const DefaultPricesDate = "2026-12-01"

// defaultPrices are OpenAI's standard-tier prices of text tokens, in US
// dollars per million tokens: input, output, cached input (0: no discount
// for cached input). Source: OpenAI's API pricing page,
// https://platform.openai.com/docs/pricing (now at
// https://developers.openai.com/api/docs/pricing), as of
// DefaultPricesDate, checked against LiteLLM's copy of it
// (model_prices_and_context_window.json). Each model comes with a glob for
// its dated snapshots ("gpt-4o-2024-08-06"); the globs end in "-20*", not
// "-*", so that "gpt-4o-*" does not also price gpt-4o-mini,
// gpt-4o-realtime-preview or o3-pro at the wrong price: a model no entry
// names stays unpriced. Snapshots priced unlike their model are listed by
// name.
var defaultPrices = []Entry{
	{"gpt-5", Price{1.25, 10.00, 0.125}},
	{"gpt-5-20*", Price{1.25, 10.00, 0.125}},
	{"gpt-5-mini", Price{0.25, 2.00, 0.025}},
	{"gpt-5-mini-20*", Price{0.25, 2.00, 0.025}},
	{"gpt-5-nano", Price{0.05, 0.40, 0.005}},
	{"gpt-5-nano-20*", Price{0.05, 0.40, 0.005}},

	{"gpt-4.1", Price{2.00, 8.00, 0.50}},
	{"gpt-4.1-20*", Price{2.00, 8.00, 0.50}},
	{"gpt-4.1-mini", Price{0.40, 1.60, 0.10}},
	{"gpt-4.1-mini-20*", Price{0.40, 1.60, 0.10}},
	{"gpt-4.1-nano", Price{0.10, 0.40, 0.025}},
	{"gpt-4.1-nano-20*", Price{0.10, 0.40, 0.025}},

	{"gpt-4o", Price{2.50, 10.00, 1.25}},
	{"gpt-4o-20*", Price{2.50, 10.00, 1.25}},
	{"gpt-4o-2024-05-13", Price{5.00, 15.00, 0}}, // the first snapshot, dearer, no cache discount
	{"gpt-4o-mini", Price{0.15, 0.60, 0.075}},
	{"gpt-4o-mini-20*", Price{0.15, 0.60, 0.075}},

	{"o1", Price{15.00, 60.00, 7.50}},
	{"o1-20*", Price{15.00, 60.00, 7.50}},
	{"o3", Price{2.00, 8.00, 0.50}},
	{"o3-20*", Price{2.00, 8.00, 0.50}},
	{"o3-mini", Price{1.10, 4.40, 0.55}},
	{"o3-mini-20*", Price{1.10, 4.40, 0.55}},
	{"o4-mini", Price{1.10, 4.40, 0.275}},
	{"o4-mini-20*", Price{1.10, 4.40, 0.275}},

	{"gpt-4-turbo", Price{10.00, 30.00, 0}},
	{"gpt-4-turbo-20*", Price{10.00, 30.00, 0}},
	{"gpt-4-turbo-preview", Price{10.00, 30.00, 0}},
	{"gpt-4-0125-preview", Price{10.00, 30.00, 0}},
	{"gpt-4-1106-preview", Price{10.00, 30.00, 0}},
	{"gpt-4", Price{30.00, 60.00, 0}},
	{"gpt-4-0613", Price{30.00, 60.00, 0}},
	{"gpt-4-0314", Price{30.00, 60.00, 0}},
	{"gpt-3.5-turbo", Price{0.50, 1.50, 0}},
	{"gpt-3.5-turbo-0125", Price{0.50, 1.50, 0}},
	{"gpt-3.5-turbo-1106", Price{1.00, 2.00, 0}},

	{"text-embedding-3-small", Price{0.02, 0, 0}},
	{"text-embedding-3-large", Price{0.13, 0, 0}},
	{"text-embedding-ada-002", Price{0.10, 0, 0}},
}

// Default returns the built-in prices of OpenAI's models (see
// DefaultPricesDate), a fresh copy: a table of a site's prices puts its
// own entries after these.
func Default() []Entry {
	return append([]Entry(nil), defaultPrices...)
}

// defaultMaxOutput are the most output tokens an answer of each model can
// hold (OpenAI's "max output tokens", reasoning tokens included), as of
// DefaultPricesDate. A family shares the largest of its members: this is
// an upper bound, and a bound too high only reserves more than a request
// uses, while one too low would let it spend past a budget. So "gpt-5*"
// also covers gpt-5-chat-latest (16384), and "o1-*" o1-mini (65536).
// Embeddings answer with no output tokens.
var defaultMaxOutput = func() *keystore.ModelRules[int64] {
	r := &keystore.ModelRules[int64]{}
	for _, e := range []struct {
		pattern string
		tokens  int64
	}{
		{"gpt-5*", 128000},
		{"o1", 100000}, {"o1-*", 100000},
		{"o3", 100000}, {"o3-*", 100000},
		{"o4-mini", 100000}, {"o4-mini-*", 100000},
		{"gpt-4.1", 32768}, {"gpt-4.1-*", 32768},
		{"gpt-4o", 16384}, {"gpt-4o-*", 16384},
		{"gpt-4-turbo", 4096}, {"gpt-4-turbo-*", 4096}, {"gpt-4-*-preview", 4096},
		{"gpt-4", 8192}, {"gpt-4-*", 8192}, // its context window: 8192 tokens
		{"gpt-3.5-turbo", 4096}, {"gpt-3.5-turbo-*", 4096},
		{"text-embedding-*", 0},
	} {
		r.Add(e.pattern, e.tokens)
	}
	return r
}()

// MaxOutput returns the most tokens an answer of model can hold, for the
// OpenAI models this package knows (see defaultMaxOutput), matched as a
// Table matches prices; false for any other model.
func MaxOutput(model string) (int64, bool) {
	return defaultMaxOutput.Lookup(model)
}
