package admin

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/jsonresp"
)

// handleListHosts answers GET /admin/hosts. Upstream keys appear only as
// their ID and a hint.
func (h *Handler) handleListHosts(w http.ResponseWriter, r *http.Request) {
	hosts, err := h.Store.ListHosts(r.Context())
	if err != nil {
		writeError(w, h.storeError(err, "list hosts", "hosts"))
		return
	}
	list := hostList{Data: make([]hostObject, 0, len(hosts))}
	for _, host := range hosts {
		list.Data = append(list.Data, newHostObject(host))
	}
	jsonresp.Write(w, http.StatusOK, list)
}

// handleAddHostKey answers POST /admin/hosts/{host}/keys with 201, the new
// key's ID and the host's effective base URL.
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
		var err error
		if baseURL, err = validBaseURL(req.BaseURL); err != nil {
			writeError(w, invalid("invalid_base_url", err))
			return
		}
		effective = baseURL
	} else if effective, e = h.currentBaseURL(r, host); e != nil {
		// Looked up before the change, so a failure leaves nothing half done.
		writeError(w, e)
		return
	}

	id, e := h.addHostKey(r.Context(), host, baseURL, req.Key)
	if e != nil {
		writeError(w, e)
		return
	}
	jsonresp.Write(w, http.StatusCreated, hostKeyAdded{ID: id, Host: host, BaseURL: effective})
}

// currentBaseURL returns the effective base URL host has now, which an added
// key without base_url leaves unchanged: the default for a new host.
func (h *Handler) currentBaseURL(r *http.Request, host string) (string, *adminError) {
	hosts, err := h.Store.ListHosts(r.Context())
	if err != nil {
		return "", h.storeError(err, "list hosts", "hosts", zap.String("host", host))
	}
	for _, stored := range hosts {
		if stored.Name == host {
			return effectiveBaseURL(stored), nil
		}
	}
	return "https://" + host, nil
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
