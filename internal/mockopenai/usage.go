package mockopenai

import (
	"bytes"
	"encoding/json"
	"strings"
)

// DefaultReply is the mock's reply when the prompt's last text has no words.
const DefaultReply = "Hello from mock"

// Usage is the token usage the mock reports. For the Responses API,
// PromptTokens is input_tokens and CompletionTokens is output_tokens.
// Cached and reasoning token counts are always 0.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
	TotalTokens      int64
}

// WordCount returns the mock's token count of texts: the number of
// whitespace-separated words in all of them.
func WordCount(texts ...string) int64 {
	var n int64
	for _, t := range texts {
		n += int64(len(strings.Fields(t)))
	}
	return n
}

// Reply returns the mock's reply to a prompt made of texts: the words
// of the last text joined by single spaces, or [DefaultReply] when that
// has no words. The texts are, in order: for chat, each message's content
// (each text part of an array content); for responses, the instructions and
// then each input text; for completions, the prompt string(s).
func Reply(texts ...string) string {
	if len(texts) > 0 {
		if words := strings.Fields(texts[len(texts)-1]); len(words) > 0 {
			return strings.Join(words, " ")
		}
	}
	return DefaultReply
}

// ReplyCapped returns [Reply] cut to its first maxTokens words, and
// whether that cut it: the reply of a request whose output cap is
// maxTokens (max_completion_tokens, else max_tokens, for chat; max_tokens,
// [CompletionsDefaultMaxTokens] when unset, for legacy completions;
// max_output_tokens for responses). A maxTokens below 1 means no cap.
func ReplyCapped(maxTokens int64, texts ...string) (reply string, cut bool) {
	reply = Reply(texts...)
	words := strings.Fields(reply)
	if maxTokens < 1 || int64(len(words)) <= maxTokens {
		return reply, false
	}
	return strings.Join(words[:maxTokens], " "), true
}

// ExpectedUsage returns the usage the mock reports for a prompt made of
// texts (see [Reply]) when no cap cuts the reply: PromptTokens =
// WordCount(texts...), CompletionTokens = WordCount(Reply(texts...)). For
// embeddings the usage is PromptTokens = TotalTokens = WordCount(inputs...).
// Legacy completions are always capped: see [ExpectedUsageCapped].
func ExpectedUsage(texts ...string) Usage {
	return ExpectedUsageCapped(0, 1, texts...)
}

// ExpectedUsageCapped returns the usage the mock reports for a prompt
// made of texts answered with n choices under the output cap maxTokens
// (see [ReplyCapped]; below 1: none): PromptTokens = WordCount(texts...),
// counted once, and CompletionTokens = n * WordCount of the capped reply,
// every choice being that reply. An n below 1 counts as 1. A legacy
// completion without max_tokens is capped at [CompletionsDefaultMaxTokens].
func ExpectedUsageCapped(maxTokens, n int64, texts ...string) Usage {
	reply, _ := ReplyCapped(maxTokens, texts...)
	p, c := WordCount(texts...), max(n, 1)*WordCount(reply)
	return Usage{PromptTokens: p, CompletionTokens: c, TotalTokens: p + c}
}

// promptTexts returns the prompt texts in a JSON value, in order: a string; each
// element of a list; an object's "text", else its "content". That covers chat
// messages (string or text-part contents), Responses input items and parts,
// and string or string-list prompts and inputs.
func promptTexts(raw json.RawMessage) []string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var out []string
		for _, e := range list {
			out = append(out, promptTexts(e)...)
		}
		return out
	}
	var obj struct {
		Text    *string         `json:"text"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		if obj.Text != nil {
			return []string{*obj.Text}
		}
		return promptTexts(obj.Content)
	}
	return nil
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
		AudioTokens  int64 `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int64 `json:"reasoning_tokens"`
		AudioTokens              int64 `json:"audio_tokens"`
		AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

func chatUsageOf(u Usage) *chatUsage {
	return &chatUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
}
