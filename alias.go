package aiproxy

// alias.go: public model names that stand for a host's own model. Clients
// ask for the public name; the request goes to the alias's host, with the
// provider's name in place of the public one in the body, and is counted
// under the public name.

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/meter"
)

// AliasConfig is a public model name for a host's model.
type AliasConfig struct {
	// Name is the model name clients ask for, e.g. "fast". An exact name,
	// not a glob.
	Name string `json:"name"`

	// Host is the configured host (its name, as in X-Host-Final) that
	// serves the alias; the default upstream's name is one too.
	Host string `json:"host"`

	// Model is the host's own name of the model, put in place of Name in
	// the request body, e.g. "llama-3.3-70b-versatile".
	Model string `json:"model"`
}

// aliasTarget is where an alias leads.
type aliasTarget struct {
	host  string // a configured host's name
	model string // the provider's model name
}

// resolveAliases checks the configured aliases against the configured
// hosts and returns them by public name.
func resolveAliases(aliases []AliasConfig, hosts configuredHosts) (map[string]aliasTarget, error) {
	if len(aliases) == 0 {
		return nil, nil
	}
	names := map[string]bool{hosts.defaultHost.name: true}
	for _, u := range hosts.hosts {
		names[u.name] = true
	}
	out := make(map[string]aliasTarget, len(aliases))
	for i, a := range aliases {
		switch {
		case keystore.ValidModelPattern(a.Name) != nil || keystore.IsModelGlob(a.Name):
			return nil, fmt.Errorf("aliases[%d]: %q is not a model name (an alias is an exact name, not a pattern)", i, a.Name)
		case keystore.ValidModelPattern(a.Model) != nil || keystore.IsModelGlob(a.Model):
			return nil, fmt.Errorf("alias %s: %q is not a model name", a.Name, a.Model)
		case !names[strings.ToLower(a.Host)]:
			return nil, fmt.Errorf("alias %s: no host %q is configured; name the default upstream's host or a host block", a.Name, a.Host)
		}
		if _, dup := out[a.Name]; dup {
			return nil, fmt.Errorf("alias %s is given twice; keep one", a.Name)
		}
		out[a.Name] = aliasTarget{host: strings.ToLower(a.Host), model: a.Model}
	}
	return out, nil
}

// applyAlias returns r sending the provider's model name in place of the
// alias, with the body's other bytes as they came. ok is false when the
// body cannot be edited (then nothing changed).
func applyAlias(r *http.Request, held *heldBody, to aliasTarget) (*http.Request, bool) {
	if held == nil || held.body == nil {
		return r, false
	}
	edits, ok := meter.StringEdits(held.body, "model", to.model)
	if !ok {
		return r, false
	}
	held.addEdits(edits)
	return withBody(r, held, held.size()), true
}
