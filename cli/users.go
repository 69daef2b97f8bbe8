package cli

// users.go: caddy aiproxy users list|add|reset|rm.

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// user is a user as GET /admin/users lists it: a hint of the key, never
// the key.
type user struct {
	Name      string     `json:"name"`
	KeyHint   string     `json:"key_hint"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	Models    []string   `json:"models"`
	Limits    *limits    `json:"limits"`
	Budget    *budget    `json:"budget"`
}

type limits struct {
	RPM         *int64 `json:"rpm"`
	TPM         *int64 `json:"tpm"`
	MaxParallel *int64 `json:"max_parallel"`
}

type budget struct {
	Tokens   *int64   `json:"tokens"`
	Requests *int64   `json:"requests"`
	USD      *float64 `json:"usd"`
	Period   string   `json:"period"`
}

// issuedUser answers create and reset: the only time a key is shown.
type issuedUser struct {
	Name      string     `json:"name"`
	Key       string     `json:"key"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func usersCommand(opts *options) *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists the users, with a hint of their key",
		Args:  exactArgs(),
		RunE:  run(opts, opts.listUsers),
	}
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Creates a user and prints its key, shown only this once",
		Long: `Creates a user and prints its key, shown only this once.

Without policy flags the site's default_limits apply to the user. --ttl
is a Go duration such as 720h (30 days); without it the key never expires.`,
		Args: exactArgs("NAME"),
	}
	var f userFlags
	f.register(add)
	add.RunE = run(opts, func(cmd *cobra.Command, c *client, args []string) error {
		return opts.addUser(cmd, c, args[0], &f)
	})
	reset := &cobra.Command{
		Use:   "reset NAME",
		Short: "Gives the user a new key and prints it; the old key stops working at once",
		Args:  exactArgs("NAME"),
		RunE:  run(opts, opts.resetUser),
	}
	rm := &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"delete"},
		Short:   "Deletes the user; its key stops working at once (its usage is kept)",
		Args:    exactArgs("NAME"),
		RunE:    run(opts, opts.removeUser),
	}
	return newGroup("users", "Lists, creates, resets and deletes users", list, add, reset, rm)
}

func (o *options) listUsers(cmd *cobra.Command, c *client, _ []string) error {
	raw, err := c.fetch(cmd.Context(), http.MethodGet, "users", nil, nil)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(out(cmd), raw)
	}
	var list struct {
		Data []user `json:"data"`
	}
	if err := c.decode(raw, &list); err != nil {
		return err
	}
	now := time.Now()
	t := newTable(out(cmd), "NAME", "KEY", "CREATED (UTC)", "EXPIRES (UTC)", "MODELS", "LIMITS", "BUDGET")
	for _, u := range list.Data {
		t.row(u.Name, u.KeyHint, showTime(u.CreatedAt), showExpiry(u.ExpiresAt, now),
			showList(u.Models), showLimits(u.Limits), showBudget(u.Budget))
	}
	return t.flush()
}

// userFlags are the options of users add.
type userFlags struct {
	ttl                string
	models             []string
	rpm, tpm, parallel int64
	usd                float64
	tokens, requests   int64
	period             string
	changed            func(flag string) bool // whether the flag was given
}

func (f *userFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.ttl, "ttl", "", "the key expires after this Go duration, e.g. 720h")
	fl.StringSliceVar(&f.models, "models", nil, "models the user may call, names or globs, comma-separated (e.g. gpt-4o-mini,llama-*)")
	fl.Int64Var(&f.rpm, "rpm", 0, "most requests per minute (0: no limit)")
	fl.Int64Var(&f.tpm, "tpm", 0, "most tokens per minute (0: no limit)")
	fl.Int64Var(&f.parallel, "max-parallel", 0, "most requests in flight at once (0: no limit)")
	fl.Float64Var(&f.usd, "budget-usd", 0, "most US dollars spent per budget period (0: no limit)")
	fl.Int64Var(&f.tokens, "budget-tokens", 0, "most tokens per budget period (0: no limit)")
	fl.Int64Var(&f.requests, "budget-requests", 0, "most requests per budget period (0: no limit)")
	fl.StringVar(&f.period, "budget-period", "", "day, week, month or total (default: the site's, else month)")
	f.changed = fl.Changed
}

// body is the POST /admin/users body: only what the flags set, so that the
// site's defaults apply to the rest.
func (f *userFlags) body(name string) map[string]any {
	set := f.changed
	body := map[string]any{"name": name}
	if set("ttl") {
		body["ttl"] = f.ttl
	}
	if set("models") {
		body["models"] = f.models
	}
	lim := map[string]any{}
	for flag, v := range map[string]any{"rpm": f.rpm, "tpm": f.tpm, "max-parallel": f.parallel} {
		if set(flag) {
			lim[jsonName(flag)] = v
		}
	}
	if len(lim) > 0 {
		body["limits"] = lim
	}
	bud := map[string]any{}
	for flag, v := range map[string]any{"budget-usd": f.usd, "budget-tokens": f.tokens, "budget-requests": f.requests, "budget-period": f.period} {
		if set(flag) {
			bud[jsonName(flag)] = v
		}
	}
	if len(bud) > 0 {
		body["budget"] = bud
	}
	return body
}

// jsonName is the API's member for a flag: budget-usd is "usd",
// max-parallel "max_parallel".
func jsonName(flag string) string {
	switch flag {
	case "max-parallel":
		return "max_parallel"
	case "budget-usd":
		return "usd"
	case "budget-tokens":
		return "tokens"
	case "budget-requests":
		return "requests"
	case "budget-period":
		return "period"
	}
	return flag
}

func (o *options) addUser(cmd *cobra.Command, c *client, name string, f *userFlags) error {
	raw, err := c.fetch(cmd.Context(), http.MethodPost, "users", nil, f.body(name))
	if err != nil {
		return err
	}
	return o.printIssued(cmd, c, raw, "created")
}

func (o *options) resetUser(cmd *cobra.Command, c *client, args []string) error {
	raw, err := c.fetch(cmd.Context(), http.MethodPost, "users/"+url.PathEscape(args[0])+"/reset", nil, nil)
	if err != nil {
		return err
	}
	return o.printIssued(cmd, c, raw, "has a new key; the old one no longer works")
}

// printIssued prints a user's new key, the only time it is shown.
func (o *options) printIssued(cmd *cobra.Command, c *client, raw []byte, what string) error {
	if o.json {
		return printJSON(out(cmd), raw)
	}
	var u issuedUser
	if err := c.decode(raw, &u); err != nil {
		return err
	}
	expires := "never expires"
	if u.ExpiresAt != nil {
		expires = "expires " + showTime(*u.ExpiresAt) + " UTC"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "User %s %s; the key %s. Shown only this once:\n", u.Name, what, expires)
	_, err := fmt.Fprintln(out(cmd), u.Key)
	return err
}

func (o *options) removeUser(cmd *cobra.Command, c *client, args []string) error {
	raw, err := c.fetch(cmd.Context(), http.MethodDelete, "users/"+url.PathEscape(args[0]), nil, nil)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(out(cmd), raw)
	}
	_, err = fmt.Fprintf(out(cmd), "User %s deleted; its key no longer works.\n", args[0])
	return err
}
