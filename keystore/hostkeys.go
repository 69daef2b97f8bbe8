package keystore

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
)

// addHostKey appends key to h under a fresh ID that is unique within h, sets
// a non-empty baseURL, and returns the ID. Both stores share this logic.
func addHostKey(h *Host, baseURL, key string) string {
	if baseURL != "" {
		h.BaseURL = baseURL
	}
	id := newKeyID()
	for slices.ContainsFunc(h.Keys, func(k UpstreamKey) bool { return k.ID == id }) {
		id = newKeyID()
	}
	h.Keys = append(h.Keys, UpstreamKey{ID: id, Key: key})
	return id
}

// removeHostKey deletes the key with the given ID from h and reports whether
// it was there.
func removeHostKey(h *Host, id string) bool {
	i := slices.IndexFunc(h.Keys, func(k UpstreamKey) bool { return k.ID == id })
	if i < 0 {
		return false
	}
	h.Keys = slices.Delete(h.Keys, i, i+1)
	return true
}

// newKeyID returns 8 random hex characters: short enough to type in an admin
// command, and IDs only need to be unique within one host.
func newKeyID() string {
	var b [4]byte
	rand.Read(b[:]) // never fails (crypto/rand panics on an unusable source)
	return hex.EncodeToString(b[:])
}
