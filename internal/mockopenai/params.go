package mockopenai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
)

// Output limits, as OpenAI's.
const (
	// CompletionsDefaultMaxTokens is the output cap of a legacy completion
	// that sets no max_tokens.
	CompletionsDefaultMaxTokens = 16
	// ResponsesMinOutputTokens is the smallest max_output_tokens the
	// Responses API accepts.
	ResponsesMinOutputTokens = 16
	// MaxChoices is the largest n (choices per request) accepted.
	MaxChoices = 128
)

// intParam reads the optional integer request parameter name from its raw
// JSON value: def when it is absent or null. When the value is not an
// integer, or is out of [lo, hi] (hi 0: no maximum), it answers 400 as
// OpenAI does and returns ok false. An integer too large for an int64 is
// taken as math.MaxInt64 (or math.MinInt64).
func (c *call) intParam(name string, raw json.RawMessage, def, lo, hi int64) (v int64, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return def, true
	}
	if got := jsonTypeName(raw); got != "" {
		c.fail(http.StatusBadRequest, "invalid_request_error", "invalid_type", name,
			fmt.Sprintf("Invalid type for '%s': expected an integer, but got %s instead.", name, got))
		return 0, false
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil { // out of range: ParseInt returns the nearest bound
		v = math.MaxInt64
		if raw[0] == '-' {
			v = math.MinInt64
		}
	}
	switch {
	case v < lo:
		c.fail(http.StatusBadRequest, "invalid_request_error", "integer_below_min_value", name,
			fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= %d, but got %s instead.", name, lo, raw))
		return 0, false
	case hi > 0 && v > hi:
		c.fail(http.StatusBadRequest, "invalid_request_error", "integer_above_max_value", name,
			fmt.Sprintf("Invalid '%s': integer above maximum value. Expected a value <= %d, but got %s instead.", name, hi, raw))
		return 0, false
	}
	return v, true
}

// jsonTypeName names the type of a valid raw JSON value that is not an
// integer, as OpenAI's errors do, or returns "" for an integer literal.
func jsonTypeName(raw []byte) string {
	switch raw[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	if bytes.ContainsAny(raw, ".eE") {
		return "a decimal number"
	}
	return ""
}
