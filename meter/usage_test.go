package meter

import "testing"

// TestTokenCountsClamped: every count reads within [0, MaxTokens], so no
// provider answer can overflow the sums it is added to.
func TestTokenCountsClamped(t *testing.T) {
	for raw, want := range map[string]tokenCount{
		`12`:                   {12, true},
		`1.5e2`:                {150, true},
		`-4`:                   {0, true},
		`1099511627776`:        {MaxTokens, true},
		`1099511627777`:        {MaxTokens, true},
		`9223372036854775807`:  {MaxTokens, true},
		`99999999999999999999`: {MaxTokens, true},
		`-9223372036854775808`: {0, true},
		`2e12`:                 {MaxTokens, true},
		`1e400`:                {MaxTokens, true},
		`-1e400`:               {0, true},
		`null`:                 {},
		`"3"`:                  {},
	} {
		if got := parseCount([]byte(raw)); got != want {
			t.Errorf("parseCount(%s) = %+v, want %+v", raw, got, want)
		}
	}

	var u Usage
	u.setUsage([]byte(`{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807}`))
	if u.PromptTokens != MaxTokens || u.CompletionTokens != MaxTokens || u.TotalTokens != 2*MaxTokens {
		t.Errorf("usage of two oversized counts: %+v", u)
	}
}
