package mockopenai

import (
	"fmt"
	"net/http"
)

// modelIDs are the models GET /v1/models lists and GET /v1/models/{id} knows.
var modelIDs = []string{"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (c *call) models() {
	c.record(nil)
	data := make([]modelObject, len(modelIDs))
	for i, id := range modelIDs {
		data[i] = modelObject{ID: id, Object: "model", Created: fixedTime, OwnedBy: "system"}
	}
	c.writeJSON(http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (c *call) model(id string) {
	c.record(nil)
	for _, m := range modelIDs {
		if m == id {
			c.writeJSON(http.StatusOK, modelObject{ID: id, Object: "model", Created: fixedTime, OwnedBy: "system"})
			return
		}
	}
	c.fail(http.StatusNotFound, "invalid_request_error", "model_not_found", "model",
		fmt.Sprintf("The model '%s' does not exist", id))
}
