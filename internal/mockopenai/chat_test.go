package mockopenai

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

func TestChatSDK(t *testing.T) {
	o := New(t, testKey)
	client := sdkClient(o, testKey)
	msgs := []string{"You are terse.", "say hi to  everyone"}
	resp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    openai.ChatModel("gpt-4o-mini"),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(msgs[0]), openai.UserMessage(msgs[1])},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "say hi to everyone" || got != Reply(msgs...) {
		t.Errorf("content = %q", got)
	}
	want := ExpectedUsage(msgs...)
	if resp.Usage.PromptTokens != 7 || resp.Usage.CompletionTokens != 4 || resp.Usage.TotalTokens != 11 ||
		want != (Usage{7, 4, 11}) {
		t.Errorf("usage = %+v, want %+v", resp.Usage, want)
	}
	if !resp.Usage.PromptTokensDetails.JSON.CachedTokens.Valid() || !resp.Usage.CompletionTokensDetails.JSON.ReasoningTokens.Valid() {
		t.Error("usage details missing")
	}
	if resp.ID != "chatcmpl-mock000001" || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("id = %q, finish = %q", resp.ID, resp.Choices[0].FinishReason)
	}
	rr := o.LastRequest()
	if rr.Method != "POST" || rr.Path != "/v1/chat/completions" || !rr.Authorized ||
		rr.Header.Get("Authorization") != "Bearer "+testKey || rr.ContentType != "application/json" {
		t.Errorf("recorded %+v", rr)
	}
	sum := sha256.Sum256(rr.Body)
	if int64(len(rr.Body)) != rr.BodyLen || hex.EncodeToString(sum[:]) != rr.BodySHA256 {
		t.Error("recorded body does not match its length and hash")
	}
}

func TestChatStreamSDK(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "include_usage"}[includeUsage], func(t *testing.T) {
			o := New(t, testKey)
			params := openai.ChatCompletionNewParams{
				Model:    openai.ChatModel("gpt-4o-mini"),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("one two three four")},
			}
			if includeUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			client := sdkClient(o, testKey)
			stream := client.Chat.Completions.NewStreaming(context.Background(), params)
			var acc openai.ChatCompletionAccumulator
			var chunks []openai.ChatCompletionChunk
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks = append(chunks, stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if got := acc.Choices[0].Message.Content; got != "one two three four" {
				t.Errorf("content = %q", got)
			}
			// role, 4 words, finish, and the usage chunk only when asked for.
			wantChunks := 6
			if includeUsage {
				wantChunks = 7
			}
			if len(chunks) != wantChunks {
				t.Fatalf("got %d chunks, want %d", len(chunks), wantChunks)
			}
			for i, ch := range chunks {
				raw := ch.RawJSON()
				last := i == len(chunks)-1
				switch {
				case !includeUsage && strings.Contains(raw, `"usage"`):
					t.Errorf("chunk %d has usage without include_usage: %s", i, raw)
				case includeUsage && !last && !strings.Contains(raw, `"usage":null`):
					t.Errorf("chunk %d lacks usage:null: %s", i, raw)
				case includeUsage && last && (len(ch.Choices) != 0 || !strings.Contains(raw, `"choices":[]`)):
					t.Errorf("usage chunk has choices: %s", raw)
				}
			}
			if includeUsage {
				u := chunks[len(chunks)-1].Usage
				if want := ExpectedUsage("one two three four"); u.PromptTokens != want.PromptTokens ||
					u.CompletionTokens != want.CompletionTokens || u.TotalTokens != want.TotalTokens {
					t.Errorf("usage = %+v, want %+v", u, want)
				}
			}
		})
	}
}
