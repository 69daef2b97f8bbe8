// Package cli is the `caddy aiproxy` command: users, provider hosts, usage
// and recent requests of a running aiproxy site, through the site's JSON
// admin API (/admin/...). It registers itself with Caddy's command line when
// imported, as the aiproxy module does, so every Caddy built with the module
// has it.
//
// The command is a client only: it talks HTTP to the site given with --site
// and reads the admin token from the environment (AIPROXY_ADMIN_TOKEN),
// never from a flag, which would land in shell history and in ps.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:      "aiproxy",
		Usage:     "<command> [--site <url>] [--json]",
		Short:     "Manages an aiproxy site's users, provider hosts and usage",
		Long:      longHelp,
		CobraFunc: build,
	})
}

// TokenEnv is the environment variable the admin token is read from.
const TokenEnv = "AIPROXY_ADMIN_TOKEN"

// defaultSite is the site example.Caddyfile serves.
const defaultSite = "http://localhost:8080"

// Exit codes.
const (
	exitOK          = 0 // done
	exitRefused     = 1 // the site answered with an error: token refused, not found, bad input...
	exitUsage       = 2 // wrong arguments or flags, or no admin token set
	exitUnreachable = 3 // the site could not be reached
)

const longHelp = `
Manages a running aiproxy site through its admin API (/admin/...): users
and their keys, provider hosts and their keys, usage statistics and the
most recent requests.

The admin token is read from the environment variable AIPROXY_ADMIN_TOKEN
(never from a flag, so that it stays out of shell history and ps). The
site is given with --site (default http://localhost:8080); a URL without
a scheme is taken as https, or http for localhost.

Commands:
  users list                       users, with a hint of their key
  users add NAME [flags]           create a user; prints the new key, once
  users reset NAME                 a new key for the user; the old one stops working
  users rm NAME                    delete the user; its key stops working
  usage [--from D] [--to D] [--user U] [--model M] [--csv]
                                   usage per day, user and model
  hosts list                       provider hosts and hints of their keys
  hosts addkey HOST KEY [--base-url U]
                                   add a provider key (KEY "-" reads it from stdin)
  requests [--user U] [--limit N]  the most recent requests, newest first

Output is an aligned table; --json prints the admin API's JSON instead,
for scripts. Keys are shown only as hints (sk-cfw... and the last 4
characters), except the new key that users add and users reset print.

Exit codes:
  0  done
  1  the site refused: wrong admin token, not found, invalid input, ...
  2  usage error: wrong arguments or flags, or AIPROXY_ADMIN_TOKEN not set
  3  the site could not be reached (not running, wrong --site)

Example:
  $ export AIPROXY_ADMIN_TOKEN=...the site's admin_token...
  $ caddy aiproxy users add alice --ttl 720h --rpm 60 --budget-usd 20
  $ caddy aiproxy usage --site https://gpt.example.com --from 2026-11-01
`

// options are the flags every command takes.
type options struct {
	site string
	json bool
}

// build fills in the aiproxy command and its subcommands.
func build(cmd *cobra.Command) {
	opts := &options{}
	cmd.PersistentFlags().StringVar(&opts.site, "site", defaultSite, "URL of the aiproxy site")
	cmd.PersistentFlags().BoolVar(&opts.json, "json", false, "print the admin API's JSON instead of a table")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError(c, "%v", err)
	})
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = group
	cmd.SuggestionsMinimumDistance = 2

	cmd.AddCommand(usersCommand(opts), usageCommand(opts), hostsCommand(opts), requestsCommand(opts))
	silence(cmd)
}

// group runs a command that only holds others: named alone, it shows its
// help; with an unknown command, it says so.
func group(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Help()
		return exitWith(cmd, exitUsage)
	}
	if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
		return usageError(cmd, "unknown command %q for %q; did you mean %q?", args[0], cmd.CommandPath(), near[0])
	}
	return usageError(cmd, "unknown command %q for %q", args[0], cmd.CommandPath())
}

// newGroup returns a command that holds others.
func newGroup(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: group, SuggestionsMinimumDistance: 2}
	cmd.AddCommand(subs...)
	return cmd
}

// silence makes cmd and its subcommands print their own errors: cobra's
// "Error: ..." and usage dump would come on top of them otherwise.
func silence(cmd *cobra.Command) {
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	for _, sub := range cmd.Commands() {
		silence(sub)
	}
}

// exactArgs accepts exactly the named arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usageError(cmd, "missing %s", strings.Join(names[len(args):], " and "))
		case len(args) > len(names):
			return usageError(cmd, "unexpected argument %q", args[len(names)])
		}
		return nil
	}
}

// cliError is a failure with its exit code and a message for the user.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &cliError{code: code, msg: fmt.Sprintf(format, args...)}
}

// usageError reports a wrong invocation of cmd, with where to find its
// usage, and exits 2.
func usageError(cmd *cobra.Command, format string, args ...any) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "caddy aiproxy: %s\nRun '%s --help' for usage.\n", fmt.Sprintf(format, args...), cmd.CommandPath())
	return exitWith(cmd, exitUsage)
}

// run adapts a command's function to cobra: it prints the function's error
// and exits with its code.
func run(opts *options, fn func(cmd *cobra.Command, c *client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := newClient(opts.site, os.Getenv(TokenEnv))
		if err == nil {
			if c.site.Scheme == "http" && !isLoopback(c.site.Hostname()) {
				fmt.Fprintf(cmd.ErrOrStderr(), "caddy aiproxy: warning: %s is plain http: the admin token crosses the network unencrypted\n", c.siteString())
			}
			err = fn(cmd, c, args)
		}
		if err == nil {
			return nil
		}
		code := exitRefused
		var ce *cliError
		if errors.As(err, &ce) {
			code = ce.code
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "caddy aiproxy: %v\n", err)
		return exitWith(cmd, code)
	}
}

// errExit makes Caddy's main exit with status 1; the message was printed.
var errExit = errors.New("caddy aiproxy failed")

// exitWith returns what makes Caddy's main exit with code: it exits 1 on
// any error, and with the status of an error made by
// WrapCommandFuncForCobra for a status above 1.
func exitWith(cmd *cobra.Command, code int) error {
	switch code {
	case exitOK:
		return nil
	case exitRefused:
		return errExit
	}
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return code, nil })(cmd, nil)
}

// out is where a command's results go.
func out(cmd *cobra.Command) io.Writer { return cmd.OutOrStdout() }
