package keystore

import (
	"errors"
	"fmt"
	"strings"
)

// errHashInUse guards against handing one key hash to two users. With random
// 45-character keys it only happens through a caller's bug, never by chance.
var errHashInUse = errors.New("keystore: key hash already belongs to a user")

// unavailable wraps a backend failure so that errors.Is(err, ErrUnavailable)
// holds while the cause (a timeout, context.Canceled, ...) stays inspectable.
// Backend errors name neither keys nor hashes, so the text is safe to log.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// isOwnError reports whether err is one of the package's semantic errors,
// which pass through unwrapped.
func isOwnError(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) ||
		errors.Is(err, ErrUnavailable) || errors.Is(err, errHashInUse) ||
		errors.Is(err, errInvalidUser) || errors.Is(err, errInvalidUsage) ||
		errors.Is(err, errInvalidRequestRecord)
}

// errInvalidUser rejects a CreateUser call without a name or key hash, or
// with a name or ID the stores cannot key by.
var errInvalidUser = errors.New("keystore: user needs a name (without '|', '/', braces or NUL), a key hash and a well-formed ID if any")

// validUser checks the fields CreateUser cannot do without. The admin API
// allows far fewer characters in names; these are the ones that would break
// the stores' keys and Redis hash tags.
func validUser(u User) error {
	if u.Name == "" || strings.ContainsAny(u.Name, "|/{}\x00") || u.KeyHash == "" ||
		(u.ID != "" && !IsUserID(u.ID)) {
		return errInvalidUser
	}
	return nil
}

// normalizeTimes stores every timestamp in UTC, as the User type documents.
func normalizeTimes(u *User) {
	u.CreatedAt = u.CreatedAt.UTC()
	if !u.ExpiresAt.IsZero() {
		u.ExpiresAt = u.ExpiresAt.UTC()
	}
}
