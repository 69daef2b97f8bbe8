package keystore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// UserKeyPrefix starts every key aiproxy issues, as in the original worker.
const UserKeyPrefix = "sk-cfw"

// userKeyRandomLen is how many random characters follow the prefix.
const userKeyRandomLen = 45

// UserKeyLen is the full length of an issued key.
const UserKeyLen = len(UserKeyPrefix) + userKeyRandomLen

const userKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewUserKey returns a fresh key: "sk-cfw" and 45 characters of [A-Za-z0-9]
// from crypto/rand, without modulo bias.
func NewUserKey() string {
	out := make([]byte, len(UserKeyPrefix), UserKeyLen)
	copy(out, UserKeyPrefix)
	var buf [64]byte
	for len(out) < UserKeyLen {
		rand.Read(buf[:]) // never fails (crypto/rand panics on an unusable source)
		for _, b := range buf {
			// 248 = 4*62: rejecting larger bytes keeps every character equally likely.
			if b < 248 && len(out) < UserKeyLen {
				out = append(out, userKeyAlphabet[b%62])
			}
		}
	}
	return string(out)
}

// HashKey returns the lowercase hex SHA-256 of a plain key: the only form in
// which keys are stored or looked up.
func HashKey(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// KeyHint returns "sk-cfw..." and the key's last 4 characters, safe to show
// in listings.
func KeyHint(plain string) string {
	if len(plain) < 4 {
		return UserKeyPrefix + "..."
	}
	return UserKeyPrefix + "..." + plain[len(plain)-4:]
}

// IsUserKeyShape reports whether s has the shape of an issued key. The proxy
// refuses other strings before touching the store.
func IsUserKeyShape(s string) bool {
	if len(s) != UserKeyLen || s[:len(UserKeyPrefix)] != UserKeyPrefix {
		return false
	}
	for i := len(UserKeyPrefix); i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
