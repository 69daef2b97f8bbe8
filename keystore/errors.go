package keystore

import (
	"errors"
	"fmt"
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
		errors.Is(err, errInvalidUser) || errors.Is(err, errInvalidUsage)
}

// errInvalidUser rejects a CreateUser call without a name or key hash.
var errInvalidUser = errors.New("keystore: user needs a name and a key hash")

// validUser checks the fields CreateUser cannot do without.
func validUser(u User) error {
	if u.Name == "" || u.KeyHash == "" {
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
