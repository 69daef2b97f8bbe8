package aiproxy

// modelsfilter.go: the provider's model list, as a key with a models list
// sees it: only the models it may use.

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
)

// maxModelList bounds the model list held to be filtered; OpenAI's is
// about 20 KB.
const maxModelList = 4 << 20

// modelsFilter holds a model list answer and writes it filtered.
type modelsFilter struct {
	allowed []string
	status  int // the provider's status, held back with the body
	body    bytes.Buffer
	over    bool // the answer passed maxModelList
}

// isModelList reports whether r lists the models (GET /v1/models).
func isModelList(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && apiEndpoint(r.URL.Path) == "models"
}

func (f *modelsFilter) write(p []byte) {
	if f.over || f.body.Len()+len(p) > maxModelList {
		f.over = true
		f.body.Reset()
		return
	}
	f.body.Write(p)
}

// finish writes the held answer: filtered when it is a successful list,
// as it came otherwise (an error of the provider).
func (f *modelsFilter) finish(w http.ResponseWriter) {
	if f.over {
		apierror.Write(w, http.StatusBadGateway, apierror.TypeServer, "upstream_error",
			"the provider's model list is too large for the gateway to filter")
		return
	}
	out := f.body.Bytes()
	if f.status == http.StatusOK {
		if filtered, ok := filterModelList(out, f.allowed); ok {
			out = filtered
		}
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(f.status)
	_, _ = w.Write(out)
}

// filterModelList keeps the entries of an OpenAI list whose "id" matches
// allowed; ok is false when list is not such a list.
func filterModelList(list []byte, allowed []string) ([]byte, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(list, &top) != nil {
		return nil, false
	}
	var data []json.RawMessage
	if json.Unmarshal(top["data"], &data) != nil {
		return nil, false
	}
	kept := make([]json.RawMessage, 0, len(data))
	for _, entry := range data {
		var m struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(entry, &m) == nil && keystore.MatchModel(allowed, m.ID) {
			kept = append(kept, entry)
		}
	}
	top["data"], _ = json.Marshal(kept)
	out, err := json.Marshal(top)
	return out, err == nil
}
