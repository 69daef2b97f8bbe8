package mockopenai

import (
	"context"
	"errors"
	"testing"

	"github.com/openai/openai-go/v3"
)

// TestModelsSDK: the model list, one model, and an unknown one.
func TestModelsSDK(t *testing.T) {
	o := NewTLS(t, testKey)
	client := sdkClient(o, testKey)
	ctx := context.Background()

	page, err := client.Models.List(ctx)
	if err != nil || len(page.Data) != len(modelIDs) {
		t.Fatalf("models: %v %v", page, err)
	}
	if m, err := client.Models.Get(ctx, "gpt-4o"); err != nil || m.ID != "gpt-4o" {
		t.Errorf("model: %v %v", m, err)
	}
	var apiErr *openai.Error
	if _, err := client.Models.Get(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}
}
