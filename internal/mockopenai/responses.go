package mockopenai

import (
	"bytes"
	"encoding/json"
	"net/http"
)

type response struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Background         bool              `json:"background"`
	Error              any               `json:"error"`
	IncompleteDetails  any               `json:"incomplete_details"`
	Instructions       json.RawMessage   `json:"instructions"`
	MaxOutputTokens    any               `json:"max_output_tokens"`
	Model              string            `json:"model"`
	Output             []outputMessage   `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID any               `json:"previous_response_id"`
	Reasoning          map[string]any    `json:"reasoning"`
	Store              bool              `json:"store"`
	Temperature        float64           `json:"temperature"`
	Text               map[string]any    `json:"text"`
	ToolChoice         string            `json:"tool_choice"`
	Tools              []any             `json:"tools"`
	TopP               float64           `json:"top_p"`
	Truncation         string            `json:"truncation"`
	Usage              *responseUsage    `json:"usage"`
	User               any               `json:"user"`
	Metadata           map[string]string `json:"metadata"`
}

type outputMessage struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
	Role    string       `json:"role"`
}

type outputText struct {
	Type        string `json:"type"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
	Text        string `json:"text"`
}

type responseUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// responseEvent is any streamed Responses API event; each kind sets its own fields.
type responseEvent struct {
	Type           string         `json:"type"`
	SequenceNumber int            `json:"sequence_number"`
	Response       *response      `json:"response,omitempty"`
	ItemID         string         `json:"item_id,omitempty"`
	OutputIndex    *int           `json:"output_index,omitempty"`
	ContentIndex   *int           `json:"content_index,omitempty"`
	Item           *outputMessage `json:"item,omitempty"`
	Part           *outputText    `json:"part,omitempty"`
	Delta          *string        `json:"delta,omitempty"`
	Text           *string        `json:"text,omitempty"`
	Logprobs       *[]any         `json:"logprobs,omitempty"`
}

func (c *call) responses() {
	var req struct {
		Model           string          `json:"model"`
		Input           json.RawMessage `json:"input"`
		Instructions    json.RawMessage `json:"instructions"`
		Stream          bool            `json:"stream"`
		MaxOutputTokens json.RawMessage `json:"max_output_tokens"`
	}
	if !c.readJSON(&req) || !c.requireModel(req.Model) || c.modelError(req.Model) {
		return
	}
	maxTokens, ok := c.intParam("max_output_tokens", req.MaxOutputTokens, 0, ResponsesMinOutputTokens, 0)
	if !ok {
		return
	}
	texts := append(promptTexts(req.Instructions), promptTexts(req.Input)...)
	reply, cut := ReplyCapped(maxTokens, texts...)
	u := ExpectedUsageCapped(maxTokens, 1, texts...)
	// A cut reply is an incomplete response, its message an incomplete item.
	status, endEvent := "completed", "response.completed"
	if cut {
		status, endEvent = "incomplete", "response.incomplete"
	}
	var maxOutput any
	if maxTokens > 0 {
		maxOutput = maxTokens
	}
	gated := req.Model == ModelGated

	instructions := json.RawMessage("null")
	if len(bytes.TrimSpace(req.Instructions)) > 0 {
		instructions = req.Instructions
	}
	newResponse := func(status string, output []outputMessage, usage *responseUsage) *response {
		r := &response{
			ID: c.id("resp_"), Object: "response", CreatedAt: fixedTime, Status: status,
			Instructions: instructions, MaxOutputTokens: maxOutput, Model: req.Model, Output: output,
			ParallelToolCalls: true, Reasoning: map[string]any{"effort": nil, "summary": nil}, Store: true,
			Temperature: 1, Text: map[string]any{"format": map[string]string{"type": "text"}}, ToolChoice: "auto",
			Tools: []any{}, TopP: 1, Truncation: "disabled", Usage: usage, Metadata: map[string]string{},
		}
		if status == "incomplete" {
			r.IncompleteDetails = map[string]string{"reason": "max_output_tokens"}
		}
		return r
	}
	text := func(s string) outputText {
		return outputText{Type: "output_text", Annotations: []any{}, Logprobs: []any{}, Text: s}
	}
	msgID := c.id("msg_")
	message := func(status string, content ...outputText) *outputMessage {
		return &outputMessage{ID: msgID, Type: "message", Status: status, Content: append([]outputText{}, content...), Role: "assistant"}
	}
	usage := &responseUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	final := newResponse(status, []outputMessage{*message(status, text(reply))}, usage)

	if !req.Stream {
		if gated && !c.waitGate() {
			return
		}
		c.writeJSON(http.StatusOK, final)
		return
	}

	s := c.startSSE()
	seq := 0
	zero := 0
	send := func(ev responseEvent) bool {
		ev.SequenceNumber = seq
		seq++
		return s.send(ev.Type, ev)
	}
	inProgress := newResponse("in_progress", []outputMessage{}, nil)
	emptyPart, fullPart := text(""), text(reply)
	noLogprobs := []any{}
	if !send(responseEvent{Type: "response.created", Response: inProgress}) ||
		!send(responseEvent{Type: "response.in_progress", Response: inProgress}) ||
		!send(responseEvent{Type: "response.output_item.added", OutputIndex: &zero, Item: message("in_progress")}) ||
		!send(responseEvent{Type: "response.content_part.added", ItemID: msgID, OutputIndex: &zero, ContentIndex: &zero, Part: &emptyPart}) {
		return
	}
	for i, word := range replyWords(reply) {
		if i > 0 && gated && !c.waitGate() {
			return
		}
		if !send(responseEvent{Type: "response.output_text.delta", ItemID: msgID, OutputIndex: &zero, ContentIndex: &zero, Delta: &word, Logprobs: &noLogprobs}) {
			return
		}
	}
	_ = send(responseEvent{Type: "response.output_text.done", ItemID: msgID, OutputIndex: &zero, ContentIndex: &zero, Text: &reply, Logprobs: &noLogprobs}) &&
		send(responseEvent{Type: "response.content_part.done", ItemID: msgID, OutputIndex: &zero, ContentIndex: &zero, Part: &fullPart}) &&
		send(responseEvent{Type: "response.output_item.done", OutputIndex: &zero, Item: message(status, fullPart)}) &&
		send(responseEvent{Type: endEvent, Response: final})
	// The Responses API ends its stream without a [DONE] line.
}
