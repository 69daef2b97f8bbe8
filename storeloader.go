package aiproxy

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/aiproxy/aiproxy/keystore"
)

// loadStore provisions the configured store module. It does what
// ctx.LoadModule would, except registering the module for Caddy's own
// cleanup: Caddy cleans up a config's modules in no set order, and the
// handler must write its pending usage before the store closes, so the
// handler cleans the store up itself (closeStore).
func loadStore(ctx caddy.Context, raw json.RawMessage) (keystore.Store, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("store: %v", err)
	}
	var backend string
	if err := json.Unmarshal(fields["backend"], &backend); err != nil || backend == "" {
		return nil, fmt.Errorf(`store: "backend" must name a store module, e.g. "file" or "redis"`)
	}
	delete(fields, "backend")
	cfg, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	info, err := storeModule(backend)
	if err != nil {
		return nil, err
	}
	mod := info.New()
	if err := caddy.StrictUnmarshalJSON(cfg, mod); err != nil {
		return nil, fmt.Errorf("store %s: %v", backend, err)
	}
	store, ok := mod.(keystore.Store)
	if !ok {
		return nil, fmt.Errorf("store module %s does not implement keystore.Store", info.ID)
	}
	if p, ok := mod.(caddy.Provisioner); ok {
		if err := p.Provision(ctx); err != nil {
			closeStore(store)
			return nil, fmt.Errorf("store %s: %v", backend, err)
		}
	}
	if v, ok := mod.(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			closeStore(store)
			return nil, fmt.Errorf("store %s: %v", backend, err)
		}
	}
	return store, nil
}

// closeStore releases the store's shared handle.
func closeStore(store keystore.Store) error {
	if c, ok := store.(caddy.CleanerUpper); ok {
		return c.Cleanup()
	}
	return nil
}

// storeModule returns the store module of a backend name, or an error that
// lists the backends there are (file, redis and any a build adds).
func storeModule(backend string) (caddy.ModuleInfo, error) {
	info, err := caddy.GetModule(storeNamespace + "." + backend)
	if err == nil {
		return info, nil
	}
	var names []string
	for _, m := range caddy.GetModules(storeNamespace) {
		names = append(names, m.ID.Name())
	}
	return info, fmt.Errorf("store: unknown backend %q; use one of: %s", backend, strings.Join(names, ", "))
}

// storeNamespace is where store modules register.
const storeNamespace = "aiproxy.stores"
