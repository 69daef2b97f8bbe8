package admin

import (
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/internal/jsonresp"
	"github.com/aiproxy/aiproxy/keystore"
)

// ConfiguredHost is a host the config names, as the proxy uses it: the
// admin API shows it beside the stored ones, and a run-time key may not
// change its base URL.
type ConfiguredHost struct {
	// Name is the host name clients select it by.
	Name string
	// BaseURL is where its requests go, in keystore.BaseURL's canonical form.
	BaseURL string
	// Default is true for the default upstream.
	Default bool
	// Keys are the config's keys for it; only hints of them are shown.
	Keys []string
	// Models are the models routed to it.
	Models []string
}

// configured returns the configured host of that name, if any.
func (h *Handler) configured(name string) (ConfiguredHost, bool) {
	for _, c := range h.ConfiguredHosts {
		if c.Name == name {
			return c, true
		}
	}
	return ConfiguredHost{}, false
}

// handleListHosts answers GET /admin/hosts: every host the gateway dials,
// configured and run-time, with the base URL it uses and hints of its keys.
// A configured host's base URL is the config's; keys added at run time
// join its own.
func (h *Handler) handleListHosts(w http.ResponseWriter, r *http.Request) {
	stored, err := h.Store.ListHosts(r.Context())
	if err != nil {
		writeError(w, h.storeError(err, "list hosts", "hosts"))
		return
	}
	list := hostList{Data: make([]hostObject, 0, len(h.ConfiguredHosts)+len(stored))}
	index := make(map[string]int)
	for _, c := range h.ConfiguredHosts {
		obj := hostObject{Name: c.Name, BaseURL: c.BaseURL, Source: sourceConfig, Default: c.Default, Models: c.Models, Keys: []hostKeyObject{}}
		for _, k := range c.Keys {
			obj.Keys = append(obj.Keys, hostKeyObject{KeyHint: upstreamKeyHint(k), Source: sourceConfig, State: h.keyState(c.Name, k)})
		}
		index[c.Name] = len(list.Data)
		list.Data = append(list.Data, obj)
	}
	for _, host := range stored {
		obj := newHostObject(host)
		for i, k := range host.Keys {
			obj.Keys[i].State = h.keyState(host.Name, k.Key)
		}
		if i, ok := index[host.Name]; ok {
			list.Data[i].Keys = append(list.Data[i].Keys, obj.Keys...)
			continue
		}
		list.Data = append(list.Data, obj)
	}
	jsonresp.Write(w, http.StatusOK, list)
}

// handleAddHostKey answers POST /admin/hosts/{host}/keys with 201, the new
// key's ID and the host's effective base URL. A base URL that contradicts
// the configured one is refused with 409: the config decides.
func (h *Handler) handleAddHostKey(w http.ResponseWriter, r *http.Request) {
	host, e := h.pathHost(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var req addHostKeyRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if err := validUpstreamKey(req.Key); err != nil {
		writeError(w, invalid("invalid_key", err))
		return
	}

	// baseURL is what the store gets ("" keeps the host's); effective is
	// what requests will use afterwards.
	var baseURL, effective string
	if req.BaseURL != "" {
		parsed, err := keystore.ParseBaseURL(req.BaseURL)
		if err != nil {
			writeError(w, invalid("invalid_base_url", err))
			return
		}
		baseURL, effective = parsed.String(), parsed.String()
	}
	if c, ok := h.configured(host); ok {
		if baseURL != "" && baseURL != c.BaseURL {
			writeError(w, &adminError{status: http.StatusConflict, errType: apierror.TypeInvalidRequest, code: "base_url_conflict",
				msg: fmt.Sprintf("host %s is configured with base URL %s; a run-time key cannot change it: omit base_url, or change the config", host, c.BaseURL)})
			return
		}
		baseURL, effective = "", c.BaseURL // the config's stays the one
	} else if effective == "" {
		// Looked up before the change, so a failure leaves nothing half done.
		if effective, e = h.currentBaseURL(r, host); e != nil {
			writeError(w, e)
			return
		}
	}

	id, e := h.addHostKey(r.Context(), host, baseURL, req.Key)
	if e != nil {
		writeError(w, e)
		return
	}
	jsonresp.Write(w, http.StatusCreated, hostKeyAdded{ID: id, Host: host, BaseURL: effective})
}

// currentBaseURL returns the effective base URL a stored host has now,
// which an added key without base_url leaves unchanged: the default for a
// new host.
func (h *Handler) currentBaseURL(r *http.Request, host string) (string, *adminError) {
	hosts, err := h.Store.ListHosts(r.Context())
	if err != nil {
		return "", h.storeError(err, "list hosts", "hosts", zap.String("host", host))
	}
	for _, stored := range hosts {
		if stored.Name == host {
			return stored.EffectiveBaseURL(), nil
		}
	}
	return keystore.DefaultBaseURL(host), nil
}

// handleDeleteHostKey answers DELETE /admin/hosts/{host}/keys/{id}.
func (h *Handler) handleDeleteHostKey(w http.ResponseWriter, r *http.Request) {
	host, e := h.pathHost(r)
	if e != nil {
		writeError(w, e)
		return
	}
	id := r.PathValue("id")
	if id == "" {
		writeError(w, badRequest("invalid_key_id", "key ID is empty"))
		return
	}
	if e := h.deleteHostKey(r.Context(), host, id); e != nil {
		writeError(w, e)
		return
	}
	jsonresp.Write(w, http.StatusOK, deleted{Deleted: true})
}

// handleDeleteHost answers DELETE /admin/hosts/{host}.
func (h *Handler) handleDeleteHost(w http.ResponseWriter, r *http.Request) {
	host, e := h.pathHost(r)
	if e != nil {
		writeError(w, e)
		return
	}
	if e := h.deleteHost(r.Context(), host); e != nil {
		writeError(w, e)
		return
	}
	jsonresp.Write(w, http.StatusOK, deleted{Deleted: true})
}

// keyState is what this instance learnt of a key, if anything.
func (h *Handler) keyState(host, key string) *KeyState {
	if h.KeyState == nil {
		return nil
	}
	return h.KeyState(host, key)
}

// handleRestoreKeys answers POST /admin/hosts/{host}/restore: the host's
// resting and set-aside keys are used again by this instance.
func (h *Handler) handleRestoreKeys(w http.ResponseWriter, r *http.Request) {
	host, e := h.pathHost(r)
	if e != nil {
		writeError(w, e)
		return
	}
	n := 0
	if h.RestoreKeys != nil {
		n = h.RestoreKeys(host)
	}
	h.logger.Info("provider keys restored", zap.String("host", host), zap.Int("keys", n))
	jsonresp.Write(w, http.StatusOK, keysRestored{Host: host, Restored: n})
}

// handlePatchHost answers PATCH /admin/hosts/{host} {"models":[...]|null}:
// the models routed to a stored host. A configured host's models are the
// config's: 409.
func (h *Handler) handlePatchHost(w http.ResponseWriter, r *http.Request) {
	host, e := h.pathHost(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var req patchHostRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Models == nil {
		writeError(w, badRequest("missing_field", `nothing to change: give "models" (null clears them)`))
		return
	}
	var models []string
	if !isNull(req.Models) {
		if err := strictDecode(req.Models, &models); err != nil {
			writeError(w, badRequest("invalid_models", `"models" must be a list of model names or patterns, or null: %v`, err))
			return
		}
		if err := keystore.ValidModelPatterns(models); err != nil {
			writeError(w, invalid("invalid_models", err))
			return
		}
	}
	if _, ok := h.configured(host); ok {
		writeError(w, &adminError{status: http.StatusConflict, errType: apierror.TypeInvalidRequest, code: "configured_host",
			msg: fmt.Sprintf("host %q is configured: its models are the config's", host)})
		return
	}
	stored, err := h.Store.SetHostModels(r.Context(), host, models)
	if err != nil {
		writeError(w, h.storeError(err, "set host models", hostWhat(host), zap.String("host", host)))
		return
	}
	h.hostsChanged()
	h.logger.Info("host models set", zap.String("host", host), zap.Strings("models", models))
	jsonresp.Write(w, http.StatusOK, newHostObject(stored))
}
