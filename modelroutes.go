package aiproxy

// modelroutes.go: the host a request's model picks, when the client names
// none with X-Host-Final.

import (
	"github.com/aiproxy/aiproxy/keystore"
)

// modelRoutes maps models to the hosts that serve them (HostConfig.Models).
type modelRoutes struct {
	rules keystore.ModelRules[*host]
	hosts []*host // the hosts that list models, in config order
	any   bool    // some host lists models
}

// newModelRoutes builds the routes of hosts, given in config order. Of two
// equally specific patterns the first host's wins, and ModelRules keeps
// the later of two: the hosts go in last first.
func newModelRoutes(hosts []*host) modelRoutes {
	var m modelRoutes
	for i := len(hosts) - 1; i >= 0; i-- {
		for _, p := range hosts[i].models {
			m.rules.Add(p, hosts[i])
			m.any = true
		}
	}
	for _, u := range hosts {
		if len(u.models) > 0 {
			m.hosts = append(m.hosts, u)
		}
	}
	return m
}

// others returns the hosts other than first that serve model, in config
// order: where a request goes when first fails.
func (m *modelRoutes) others(model string, first *host) []*host {
	var out []*host
	for _, u := range m.hosts {
		if u != first && keystore.MatchModel(u.models, model) {
			out = append(out, u)
		}
	}
	return out
}

// host returns the host serving model, or nil when none lists it.
func (m *modelRoutes) host(model string) *host {
	if !m.any || model == "" {
		return nil
	}
	u, _ := m.rules.Lookup(model)
	return u
}
