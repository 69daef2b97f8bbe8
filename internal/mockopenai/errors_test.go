package mockopenai

import (
	"context"
	"encoding/json"
	"testing"
)

func TestErrorModels(t *testing.T) {
	o := New(t, testKey)
	for _, tc := range []struct {
		model  string
		status int
		typ    string
	}{{ModelError429, 429, "requests"}, {ModelError500, 500, "server_error"}} {
		for _, path := range []string{"/v1/chat/completions", "/openai/v1/responses", "/v1/embeddings"} {
			resp := post(t, context.Background(), o, path, `{"model":"`+tc.model+`","messages":[{"role":"user","content":"x"}],"input":"x"}`)
			var body map[string]map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || body["error"]["type"] != tc.typ {
				t.Errorf("%s %s: %d %v", tc.model, path, resp.StatusCode, body)
			}
			if tc.status == 429 && (resp.Header.Get("Retry-After") != "1" || resp.Header.Get("x-ratelimit-remaining-requests") != "0") {
				t.Errorf("429 headers: %v", resp.Header)
			}
		}
	}
	resp := post(t, context.Background(), o, "/v1/whatever", `{}`)
	var body map[string]map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 404 || body["error"]["message"] != "Invalid URL (POST /v1/whatever)" || body["error"]["code"] != nil {
		t.Errorf("unknown path: %d %v", resp.StatusCode, body)
	}
}
