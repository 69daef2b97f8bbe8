package keystore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// userIDLen is the length of the IDs NewUserID makes: 64 random bits in hex.
const userIDLen = 16

// NewUserID returns a fresh user identity: 16 lowercase hex characters from
// crypto/rand.
func NewUserID() string {
	var b [userIDLen / 2]byte
	rand.Read(b[:]) // never fails (crypto/rand panics on an unusable source)
	return hex.EncodeToString(b[:])
}

// IsUserID reports whether s has the shape of a user ID.
func IsUserID(s string) bool {
	if len(s) != userIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// formerUserID is the identity given, when a store is upgraded, to usage
// recorded under a name that no user has any more: a deleted user's. It is
// derived from the name so that every instance upgrading the same data
// agrees on it.
func formerUserID(name string) string {
	sum := sha256.Sum256([]byte("aiproxy former user\x00" + name))
	return hex.EncodeToString(sum[:userIDLen/2])
}
