package cli

// requests.go: caddy aiproxy requests.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// loggedRequest is an entry of GET /admin/requests, the site's log of its
// most recent requests.
type loggedRequest struct {
	Time             time.Time   `json:"time"`
	User             string      `json:"user"`
	Model            string      `json:"model"`
	Host             string      `json:"host"`
	Path             string      `json:"path"`
	Status           int         `json:"status"`
	PromptTokens     int64       `json:"prompt_tokens"`
	CompletionTokens int64       `json:"completion_tokens"`
	CostUSD          json.Number `json:"cost_usd"`
	DurationMS       float64     `json:"duration_ms"` // to the microsecond
	Stream           bool        `json:"stream"`
}

func requestsCommand(opts *options) *cobra.Command {
	var user string
	var limit int
	cmd := &cobra.Command{
		Use:   "requests",
		Short: "Shows the site's most recent requests, newest first",
		Long: `Shows the site's most recent proxied requests, newest first, from its
request log: who, which model and host, the status, tokens, cost and time
taken. A site whose request log is off answers 404.`,
		Args: exactArgs(),
	}
	cmd.Flags().StringVar(&user, "user", "", "only this user's requests")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many (default: the site's)")
	cmd.RunE = run(opts, func(cmd *cobra.Command, c *client, _ []string) error {
		q := url.Values{}
		if user != "" {
			q.Set("user", user)
		}
		if cmd.Flags().Changed("limit") {
			q.Set("limit", strconv.Itoa(limit))
		}
		return opts.showRequests(cmd, c, q)
	})
	return cmd
}

func (o *options) showRequests(cmd *cobra.Command, c *client, q url.Values) error {
	raw, err := c.fetch(cmd.Context(), http.MethodGet, "requests", q, nil)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(out(cmd), raw)
	}
	var log struct {
		Data []loggedRequest `json:"data"`
	}
	if err := c.decode(raw, &log); err != nil {
		return err
	}
	t := newTable(out(cmd), "TIME (UTC)", "USER", "MODEL", "HOST", "PATH", "STATUS", "PROMPT", "COMPLETION", "COST (USD)", "DURATION", "STREAM")
	for _, r := range log.Data {
		stream := "no"
		if r.Stream {
			stream = "yes"
		}
		t.row(r.Time.UTC().Format(time.DateTime), r.User, r.Model, r.Host, r.Path, strconv.Itoa(r.Status),
			showInt(r.PromptTokens), showInt(r.CompletionTokens), r.CostUSD.String(), showDuration(r.DurationMS), stream)
	}
	return t.flush()
}

// showDuration shows milliseconds as a person reads them: 0.25ms, 85ms,
// 2.4s.
func showDuration(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d >= time.Second:
		d = d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(time.Millisecond)
	default:
		d = d.Round(10 * time.Microsecond)
	}
	return strings.Replace(d.String(), "µs", "us", 1)
}
