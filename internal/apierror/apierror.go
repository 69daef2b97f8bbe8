// Package apierror writes errors in the shape OpenAI's API uses, so every
// OpenAI SDK maps them to its usual exception types:
//
//	{"error":{"message":"...","type":"...","param":null,"code":"..."}}
package apierror

import (
	"encoding/json"
	"net/http"
)

// Error types, as OpenAI names them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypeNotFound       = "not_found_error"
	TypePermission     = "permission_error"
	TypeServer         = "server_error"
	TypeRateLimit      = "rate_limit_error"
	// TypeInsufficientQuota is OpenAI's type and code for a spent budget.
	TypeInsufficientQuota = "insufficient_quota"
)

type body struct {
	Error detail `json:"error"`
}

type detail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// Write sends status and the error body. An empty code is sent as null.
func Write(w http.ResponseWriter, status int, errType, code, message string) {
	d := detail{Message: message, Type: errType}
	if code != "" {
		d.Code = &code
	}
	buf, _ := json.Marshal(body{Error: d})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(buf, '\n'))
}
