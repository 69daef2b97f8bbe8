package cli

// usage.go: caddy aiproxy usage.

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// usageRow is a row of GET /admin/usage: one user, model and day.
type usageRow struct {
	Date              string      `json:"date"`
	User              string      `json:"user"`
	Model             string      `json:"model"`
	Requests          int64       `json:"requests"`
	PromptTokens      int64       `json:"prompt_tokens"`
	CompletionTokens  int64       `json:"completion_tokens"`
	TotalTokens       int64       `json:"total_tokens"`
	EstimatedRequests int64       `json:"estimated_requests"`
	CostUSD           json.Number `json:"cost_usd"`
}

func usageCommand(opts *options) *cobra.Command {
	var from, to, user, model string
	var csv bool
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Shows usage per day, user and model (default: the last 30 days)",
		Long: `Shows usage per day (UTC), user and model: requests, tokens and cost.

--from and --to are dates such as 2026-11-01, inclusive (default: the 30
days up to today, at most 366 days). --csv prints the site's CSV report,
--json its JSON.`,
		Args: exactArgs(),
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "first day, YYYY-MM-DD")
	fl.StringVar(&to, "to", "", "last day, YYYY-MM-DD")
	fl.StringVar(&user, "user", "", "only this user")
	fl.StringVar(&model, "model", "", "only this model")
	fl.BoolVar(&csv, "csv", false, "print CSV")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if csv && opts.json {
			return usageError(cmd, "give --csv or --json, not both")
		}
		return run(opts, func(cmd *cobra.Command, c *client, _ []string) error {
			q := url.Values{}
			for name, v := range map[string]string{"from": from, "to": to, "user": user, "model": model} {
				if v != "" {
					q.Set(name, v)
				}
			}
			return opts.showUsage(cmd, c, q, csv)
		})(cmd, args)
	}
	return cmd
}

func (o *options) showUsage(cmd *cobra.Command, c *client, q url.Values, csv bool) error {
	switch {
	case csv:
		q.Set("format", "csv")
		return c.copyTo(cmd.Context(), out(cmd), http.MethodGet, "usage", q, nil, "text/csv")
	case o.json:
		// Streamed as it comes: a year of a team's usage is large.
		return c.copyTo(cmd.Context(), out(cmd), http.MethodGet, "usage", q, nil, "application/json")
	}
	raw, err := c.fetch(cmd.Context(), http.MethodGet, "usage", q, nil)
	if err != nil {
		return err
	}
	var report struct {
		Data []usageRow `json:"data"`
	}
	if err := c.decode(raw, &report); err != nil {
		return err
	}
	if len(report.Data) == 0 {
		_, err := fmt.Fprintln(cmd.ErrOrStderr(), "No usage in that range.")
		return err
	}
	var sum usageRow
	cost := new(big.Rat)
	t := newTable(out(cmd), "DATE", "USER", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "TOTAL", "COST (USD)")
	for _, r := range report.Data {
		t.row(r.Date, r.User, r.Model, showRequests(r), showInt(r.PromptTokens), showInt(r.CompletionTokens),
			showInt(r.TotalTokens), r.CostUSD.String())
		sum.Requests += r.Requests
		sum.EstimatedRequests += r.EstimatedRequests
		sum.PromptTokens += r.PromptTokens
		sum.CompletionTokens += r.CompletionTokens
		sum.TotalTokens += r.TotalTokens
		addUSD(cost, r.CostUSD.String())
	}
	if len(report.Data) > 1 {
		t.row("total", "", "", showRequests(sum), showInt(sum.PromptTokens), showInt(sum.CompletionTokens),
			showInt(sum.TotalTokens), showUSD(cost))
	}
	return t.flush()
}

// showRequests shows a row's requests, and how many of them had no usage
// reported, so that their tokens are estimated.
func showRequests(r usageRow) string {
	if r.EstimatedRequests > 0 {
		return fmt.Sprintf("%d (%d estimated)", r.Requests, r.EstimatedRequests)
	}
	return showInt(r.Requests)
}

// addUSD adds an exact US dollar amount such as "0.0009672" to sum;
// "" (no cost) adds nothing.
func addUSD(sum *big.Rat, usd string) {
	if v, ok := new(big.Rat).SetString(usd); ok {
		sum.Add(sum, v)
	}
}

// showUSD shows an exact sum of US dollars without trailing zeros; nothing
// for 0. Costs come in nano-dollars at most, 9 decimals.
func showUSD(sum *big.Rat) string {
	if sum.Sign() == 0 {
		return ""
	}
	return strings.TrimSuffix(strings.TrimRight(sum.FloatString(9), "0"), ".")
}
