package mockopenai

import (
	"context"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

func TestResponsesSDK(t *testing.T) {
	o := New(t, testKey)
	client := sdkClient(o, testKey)
	params := responses.ResponseNewParams{
		Model:        openai.ChatModel("gpt-4o-mini"),
		Instructions: openai.String("be brief"),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("write a haiku")},
	}
	want := ExpectedUsage("be brief", "write a haiku")

	resp, err := client.Responses.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != "write a haiku" || resp.Usage.InputTokens != want.PromptTokens ||
		resp.Usage.OutputTokens != want.CompletionTokens || resp.Usage.TotalTokens != want.TotalTokens {
		t.Errorf("non-stream: text %q usage %+v, want %+v", resp.OutputText(), resp.Usage, want)
	}

	stream := client.Responses.NewStreaming(context.Background(), params)
	var types []string
	var text string
	var completed responses.Response
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if ev.SequenceNumber != int64(len(types)-1) {
			t.Errorf("event %s has sequence_number %d", ev.Type, ev.SequenceNumber)
		}
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.completed":
			completed = ev.AsResponseCompleted().Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	wantTypes := "response.created response.in_progress response.output_item.added response.content_part.added " +
		"response.output_text.delta response.output_text.delta response.output_text.delta " +
		"response.output_text.done response.content_part.done response.output_item.done response.completed"
	if got := strings.Join(types, " "); got != wantTypes {
		t.Errorf("events:\n got %s\nwant %s", got, wantTypes)
	}
	if text != "write a haiku" || completed.OutputText() != text || completed.Status != "completed" {
		t.Errorf("streamed %q, completed %q (%s)", text, completed.OutputText(), completed.Status)
	}
	if u := completed.Usage; u.InputTokens != want.PromptTokens || u.OutputTokens != want.CompletionTokens ||
		u.TotalTokens != want.TotalTokens || !u.InputTokensDetails.JSON.CachedTokens.Valid() ||
		!u.OutputTokensDetails.JSON.ReasoningTokens.Valid() {
		t.Errorf("completed usage = %+v, want %+v", u, want)
	}
}
