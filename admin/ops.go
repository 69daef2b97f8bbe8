package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/aiproxy/aiproxy/keystore"
)

// The store operations both admin interfaces share. Each maps its Store error
// with storeError and writes one audit line on success; none logs a key.

// createUser issues a key for a new user; a non-zero expiresAt limits it,
// and policy says what it may spend.
func (h *Handler) createUser(ctx context.Context, name string, expiresAt time.Time, policy keystore.Policy) (keystore.User, string, *adminError) {
	key := keystore.NewUserKey()
	u := keystore.User{
		Name:      name,
		KeyHash:   keystore.HashKey(key),
		KeyHint:   keystore.KeyHint(key),
		CreatedAt: h.now().Truncate(time.Second),
		ExpiresAt: expiresAt,
		Policy:    policy,
	}
	if err := h.Store.CreateUser(ctx, u); err != nil {
		return keystore.User{}, "", h.storeError(err, "create user", userWhat(name), zap.String("user", name))
	}
	h.logger.Info("user created", zap.String("user", name), expiryField(expiresAt))
	return u, key, nil
}

// resetUser gives an existing user a new key; the old one is refused from
// then on. A non-zero expiresAt also replaces the expiry, which is otherwise
// kept.
func (h *Handler) resetUser(ctx context.Context, name string, expiresAt time.Time) (keystore.User, string, *adminError) {
	if !expiresAt.IsZero() {
		// Expiry first: if the reset then fails, the admin sees the error and
		// the user still holds a working key, rather than a new key nobody saw.
		if _, e := h.setExpiry(ctx, name, expiresAt); e != nil {
			return keystore.User{}, "", e
		}
	}
	key := keystore.NewUserKey()
	u, err := h.Store.ResetKey(ctx, name, keystore.HashKey(key), keystore.KeyHint(key))
	if err != nil {
		return keystore.User{}, "", h.storeError(err, "reset key", userWhat(name), zap.String("user", name))
	}
	h.usersChanged()
	h.logger.Info("user key reset", zap.String("user", name))
	return u, key, nil
}

// registerUser creates the user or, if the name is taken, resets its key, as
// the original worker's register did.
func (h *Handler) registerUser(ctx context.Context, name string, expiresAt time.Time) (keystore.User, string, *adminError) {
	// A concurrent delete between a refused create and the reset makes the
	// reset miss; starting over then creates the user.
	for attempt := 1; ; attempt++ {
		u, key, e := h.createUser(ctx, name, expiresAt, keystore.Policy{})
		if e == nil || !errors.Is(e, keystore.ErrExists) {
			return u, key, e
		}
		u, key, e = h.resetUser(ctx, name, expiresAt)
		if e == nil || !errors.Is(e, keystore.ErrNotFound) || attempt == 3 {
			return u, key, e
		}
	}
}

// setExpiry sets, or with the zero time clears, the user's expiry.
func (h *Handler) setExpiry(ctx context.Context, name string, expiresAt time.Time) (keystore.User, *adminError) {
	u, err := h.Store.SetExpiry(ctx, name, expiresAt)
	if err != nil {
		return keystore.User{}, h.storeError(err, "set expiry", userWhat(name), zap.String("user", name))
	}
	h.usersChanged()
	h.logger.Info("user expiry set", zap.String("user", name), expiryField(expiresAt))
	return u, nil
}

// deleteUser removes the user; its key is refused from then on.
func (h *Handler) deleteUser(ctx context.Context, name string) *adminError {
	if err := h.Store.DeleteUser(ctx, name); err != nil {
		return h.storeError(err, "delete user", userWhat(name), zap.String("user", name))
	}
	h.usersChanged()
	h.logger.Info("user deleted", zap.String("user", name))
	return nil
}

// addHostKey registers an upstream key for host; a non-empty baseURL sets
// the host's base URL.
func (h *Handler) addHostKey(ctx context.Context, host, baseURL, key string) (string, *adminError) {
	id, err := h.Store.AddHostKey(ctx, host, baseURL, key)
	if err != nil {
		return "", h.storeError(err, "add host key", hostWhat(host), zap.String("host", host))
	}
	h.hostsChanged()
	h.logger.Info("upstream key added", zap.String("host", host), zap.String("key_id", id))
	return id, nil
}

// deleteHostKey removes one upstream key, and the host with its last key.
func (h *Handler) deleteHostKey(ctx context.Context, host, id string) *adminError {
	if err := h.Store.DeleteHostKey(ctx, host, id); err != nil {
		what := fmt.Sprintf("key %q of host %q", id, host)
		return h.storeError(err, "delete host key", what, zap.String("host", host), zap.String("key_id", id))
	}
	h.hostsChanged()
	h.logger.Info("upstream key deleted", zap.String("host", host), zap.String("key_id", id))
	return nil
}

// deleteHost removes the host and all its keys.
func (h *Handler) deleteHost(ctx context.Context, host string) *adminError {
	if err := h.Store.DeleteHost(ctx, host); err != nil {
		return h.storeError(err, "delete host", hostWhat(host), zap.String("host", host))
	}
	h.hostsChanged()
	h.logger.Info("host deleted", zap.String("host", host))
	return nil
}

func userWhat(name string) string { return fmt.Sprintf("user %q", name) }

func hostWhat(host string) string { return fmt.Sprintf("host %q", host) }

// expiryField logs an expiry, or "never".
func expiryField(t time.Time) zap.Field {
	if t.IsZero() {
		return zap.String("expires_at", "never")
	}
	return zap.Time("expires_at", t)
}
