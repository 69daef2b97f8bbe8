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
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	texts := promptTexts(req.Prompt)
	reply, usage := Reply(texts...), ExpectedUsage(texts...)
	gated := req.Model == ModelGated
	stop := "stop"
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
		resp := base(textChoice{Text: reply, FinishReason: &stop})
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
	s := c.startSSE()
	for i, word := range replyWords(reply) {
		if i > 0 && gated && !c.waitGate() {
			return
		}
		if !s.send("", chunk(textChoice{Text: word})) {
			return
		}
	}
	if !s.send("", chunk(textChoice{FinishReason: &stop})) {
		return
	}
	if includeUsage {
		last := chunk()
		last.Usage = chatUsageOf(usage)
		if !s.send("", last) {
			return
		}
	}
	s.done()
}
