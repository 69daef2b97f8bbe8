package mockopenai

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/openai/openai-go/v3"
)

// TestEmbeddingsSDK: embeddings as floats and as base64.
func TestEmbeddingsSDK(t *testing.T) {
	o := NewTLS(t, testKey)
	client := sdkClient(o, testKey)
	ctx := context.Background()

	for _, format := range []openai.EmbeddingNewParamsEncodingFormat{"", openai.EmbeddingNewParamsEncodingFormatBase64} {
		emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model:          openai.EmbeddingModelTextEmbedding3Small,
			Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a b", "c"}},
			EncodingFormat: format,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(emb.Data) != 2 || len(emb.Data[1].Embedding) != 8 || emb.Usage.PromptTokens != 3 || emb.Usage.TotalTokens != 3 {
			t.Errorf("embeddings (%q) = %s", format, emb.RawJSON())
		}
		if sum := sha256.Sum256([]byte("c")); emb.Data[1].Embedding[0] != float64(int(sum[0])-128)/128 {
			t.Errorf("embedding (%q) value %v", format, emb.Data[1].Embedding[0])
		}
	}
}
