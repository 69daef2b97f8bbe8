package pricing

import (
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/keystore"
)

// TestDefaultPrices: every default model and its snapshots get the
// model's price; a snapshot of a smaller sibling never gets the bigger
// one's ("gpt-4o-mini-..." is not priced as "gpt-4o"); variants priced
// differently that no entry names stay unpriced.
func TestDefaultPrices(t *testing.T) {
	table, err := NewTable(Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		model string
		want  Price
	}{
		{"gpt-5", Price{1.25, 10, 0.125}},
		{"gpt-5-2025-08-07", Price{1.25, 10, 0.125}},
		{"gpt-5-mini", Price{0.25, 2, 0.025}},
		{"gpt-5-mini-2025-08-07", Price{0.25, 2, 0.025}},
		{"gpt-5-nano", Price{0.05, 0.40, 0.005}},
		{"gpt-5-nano-2025-08-07", Price{0.05, 0.40, 0.005}},
		{"gpt-4.1", Price{2, 8, 0.5}},
		{"gpt-4.1-2025-04-14", Price{2, 8, 0.5}},
		{"gpt-4.1-mini", Price{0.4, 1.6, 0.1}},
		{"gpt-4.1-mini-2025-04-14", Price{0.4, 1.6, 0.1}},
		{"gpt-4.1-nano", Price{0.1, 0.4, 0.025}},
		{"gpt-4.1-nano-2025-04-14", Price{0.1, 0.4, 0.025}},
		{"gpt-4o", Price{2.5, 10, 1.25}},
		{"gpt-4o-2024-08-06", Price{2.5, 10, 1.25}},
		{"gpt-4o-2024-11-20", Price{2.5, 10, 1.25}},
		{"gpt-4o-2024-05-13", Price{5, 15, 0}},
		{"gpt-4o-mini", Price{0.15, 0.6, 0.075}},
		{"gpt-4o-mini-2024-07-18", Price{0.15, 0.6, 0.075}},
		{"o1", Price{15, 60, 7.5}},
		{"o1-2024-12-17", Price{15, 60, 7.5}},
		{"o3", Price{2, 8, 0.5}},
		{"o3-2025-04-16", Price{2, 8, 0.5}},
		{"o3-mini", Price{1.1, 4.4, 0.55}},
		{"o3-mini-2025-01-31", Price{1.1, 4.4, 0.55}},
		{"o4-mini", Price{1.1, 4.4, 0.275}},
		{"o4-mini-2025-04-16", Price{1.1, 4.4, 0.275}},
		{"gpt-4-turbo", Price{10, 30, 0}},
		{"gpt-4-turbo-2024-04-09", Price{10, 30, 0}},
		{"gpt-4-turbo-preview", Price{10, 30, 0}},
		{"gpt-4-0125-preview", Price{10, 30, 0}},
		{"gpt-4", Price{30, 60, 0}},
		{"gpt-4-0613", Price{30, 60, 0}},
		{"gpt-3.5-turbo", Price{0.5, 1.5, 0}},
		{"gpt-3.5-turbo-0125", Price{0.5, 1.5, 0}},
		{"gpt-3.5-turbo-1106", Price{1, 2, 0}},
		{"text-embedding-3-small", Price{0.02, 0, 0}},
		{"text-embedding-3-large", Price{0.13, 0, 0}},
		{"text-embedding-ada-002", Price{0.1, 0, 0}},
	} {
		if got, ok := table.Lookup(c.model); !ok || got != c.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v", c.model, got, ok, c.want)
		}
	}
	for _, model := range []string{
		"gpt-4o-realtime-preview", // $5/$20: a "gpt-4o-*" glob would have priced it as gpt-4o
		"gpt-4o-mini-tts",
		"o3-pro", "o3-deep-research", "o4-mini-deep-research",
		"o1-mini", "gpt-5-pro", "gpt-5.4", "gpt-4.5-preview",
		"gpt-3.5-turbo-instruct", "llama-3.3-70b-versatile", "",
	} {
		if p, ok := table.Lookup(model); ok {
			t.Errorf("Lookup(%q) = %+v; want no default price", model, p)
		}
	}
}

// TestDefaultPricesWellFormed: the defaults build a table, each pattern
// given once, each snapshot glob ends in "-20*" (a year), and the date is
// a date.
func TestDefaultPricesWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Default() {
		if seen[e.Pattern] {
			t.Errorf("%s is priced twice", e.Pattern)
		}
		seen[e.Pattern] = true
		if keystore.IsModelGlob(e.Pattern) && e.Pattern[len(e.Pattern)-4:] != "-20*" {
			t.Errorf("%s: a snapshot glob should end in -20*", e.Pattern)
		}
	}
	if _, err := time.Parse(time.DateOnly, DefaultPricesDate); err != nil {
		t.Errorf("DefaultPricesDate: %v", err)
	}
	d := Default()
	d[0].Input = 1e6
	if Default()[0].Input == 1e6 {
		t.Error("Default returned the package's own slice")
	}
}

// TestMaxOutput: the largest answer of known models and their snapshots;
// unknown models are not guessed.
func TestMaxOutput(t *testing.T) {
	for _, c := range []struct {
		model string
		want  int64
	}{
		{"gpt-5", 128000},
		{"gpt-5-mini-2025-08-07", 128000},
		{"gpt-5-nano", 128000},
		{"gpt-5-chat-latest", 128000}, // 16384 in fact: an upper bound errs high
		{"gpt-5.4", 128000},
		{"o1", 100000},
		{"o1-2024-12-17", 100000},
		{"o3", 100000},
		{"o3-2025-04-16", 100000},
		{"o3-mini", 100000},
		{"o4-mini", 100000},
		{"o4-mini-2025-04-16", 100000},
		{"gpt-4.1", 32768},
		{"gpt-4.1-mini-2025-04-14", 32768},
		{"gpt-4.1-nano", 32768},
		{"gpt-4o", 16384},
		{"gpt-4o-2024-08-06", 16384},
		{"gpt-4o-mini", 16384},
		{"gpt-4o-mini-2024-07-18", 16384},
		{"gpt-4-turbo", 4096},
		{"gpt-4-turbo-2024-04-09", 4096},
		{"gpt-4-0125-preview", 4096},
		{"gpt-4", 8192},
		{"gpt-4-0613", 8192},
		{"gpt-3.5-turbo", 4096},
		{"gpt-3.5-turbo-0125", 4096},
		{"text-embedding-3-small", 0},
	} {
		if got, ok := MaxOutput(c.model); !ok || got != c.want {
			t.Errorf("MaxOutput(%q) = %d, %v; want %d", c.model, got, ok, c.want)
		}
	}
	for _, model := range []string{"", "llama-3.3-70b-versatile", "gpt-4x", "o2", "claude-3-opus"} {
		if n, ok := MaxOutput(model); ok {
			t.Errorf("MaxOutput(%q) = %d; want unknown", model, n)
		}
	}
}
