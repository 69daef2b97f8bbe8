package aiproxy

// modellist.go: one GET /v1/models for all providers, when the request's
// model picks its host: each host's own list (fetched from it and kept a
// while), narrowed to the models that route there, and the aliases.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
)

// modelListTTL is how long a host's model list is kept.
const modelListTTL = 5 * time.Minute

// modelListTimeout bounds the fetch of one host's list.
const modelListTimeout = 5 * time.Second

// modelEntry is one model of a list, as its provider wrote it.
type modelEntry struct {
	id  string
	raw json.RawMessage
}

// modelListFailureTTL is how long a host whose list could not be had is
// listed by its configured names before it is asked again.
const modelListFailureTTL = 30 * time.Second

// modelLists fetches and keeps the hosts' model lists. Safe for concurrent
// use; holds a list per host name (hosts are the config's and admins').
// One fetch per host runs at a time, on its own deadline: a client that
// gives up does not cut it short, and many clients do not multiply it.
type modelLists struct {
	client *http.Client
	logger *zap.Logger
	mu     sync.Mutex
	lists  map[string]cachedModelList
	flight map[string]chan struct{} // hosts being fetched: closed when done
}

type cachedModelList struct {
	entries []modelEntry
	ok      bool // fetched; false: the fetch failed
	at      time.Time
}

func newModelLists(logger *zap.Logger) *modelLists {
	return &modelLists{
		client: &http.Client{
			Timeout: modelListTimeout,
			// A redirect would carry the key to wherever it points (Go
			// strips only Authorization across hosts).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		logger: logger,
		lists:  make(map[string]cachedModelList),
		flight: make(map[string]chan struct{}),
	}
}

// of returns u's model list, fetched with key, from the cache while fresh.
func (m *modelLists) of(ctx context.Context, u *host, key string) ([]modelEntry, bool) {
	for {
		m.mu.Lock()
		c, cached := m.lists[u.name]
		ttl := modelListTTL
		if !c.ok {
			ttl = modelListFailureTTL
		}
		if cached && time.Since(c.at) < ttl {
			m.mu.Unlock()
			return c.entries, c.ok
		}
		if wait, busy := m.flight[u.name]; busy {
			m.mu.Unlock()
			select {
			case <-wait:
				continue // fetched by another request
			case <-ctx.Done():
				return nil, false
			}
		}
		done := make(chan struct{})
		m.flight[u.name] = done
		m.mu.Unlock()

		entries, err := m.fetch(context.WithoutCancel(ctx), u, key)
		if err != nil {
			m.logger.Warn("fetching a host's model list failed; listing its configured models",
				zap.String("host", u.name), zap.Error(err))
		}
		m.mu.Lock()
		if len(m.lists) > maxKeyStates {
			clear(m.lists)
		}
		m.lists[u.name] = cachedModelList{entries: entries, ok: err == nil, at: time.Now()}
		delete(m.flight, u.name)
		close(done)
		m.mu.Unlock()
		return entries, err == nil
	}
}

// fetch reads u's GET /v1/models (as the host maps /v1).
func (m *modelLists) fetch(ctx context.Context, u *host, key string) ([]modelEntry, error) {
	api := u.apiPath
	if api == "" {
		api = "/v1"
	}
	ctx, cancel := context.WithTimeout(ctx, modelListTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u.baseURL, "/")+api+"/models", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(u.authName, u.authPrefix+key)
	for k, v := range u.headers {
		req.Header[k] = v
	}
	res, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, &listError{status: res.StatusCode}
	}
	var list struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxModelList)).Decode(&list); err != nil {
		return nil, err
	}
	entries := make([]modelEntry, 0, len(list.Data))
	for _, raw := range list.Data {
		var e struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &e) == nil && e.ID != "" {
			entries = append(entries, modelEntry{id: e.ID, raw: raw})
		}
	}
	return entries, nil
}

// listError is a host's answer to its model list other than 200.
type listError struct{ status int }

func (e *listError) Error() string { return "the host answered " + http.StatusText(e.status) }

// serveModelUnion answers GET /v1/models with every model a request may be
// routed to: each host's listed models that route to it, its configured
// exact names when its list cannot be had, and the aliases; then only
// those the key may use.
func (h *Handler) serveModelUnion(w http.ResponseWriter, r *http.Request, snap *hostSnapshot, allowed []string) {
	hosts := append([]*host{snap.defaultHost}, snap.byModel.hosts...)
	seen := make(map[string]bool)
	data := make([]json.RawMessage, 0, 64)
	add := func(id string, raw json.RawMessage) {
		if seen[id] || (allowed != nil && !keystore.MatchModel(allowed, id)) {
			return
		}
		seen[id] = true
		data = append(data, raw)
	}
	// The hosts' lists are fetched at once, not one after another.
	type fetched struct {
		entries []modelEntry
		ok      bool
	}
	lists := make([]fetched, len(hosts))
	var wg sync.WaitGroup
	for i, u := range hosts {
		key := h.health.pick(u)
		wg.Go(func() {
			lists[i].entries, lists[i].ok = h.modelLists.of(r.Context(), u, key)
		})
	}
	wg.Wait()
	for i, u := range hosts {
		entries, ok := lists[i].entries, lists[i].ok
		for _, e := range entries {
			if snap.choose("", e.id) == u {
				add(e.id, e.raw)
			}
		}
		if !ok {
			// No list: its exact names stand in for it.
			for _, m := range u.models {
				if !keystore.IsModelGlob(m) {
					add(m, modelObject(m, u.name))
				}
			}
		}
	}
	for name, to := range h.aliases {
		add(name, modelObject(name, to.host))
	}
	body, err := json.Marshal(struct {
		Object string            `json:"object"`
		Data   []json.RawMessage `json:"data"`
	}{"list", data})
	if err != nil {
		apierror.Write(w, http.StatusInternalServerError, apierror.TypeServer, "model_list", "the model list could not be written")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// modelObject is an OpenAI model object for a name the gateway knows.
func modelObject(id, owner string) json.RawMessage {
	raw, _ := json.Marshal(struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}{id, "model", 0, owner})
	return raw
}
