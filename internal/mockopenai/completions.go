package mockopenai

import (
	"encoding/json"
	"net/http"
)

type textChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

func (c *call) completions() {
	var req struct {
		Model         string          `json:"model"`
		Prompt        json.RawMessage `json:"prompt"`
		Stream        bool            `json:"stream"`
		StreamOptions *streamOptions  `json:"stream_options"`
		MaxTokens     json.RawMessage `json:"max_tokens"`
		N             json.RawMessage `json:"n"`
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	maxTokens, ok := c.intParam("max_tokens", req.MaxTokens, CompletionsDefaultMaxTokens, 1, 0)
	if !ok {
		return
	}
	n, ok := c.intParam("n", req.N, 1, 1, MaxChoices)
	if !ok {
		return
	}
	texts := promptTexts(req.Prompt)
	reply, cut := ReplyCapped(maxTokens, texts...)
	usage := ExpectedUsageCapped(maxTokens, n, texts...)
	finish := "stop"
	if cut {
		finish = "length"
	}
	gated := req.Model == ModelGated
	base := func(choices ...any) streamChunk {
		return streamChunk{
			ID: c.id("cmpl-"), Object: "text_completion", Created: fixedTime, Model: req.Model,
			SystemFingerprint: "fp_mock", Choices: append([]any{}, choices...),
		}
	}
	if !req.Stream {
		if gated && !c.waitGate() {
			return
		}
		choices := make([]any, n)
		for i := range choices {
			choices[i] = textChoice{Text: reply, Index: i, FinishReason: &finish}
		}
		resp := base(choices...)
		resp.Usage = chatUsageOf(usage)
		c.writeJSON(http.StatusOK, resp)
		return
	}

	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	chunk := func(choices ...any) streamChunk {
		ch := base(choices...)
		if includeUsage {
			ch.Usage = json.RawMessage("null")
		}
		return ch
	}
	// One choice a chunk, the choices interleaved word by word, as in chat.
	s := c.startSSE()
	var last any
	if includeUsage {
		ch := chunk()
		ch.Usage = chatUsageOf(usage)
		last = ch
	}
	c.streamChoices(s, replyWords(reply), int(n), gated,
		func(i int, word string) any { return chunk(textChoice{Text: word, Index: i}) },
		func(i int) any { return chunk(textChoice{Index: i, FinishReason: &finish}) },
		last)
}
