package admin

import (
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/keystore"
)

// adminError is a failure ready to be answered: the REST API sends it as an
// OpenAI-shaped JSON error, the worker routes as its plain message.
type adminError struct {
	status  int
	errType string // apierror.Type*
	code    string
	msg     string
	cause   error // the Store error, if any, for errors.Is
}

func (e *adminError) Error() string { return e.msg }

func (e *adminError) Unwrap() error { return e.cause }

// badRequest is a 400 for a request the admin can fix.
func badRequest(code, format string, args ...any) *adminError {
	return &adminError{
		status:  http.StatusBadRequest,
		errType: apierror.TypeInvalidRequest,
		code:    code,
		msg:     fmt.Sprintf(format, args...),
	}
}

// invalid wraps a validation error as a 400 with the given code.
func invalid(code string, err error) *adminError {
	return badRequest(code, "%s", err.Error())
}

// storeError maps a failed Store call to its answer: ErrNotFound 404,
// ErrExists 409, ErrUnavailable 503, anything else 500. what names the
// object for the message, e.g. `user "bob"`. Backend failures are logged
// with op and fields, which must never hold a key or the token.
func (h *Handler) storeError(err error, op, what string, fields ...zap.Field) *adminError {
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		return &adminError{http.StatusNotFound, apierror.TypeNotFound, "not_found", what + " not found", err}
	case errors.Is(err, keystore.ErrExists):
		return &adminError{http.StatusConflict, apierror.TypeInvalidRequest, "already_exists", what + " already exists", err}
	}
	fields = append(fields, zap.String("op", op), zap.Error(err))
	if errors.Is(err, keystore.ErrUnavailable) {
		h.logger.Error("key store unavailable", fields...)
		return &adminError{http.StatusServiceUnavailable, apierror.TypeServer, "store_unavailable", "key store unavailable", err}
	}
	h.logger.Error("key store call failed", fields...)
	return &adminError{http.StatusInternalServerError, apierror.TypeServer, "internal_error", "internal error", err}
}
