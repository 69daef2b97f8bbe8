package mockopenai

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"
)

func TestReplyCapped(t *testing.T) {
	tests := []struct {
		maxTokens, n int64
		texts        []string
		reply        string
		cut          bool
		usage        Usage
	}{
		{0, 1, []string{"sys", "a  b c"}, "a b c", false, Usage{4, 3, 7}},
		{-5, 0, []string{"a b c"}, "a b c", false, Usage{3, 3, 6}},
		{3, 1, []string{"a b c"}, "a b c", false, Usage{3, 3, 6}},
		{2, 1, []string{"a b c"}, "a b", true, Usage{3, 2, 5}},
		{1, 4, []string{"a b c"}, "a", true, Usage{3, 4, 7}},
		{100, 3, []string{"a b c"}, "a b c", false, Usage{3, 9, 12}},
		{2, 1, []string{" "}, "Hello from", true, Usage{0, 2, 2}}, // DefaultReply, cut
	}
	for _, tt := range tests {
		reply, cut := ReplyCapped(tt.maxTokens, tt.texts...)
		usage := ExpectedUsageCapped(tt.maxTokens, tt.n, tt.texts...)
		if reply != tt.reply || cut != tt.cut || usage != tt.usage {
			t.Errorf("cap %d, n %d, %q: %q %v %+v; want %q %v %+v",
				tt.maxTokens, tt.n, tt.texts, reply, cut, usage, tt.reply, tt.cut, tt.usage)
		}
	}
	if ExpectedUsage("x y", "a b c") != ExpectedUsageCapped(0, 1, "x y", "a b c") {
		t.Error("ExpectedUsage is not the uncapped usage")
	}
}

// TestChatCapsSDK: max_completion_tokens, else max_tokens, cuts the
// reply; n choices each carry it.
func TestChatCapsSDK(t *testing.T) {
	const prompt = "one two three four five"
	tests := []struct {
		name                        string
		maxTokens, maxCompletion, n int64 // 0: unset
		content, finish             string
	}{
		{"no cap", 0, 0, 0, prompt, "stop"},
		{"max_tokens", 3, 0, 0, "one two three", "length"},
		{"max_completion_tokens", 0, 2, 0, "one two", "length"},
		{"max_completion_tokens wins", 4, 2, 0, "one two", "length"},
		{"max_completion_tokens wins, larger", 1, 4, 0, "one two three four", "length"},
		{"cap equal to the reply", 5, 0, 0, prompt, "stop"},
		{"cap above the reply", 0, 100, 0, prompt, "stop"},
		{"n", 0, 0, 3, prompt, "stop"},
		{"n and a cap", 2, 0, 4, "one two", "length"},
		{"n 128", 0, 1, 128, "one", "length"},
	}
	o := New(t, testKey)
	client := sdkClient(o, testKey)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:    openai.ChatModel("gpt-4o-mini"),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
			}
			setOpt(&params.MaxTokens, tt.maxTokens)
			setOpt(&params.MaxCompletionTokens, tt.maxCompletion)
			setOpt(&params.N, tt.n)
			resp, err := client.Chat.Completions.New(context.Background(), params)
			if err != nil {
				t.Fatal(err)
			}
			n := max(tt.n, 1)
			if int64(len(resp.Choices)) != n {
				t.Fatalf("%d choices, want %d", len(resp.Choices), n)
			}
			for i, c := range resp.Choices {
				if c.Index != int64(i) || c.Message.Content != tt.content || c.FinishReason != tt.finish {
					t.Errorf("choice %d: index %d %q %q, want %q %q", i, c.Index, c.Message.Content, c.FinishReason, tt.content, tt.finish)
				}
			}
			limit := tt.maxTokens
			if tt.maxCompletion > 0 {
				limit = tt.maxCompletion
			}
			want := ExpectedUsageCapped(limit, tt.n, prompt)
			if got := (Usage{resp.Usage.PromptTokens, resp.Usage.CompletionTokens, resp.Usage.TotalTokens}); got != want ||
				want.CompletionTokens != n*WordCount(tt.content) {
				t.Errorf("usage %+v, want %+v", got, want)
			}
		})
	}
}

// setOpt sets an optional integer parameter unless v is 0.
func setOpt(p *param.Opt[int64], v int64) {
	if v != 0 {
		*p = openai.Int(v)
	}
}

// TestChatStreamChoicesSDK streams n capped choices: one choice a chunk,
// interleaved, each ending in "length"; the usage counts them all.
func TestChatStreamChoicesSDK(t *testing.T) {
	o := New(t, testKey)
	client := sdkClient(o, testKey)
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:               openai.ChatModel("gpt-4o-mini"),
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("alpha beta gamma delta")},
		MaxCompletionTokens: openai.Int(2),
		N:                   openai.Int(3),
		StreamOptions:       openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	var indexes []string
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		switch {
		case len(ch.Choices) == 1:
			indexes = append(indexes, string(rune('0'+ch.Choices[0].Index)))
		case len(ch.Choices) > 1:
			t.Errorf("a chunk with %d choices", len(ch.Choices))
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	// role chunks, two words each, finish chunks: the choices in turn.
	if got := strings.Join(indexes, ""); got != "012"+"012"+"012"+"012" {
		t.Errorf("choice indexes of the chunks: %s", got)
	}
	if len(acc.Choices) != 3 {
		t.Fatalf("%d choices", len(acc.Choices))
	}
	for i, c := range acc.Choices {
		if c.Message.Content != "alpha beta" || c.FinishReason != "length" || c.Index != int64(i) {
			t.Errorf("choice %d: %+v", i, c)
		}
	}
	want := ExpectedUsageCapped(2, 3, "alpha beta gamma delta")
	if u := acc.Usage; u.PromptTokens != 4 || u.CompletionTokens != 6 || u.TotalTokens != 10 || want != (Usage{4, 6, 10}) {
		t.Errorf("usage %+v, want %+v", u, want)
	}
}

// TestCompletionsCapsSDK: legacy completions are capped at 16 tokens
// unless max_tokens says otherwise, and answer n choices.
func TestCompletionsCapsSDK(t *testing.T) {
	o := New(t, testKey)
	client := sdkClient(o, testKey)
	ctx := context.Background()
	long := strings.TrimSpace(strings.Repeat("word ", 20))

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:  openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct"),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(long)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ExpectedUsageCapped(CompletionsDefaultMaxTokens, 1, long)
	if len(comp.Choices) != 1 || WordCount(comp.Choices[0].Text) != 16 || comp.Choices[0].FinishReason != "length" ||
		comp.Usage.CompletionTokens != 16 || comp.Usage.PromptTokens != 20 || want != (Usage{20, 16, 36}) {
		t.Errorf("default cap: %s", comp.RawJSON())
	}

	comp, err = client.Completions.New(ctx, openai.CompletionNewParams{
		Model:     openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct"),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("once upon a time")},
		MaxTokens: openai.Int(3),
		N:         openai.Int(2),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(comp.Choices) != 2 || comp.Usage.CompletionTokens != 6 || comp.Usage.TotalTokens != 10 {
		t.Errorf("max_tokens 3, n 2: %s", comp.RawJSON())
	}
	for i, c := range comp.Choices {
		if c.Index != int64(i) || c.Text != "once upon a" || c.FinishReason != "length" {
			t.Errorf("choice %d: %+v", i, c)
		}
	}

	stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model:         openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct"),
		Prompt:        openai.CompletionNewParamsPromptUnion{OfString: openai.String("a b c")},
		MaxTokens:     openai.Int(50),
		N:             openai.Int(2),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	texts, finish := map[int64]string{}, map[int64]string{}
	var usage openai.CompletionUsage
	for stream.Next() {
		c := stream.Current()
		if len(c.Choices) > 1 {
			t.Errorf("a chunk with %d choices", len(c.Choices))
		}
		for _, ch := range c.Choices {
			texts[ch.Index] += ch.Text
			if ch.FinishReason != "" {
				finish[ch.Index] = string(ch.FinishReason)
			}
		}
		if c.Usage.TotalTokens > 0 {
			usage = c.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(texts) != 2 || texts[0] != "a b c" || texts[1] != "a b c" || finish[0] != "stop" || finish[1] != "stop" ||
		usage.CompletionTokens != 6 || usage.TotalTokens != 9 {
		t.Errorf("stream: texts %v finish %v usage %+v", texts, finish, usage)
	}
}

// TestResponsesMaxOutputTokensSDK: a cut reply makes an incomplete
// response, and its stream ends with response.incomplete.
func TestResponsesMaxOutputTokensSDK(t *testing.T) {
	o := New(t, testKey)
	client := sdkClient(o, testKey)
	ctx := context.Background()
	words := strings.Fields("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen")
	input := strings.Join(words, " ")
	params := responses.ResponseNewParams{
		Model:           openai.ChatModel("gpt-4o-mini"),
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String(input)},
		MaxOutputTokens: openai.Int(16),
	}
	wantText := strings.Join(words[:16], " ")
	want := ExpectedUsageCapped(16, 1, input)

	resp, err := client.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != "incomplete" || resp.IncompleteDetails.Reason != "max_output_tokens" || resp.OutputText() != wantText ||
		resp.MaxOutputTokens != 16 || len(resp.Output) != 1 || resp.Output[0].Status != "incomplete" {
		t.Errorf("capped: %s", resp.RawJSON())
	}
	if u := resp.Usage; u.InputTokens != 18 || u.OutputTokens != 16 || u.TotalTokens != 34 || want != (Usage{18, 16, 34}) {
		t.Errorf("usage %+v, want %+v", u, want)
	}

	stream := client.Responses.NewStreaming(ctx, params)
	var types []string
	var text string
	var last responses.Response
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.output_item.done":
			if ev.Item.Status != "incomplete" {
				t.Errorf("output_item.done status %q", ev.Item.Status)
			}
		case "response.incomplete":
			last = ev.AsResponseIncomplete().Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) != 4+16+4 || types[len(types)-1] != "response.incomplete" || strings.Contains(strings.Join(types, " "), "completed") {
		t.Errorf("events: %v", types)
	}
	if text != wantText || last.Status != "incomplete" || last.IncompleteDetails.Reason != "max_output_tokens" ||
		last.Usage.OutputTokens != 16 || last.OutputText() != wantText {
		t.Errorf("streamed %q; last response %s", text, last.RawJSON())
	}

	// A cap the reply fits in changes nothing but the echoed cap.
	params.MaxOutputTokens = openai.Int(18)
	resp, err = client.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != "completed" || resp.OutputText() != input || resp.Usage.OutputTokens != 18 ||
		resp.MaxOutputTokens != 18 || !strings.Contains(resp.RawJSON(), `"incomplete_details":null`) {
		t.Errorf("uncut: %s", resp.RawJSON())
	}
}

// TestCapErrors: caps below their minimum, n out of range and
// non-integers get OpenAI's 400.
func TestCapErrors(t *testing.T) {
	o := New(t, testKey)
	client := sdkClient(o, testKey)
	ctx := context.Background()
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}
	chat := func(p openai.ChatCompletionNewParams) error {
		p.Model, p.Messages = openai.ChatModel("gpt-4o-mini"), msgs
		_, err := client.Chat.Completions.New(ctx, p)
		return err
	}
	completion := func(p openai.CompletionNewParams) error {
		p.Model = openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct")
		p.Prompt = openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")}
		_, err := client.Completions.New(ctx, p)
		return err
	}
	respond := func(p responses.ResponseNewParams) error {
		p.Model = openai.ChatModel("gpt-4o-mini")
		p.Input = responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}
		_, err := client.Responses.New(ctx, p)
		return err
	}
	below, above := "integer_below_min_value", "integer_above_max_value"
	tests := []struct {
		name, param, code, message string
		err                        error
	}{
		{"chat max_tokens 0", "max_tokens", below,
			"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
			chat(openai.ChatCompletionNewParams{MaxTokens: openai.Int(0)})},
		{"chat max_completion_tokens -1", "max_completion_tokens", below,
			"Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got -1 instead.",
			chat(openai.ChatCompletionNewParams{MaxCompletionTokens: openai.Int(-1)})},
		{"chat max_tokens 0 with a valid max_completion_tokens", "max_tokens", below,
			"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
			chat(openai.ChatCompletionNewParams{MaxTokens: openai.Int(0), MaxCompletionTokens: openai.Int(5)})},
		{"chat n 0", "n", below, "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
			chat(openai.ChatCompletionNewParams{N: openai.Int(0)})},
		{"chat n 129", "n", above, "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 129 instead.",
			chat(openai.ChatCompletionNewParams{N: openai.Int(129)})},
		{"completions max_tokens 0", "max_tokens", below,
			"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
			completion(openai.CompletionNewParams{MaxTokens: openai.Int(0)})},
		{"completions n -3", "n", below, "Invalid 'n': integer below minimum value. Expected a value >= 1, but got -3 instead.",
			completion(openai.CompletionNewParams{N: openai.Int(-3)})},
		{"responses max_output_tokens 15", "max_output_tokens", below,
			"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 15 instead.",
			respond(responses.ResponseNewParams{MaxOutputTokens: openai.Int(15)})},
		{"responses max_output_tokens 0", "max_output_tokens", below,
			"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 0 instead.",
			respond(responses.ResponseNewParams{MaxOutputTokens: openai.Int(0)})},
	}
	for _, tt := range tests {
		var apiErr *openai.Error
		if !errors.As(tt.err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Type != "invalid_request_error" ||
			apiErr.Param != tt.param || apiErr.Code != tt.code || apiErr.Message != tt.message {
			t.Errorf("%s: err = %v", tt.name, tt.err)
		}
	}

	// Values of the wrong type, which the SDK cannot send.
	for _, tc := range []struct{ path, body, param, message string }{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"5"}`, "max_tokens",
			"Invalid type for 'max_tokens': expected an integer, but got a string instead."},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"n":1.5}`, "n",
			"Invalid type for 'n': expected an integer, but got a decimal number instead."},
		{"/v1/completions", `{"model":"m","prompt":"x","max_tokens":true}`, "max_tokens",
			"Invalid type for 'max_tokens': expected an integer, but got a boolean instead."},
		{"/v1/responses", `{"model":"m","input":"x","max_output_tokens":[16]}`, "max_output_tokens",
			"Invalid type for 'max_output_tokens': expected an integer, but got an array instead."},
	} {
		resp := post(t, ctx, o, tc.path, tc.body)
		var body struct{ Error map[string]any }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if e := body.Error; resp.StatusCode != 400 || e["param"] != tc.param || e["code"] != "invalid_type" ||
			e["type"] != "invalid_request_error" || e["message"] != tc.message {
			t.Errorf("%s: %d %v", tc.body, resp.StatusCode, body.Error)
		}
	}

	// null is no cap, and a huge cap none that binds.
	resp := post(t, ctx, o, "/v1/chat/completions",
		`{"model":"m","messages":[{"role":"user","content":"x y"}],"max_tokens":null,"max_completion_tokens":99999999999999999999,"n":null}`)
	var ok chatCompletion
	_ = json.NewDecoder(resp.Body).Decode(&ok)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(ok.Choices) != 1 || ok.Choices[0].Message.Content != "x y" || ok.Choices[0].FinishReason != "stop" {
		t.Errorf("null and huge caps: %d %+v", resp.StatusCode, ok)
	}
}
