package mockopenai

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
)

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

func (c *call) embeddings() {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	inputs := promptTexts(req.Input)
	if len(inputs) == 0 {
		c.fail(http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "input",
			"Missing required parameter: 'input'.")
		return
	}
	data := make([]embedding, len(inputs))
	for i, in := range inputs {
		// 8 values in [-1, 1) from the input's hash: deterministic, exact in float32.
		sum := sha256.Sum256([]byte(in))
		vec := make([]float32, 8)
		for j := range vec {
			vec[j] = float32(int(sum[j])-128) / 128
		}
		var emb any = vec
		if req.EncodingFormat == "base64" { // little-endian float32s, as OpenAI sends them
			buf := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data[i] = embedding{Object: "embedding", Index: i, Embedding: emb}
	}
	n := WordCount(inputs...)
	c.writeJSON(http.StatusOK, map[string]any{
		"object": "list",
		"data":   data,
		"model":  req.Model,
		"usage":  map[string]int64{"prompt_tokens": n, "total_tokens": n},
	})
}
