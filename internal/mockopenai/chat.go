package mockopenai

import (
	"encoding/json"
	"net/http"
)

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             *chatUsage   `json:"usage"`
	ServiceTier       string       `json:"service_tier"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	Logprobs     any         `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
}

type chatMessage struct {
	Role        string `json:"role"`
	Content     string `json:"content"`
	Refusal     any    `json:"refusal"`
	Annotations []any  `json:"annotations"`
}

// streamChunk is a chat.completion.chunk or a streamed text_completion. Usage is
// omitted (nil), null (json.RawMessage("null")) or the final usage, as OpenAI
// sends it depending on stream_options.include_usage.
type streamChunk struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	ServiceTier       string `json:"service_tier,omitempty"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []any  `json:"choices"`
	Usage             any    `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	Logprobs     any        `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

func (c *call) chat() {
	var req struct {
		Model               string          `json:"model"`
		Messages            json.RawMessage `json:"messages"`
		Stream              bool            `json:"stream"`
		StreamOptions       *streamOptions  `json:"stream_options"`
		MaxTokens           json.RawMessage `json:"max_tokens"`
		MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
		N                   json.RawMessage `json:"n"`
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	var msgs []json.RawMessage
	if json.Unmarshal(req.Messages, &msgs) != nil || len(msgs) == 0 {
		c.fail(http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "messages",
			"Missing required parameter: 'messages'.")
		return
	}
	// max_completion_tokens wins over the deprecated max_tokens; both must be valid.
	maxTokens, ok := c.intParam("max_tokens", req.MaxTokens, 0, 1, 0)
	if !ok {
		return
	}
	maxCompletion, ok := c.intParam("max_completion_tokens", req.MaxCompletionTokens, 0, 1, 0)
	if !ok {
		return
	}
	if maxCompletion > 0 {
		maxTokens = maxCompletion
	}
	n, ok := c.intParam("n", req.N, 1, 1, MaxChoices)
	if !ok {
		return
	}
	texts := promptTexts(req.Messages)
	reply, cut := ReplyCapped(maxTokens, texts...)
	usage := ExpectedUsageCapped(maxTokens, n, texts...)
	finish := "stop"
	if cut {
		finish = "length"
	}
	gated := req.Model == ModelGated
	if !req.Stream {
		if gated && !c.waitGate() {
			return
		}
		choices := make([]chatChoice, n)
		for i := range choices {
			choices[i] = chatChoice{
				Index:        i,
				Message:      chatMessage{Role: "assistant", Content: reply, Annotations: []any{}},
				FinishReason: finish,
			}
		}
		c.writeJSON(http.StatusOK, chatCompletion{
			ID: c.id("chatcmpl-"), Object: "chat.completion", Created: fixedTime, Model: req.Model,
			Choices: choices, Usage: chatUsageOf(usage), ServiceTier: "default", SystemFingerprint: "fp_mock",
		})
		return
	}

	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	chunk := func(choices ...any) streamChunk {
		ch := streamChunk{
			ID: c.id("chatcmpl-"), Object: "chat.completion.chunk", Created: fixedTime, Model: req.Model,
			ServiceTier: "default", SystemFingerprint: "fp_mock", Choices: append([]any{}, choices...),
		}
		if includeUsage {
			ch.Usage = json.RawMessage("null") // OpenAI sends "usage":null on every chunk but the last
		}
		return ch
	}
	// Each chunk carries one choice; the choices advance together, a word
	// of each in turn, as OpenAI interleaves them.
	s := c.startSSE()
	empty := ""
	for i := range int(n) {
		if !s.send("", chunk(chunkChoice{Index: i, Delta: chunkDelta{Role: "assistant", Content: &empty}})) {
			return
		}
	}
	var last any
	if includeUsage {
		ch := chunk()
		ch.Usage = chatUsageOf(usage)
		last = ch
	}
	c.streamChoices(s, replyWords(reply), int(n), gated,
		func(i int, word string) any { return chunk(chunkChoice{Index: i, Delta: chunkDelta{Content: &word}}) },
		func(i int) any { return chunk(chunkChoice{Index: i, FinishReason: &finish}) },
		last)
}
