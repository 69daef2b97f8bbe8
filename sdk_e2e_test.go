package aiproxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// TestOpenAIGoSDK talks to the gateway with the official Go SDK, as users'
// apps do: chat, streamed chat, a Responses stream, and a bad key.
func TestOpenAIGoSDK(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("sdk-user")
	ctx := context.Background()
	client := openai.NewClient(option.WithBaseURL(siteURL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("say hello please")},
	}

	done, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if len(done.Choices) != 1 || done.Choices[0].Message.Content == "" || done.Usage.TotalTokens == 0 {
		t.Fatalf("chat answer: %+v", done)
	}

	for _, includeUsage := range []bool{false, true} {
		p := params
		if includeUsage {
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream (include_usage=%v): %v", includeUsage, err)
		}
		if chunks < 3 || acc.Choices[0].Message.Content != done.Choices[0].Message.Content {
			t.Fatalf("stream (include_usage=%v): %d chunks, %q", includeUsage, chunks, acc.Choices[0].Message.Content)
		}
		if gotUsage := acc.Usage.TotalTokens > 0; gotUsage != includeUsage {
			t.Fatalf("stream (include_usage=%v): usage %+v", includeUsage, acc.Usage)
		}
	}

	rs := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("stream a response")},
	})
	var completed bool
	for rs.Next() {
		if ev := rs.Current(); ev.Type == "response.completed" {
			completed = ev.Response.Usage.TotalTokens > 0
		}
	}
	if err := rs.Err(); err != nil || !completed {
		t.Fatalf("responses stream: err %v, completed with usage %v", err, completed)
	}

	// An SDK stops reading at the stream's last event, which may be before
	// the gateway is done with the request: stopping the server waits for
	// it and writes its usage.
	s.stop()
	s.load(siteOptions{})
	// Every call above counted exactly, with and without include_usage (the
	// Responses prompt has three words too, so all four calls count alike).
	wantUsage(t, s.usageFor("sdk-user", "gpt-4o-mini"), 4, mockopenai.ExpectedUsage("say hello please"), 0)

	bad := openai.NewClient(option.WithBaseURL(siteURL+"/v1/"),
		option.WithAPIKey("sk-cfw"+strings.Repeat("x", 45)), option.WithMaxRetries(0))
	_, err = bad.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Fatalf("bad key: %v", err)
	}
}
