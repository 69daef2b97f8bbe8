// Package jsonresp writes successful JSON answers, the counterpart of
// apierror for the admin and self-service APIs.
package jsonresp

import (
	"encoding/json"
	"net/http"

	"github.com/aiproxy/aiproxy/internal/apierror"
)

// Write sends status and v as JSON, with a trailing newline for curl users.
func Write(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		// Only a value JSON cannot hold (a time past year 9999) gets here.
		apierror.Write(w, http.StatusInternalServerError, apierror.TypeServer, "internal_error", "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(buf, '\n'))
}
