package aiproxy

import (
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/keystore"
)

// logStart says at Info, at each config load, what the gateway runs with:
// the store and where its data is, the upstreams with how many keys each
// has, and which route groups are on. It never logs a key, the admin token
// or a password. It warns when the default upstream has no key, for then
// every request without X-Host-Final gets 503 no_upstream_key, unless the
// store's hosts, which may hold its keys, could not be read.
func (h *Handler) logStart() {
	store := []zap.Field{zap.String("backend", caddy.GetModuleName(h.store))}
	if d, ok := h.store.(keystore.Describer); ok {
		store = append(store, d.Describe()...)
	}
	snap := h.hosts.snapshot()
	def := snap.defaultHost
	others := []upstreamSummary{}
	for name, u := range snap.byName {
		if u != def {
			others = append(others, upstreamSummary{Name: name, Keys: len(u.keys)})
		}
	}
	slices.SortFunc(others, func(a, b upstreamSummary) int { return strings.Compare(a.Name, b.Name) })

	h.logger.Info("aiproxy ready",
		zap.Dict("store", store...),
		zap.Dict("upstream", zap.String("name", def.name), zap.Int("keys", len(def.keys))),
		zap.Any("hosts", others),
		zap.Bool("seed_admin_paths", h.seedAdminPaths()),
		zap.Bool("self_service", h.SelfService == nil || *h.SelfService),
		zap.String("cors", h.corsSummary()),
	)
	if len(def.keys) == 0 && h.hostsRead {
		fields := []zap.Field{zap.String("host", def.name)}
		if unset := h.unsetKeyVariables(); len(unset) > 0 {
			fields = append(fields, zap.Strings("unset_variables", unset))
		}
		h.logger.Warn("the default upstream has no API key: requests without X-Host-Final get 503 no_upstream_key "+
			"until one is configured (upstream <base_url> {env.OPENAI_API_KEY}) or added at run time (addkey)",
			fields...)
	}
}

// upstreamSummary is what the start log says of a host.
type upstreamSummary struct {
	Name string `json:"name"`
	Keys int    `json:"keys"`
}

// corsSummary is the cors option as written: "*", the origins, or "off".
func (h *Handler) corsSummary() string {
	switch {
	case h.DisableCORS:
		return "off"
	case len(h.CORSOrigins) == 0:
		return "*"
	}
	return strings.Join(h.CORSOrigins, " ")
}

// unsetKeyVariables names the environment variables the default upstream's
// keys come from that are unset or empty.
func (h *Handler) unsetKeyVariables() []string {
	if h.Upstream == nil {
		return nil
	}
	repl := caddy.NewReplacer()
	var unset []string
	for _, k := range h.Upstream.Keys {
		if env := envPlaceholder(k); env != "" && strings.TrimSpace(repl.ReplaceKnown(k, "")) == "" {
			unset = append(unset, env)
		}
	}
	return unset
}
