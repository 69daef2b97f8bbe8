package cli

// hosts.go: caddy aiproxy hosts list|addkey.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// host is a provider host as GET /admin/hosts lists it: hints of its keys,
// never a key.
type host struct {
	Name    string    `json:"name"`
	BaseURL string    `json:"base_url"`
	Source  string    `json:"source"`
	Default bool      `json:"default"`
	Models  []string  `json:"models"`
	Keys    []hostKey `json:"keys"`
}

type hostKey struct {
	ID      string    `json:"id"`
	KeyHint string    `json:"key_hint"`
	State   *keyState `json:"state"`
}

// keyState is why a key is out of use, or was lately failing; nil: in use.
type keyState struct {
	Status string     `json:"status"`
	Reason string     `json:"reason"`
	Until  *time.Time `json:"until"`
	Errors int64      `json:"errors"`
}

func hostsCommand(opts *options) *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists the provider hosts the site dials, with hints of their keys",
		Args:  exactArgs(),
		RunE:  run(opts, opts.listHosts),
	}
	var baseURL string
	addkey := &cobra.Command{
		Use:   "addkey HOST KEY",
		Short: "Adds a provider key for a host; KEY - reads it from stdin",
		Long: `Adds a provider key for HOST, which requests selecting HOST (X-Host-Final,
or a model routed there) then use in turn with its other keys.

A key given on the command line lands in shell history and is visible in
ps: give KEY as - to read it from the first line of stdin instead, e.g.
  caddy aiproxy hosts addkey api.groq.com - < groq.key

--base-url sets where a new host's requests go (default https://HOST); a
host configured in the Caddyfile keeps the config's.`,
		Args: exactArgs("HOST", "KEY"),
		RunE: run(opts, func(cmd *cobra.Command, c *client, args []string) error {
			return opts.addHostKey(cmd, c, args[0], args[1], baseURL)
		}),
	}
	addkey.Flags().StringVar(&baseURL, "base-url", "", "the host's base URL, e.g. https://api.groq.com/openai")
	return newGroup("hosts", "Lists provider hosts and adds their keys", list, addkey)
}

func (o *options) listHosts(cmd *cobra.Command, c *client, _ []string) error {
	raw, err := c.fetch(cmd.Context(), http.MethodGet, "hosts", nil, nil)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(out(cmd), raw)
	}
	var list struct {
		Data []host `json:"data"`
	}
	if err := c.decode(raw, &list); err != nil {
		return err
	}
	// One row per key, so that each key's ID and state show.
	t := newTable(out(cmd), "HOST", "SOURCE", "BASE URL", "MODELS", "KEY", "KEY ID", "STATE")
	for _, h := range list.Data {
		source := h.Source
		if h.Default {
			source += ",default"
		}
		if len(h.Keys) == 0 {
			t.row(h.Name, source, h.BaseURL, showList(h.Models), "", "", "no key")
		}
		for _, k := range h.Keys {
			t.row(h.Name, source, h.BaseURL, showList(h.Models), k.KeyHint, k.ID, showKeyState(k.State))
		}
	}
	return t.flush()
}

// showKeyState shows what the site learnt of a key.
func showKeyState(s *keyState) string {
	if s == nil {
		return "in use"
	}
	var b strings.Builder
	switch s.Status {
	case "resting":
		b.WriteString("resting")
		if s.Until != nil {
			b.WriteString(" until " + s.Until.UTC().Format("15:04:05"))
		}
	case "set_aside":
		b.WriteString("set aside")
	case "ok":
		b.WriteString("in use")
	default:
		b.WriteString(s.Status)
	}
	if s.Reason != "" {
		b.WriteString(" (last failure " + s.Reason)
		if s.Errors > 0 {
			fmt.Fprintf(&b, ", %d in all", s.Errors)
		}
		b.WriteString(")")
	}
	return b.String()
}

// maxKeyLine bounds a key read from stdin.
const maxKeyLine = 64 << 10

func (o *options) addHostKey(cmd *cobra.Command, c *client, hostName, key, baseURL string) error {
	if key == "-" {
		var err error
		if key, err = readKey(cmd.InOrStdin()); err != nil {
			return err
		}
	}
	body := map[string]string{"key": key}
	if baseURL != "" {
		body["base_url"] = baseURL
	}
	raw, err := c.fetch(cmd.Context(), http.MethodPost, "hosts/"+url.PathEscape(hostName)+"/keys", nil, body)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(out(cmd), raw)
	}
	var added struct {
		ID      string `json:"id"`
		Host    string `json:"host"`
		BaseURL string `json:"base_url"`
	}
	if err := c.decode(raw, &added); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out(cmd), "Key %s added to %s (requests go to %s).\n", added.ID, added.Host, added.BaseURL)
	return err
}

// readKey reads a key from the first line of r.
func readKey(r io.Reader) (string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxKeyLine))
	sc.Buffer(make([]byte, 0, 4096), maxKeyLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return "", fail(exitUsage, "reading the key from stdin: %v", err)
		}
		return "", fail(exitUsage, "KEY is -, but stdin is empty: give the key on its first line")
	}
	key := strings.TrimSpace(sc.Text())
	if key == "" {
		return "", fail(exitUsage, "KEY is -, but the first line of stdin is empty")
	}
	return key, nil
}
