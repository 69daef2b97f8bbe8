package mockopenai

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3"
)

// TestCompletionsSDK: a legacy completion, plain and streamed with usage.
func TestCompletionsSDK(t *testing.T) {
	o := NewTLS(t, testKey)
	client := sdkClient(o, testKey)
	ctx := context.Background()

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:  openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct"),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("once upon a time")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Choices[0].Text != "once upon a time" || comp.Object != "text_completion" || comp.Usage.TotalTokens != 8 {
		t.Errorf("completion = %s", comp.RawJSON())
	}

	stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model:         openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct"),
		Prompt:        openai.CompletionNewParamsPromptUnion{OfString: openai.String("a b c")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var text string
	var total int64
	for stream.Next() {
		c := stream.Current()
		if len(c.Choices) > 0 {
			text += c.Choices[0].Text
		}
		total = c.Usage.TotalTokens
	}
	if err := stream.Err(); err != nil || text != "a b c" || total != 6 {
		t.Errorf("completion stream: %q total %d err %v", text, total, err)
	}
}
