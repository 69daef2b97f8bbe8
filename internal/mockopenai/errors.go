package mockopenai

import "net/http"

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// fail writes an OpenAI error body; an empty code or param is sent as null.
func (c *call) fail(status int, typ, code, param, msg string) {
	d := errorDetail{Message: msg, Type: typ}
	if code != "" {
		d.Code = &code
	}
	if param != "" {
		d.Param = &param
	}
	c.writeJSON(status, errorBody{Error: d})
}

// modelError answers the error models and reports whether it did.
func (c *call) modelError(model string) bool {
	switch model {
	case ModelError429:
		h := c.w.Header()
		h.Set("Retry-After", "1")
		h.Set("X-Ratelimit-Limit-Requests", "3")
		h.Set("X-Ratelimit-Remaining-Requests", "0")
		h.Set("X-Ratelimit-Reset-Requests", "1s")
		c.fail(http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "",
			"Rate limit reached for "+model+" in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more.")
		return true
	case ModelError500:
		c.fail(http.StatusInternalServerError, "server_error", "", "",
			"The server had an error while processing your request. Sorry about that!")
		return true
	}
	return false
}

// requireModel answers 400 when model is empty, as OpenAI does.
func (c *call) requireModel(model string) bool {
	if model == "" {
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "", "you must provide a model parameter")
		return false
	}
	return true
}
