package keystore

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"
)

// migrateFileV1 upgrades a schema 1 file, in the transaction that opens it:
// every user gets an ID, and usage rows, keyed by name alone until then,
// move to their user's ID, or to formerUserID of the name when no user has
// it any more. The batch IDs of schema 1 are dropped: a batch in flight
// across the upgrade comes from a process that has stopped.
func migrateFileV1(tx *bbolt.Tx) error {
	ids := make(map[string]string)
	users := tx.Bucket(bucketUsers)
	var records []User
	err := users.ForEach(func(_, raw []byte) error {
		var u User
		if err := json.Unmarshal(raw, &u); err != nil {
			return fmt.Errorf("decoding user record: %w", err)
		}
		if u.ID == "" {
			u.ID = NewUserID()
		}
		ids[u.Name] = u.ID
		records = append(records, u)
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range records {
		if err := putUser(tx, u); err != nil {
			return err
		}
	}

	usage := tx.Bucket(bucketUsage)
	type row struct{ key, val []byte }
	var old []row
	err = usage.ForEach(func(k, v []byte) error {
		old = append(old, row{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range old {
		if err := usage.Delete(r.key); err != nil {
			return err
		}
	}
	for _, r := range old {
		date, rest, ok1 := bytes.Cut(r.key, []byte{0})
		name, model, ok2 := bytes.Cut(rest, []byte{0})
		if !ok1 || !ok2 {
			return fmt.Errorf("malformed schema 1 usage key %q", r.key)
		}
		id, ok := ids[string(name)]
		if !ok {
			id = formerUserID(string(name))
		}
		key := fileUsageKey(UsageKey{Date: string(date), User: string(name), UserID: id, Model: string(model)})
		if err := usage.Put(key, r.val); err != nil {
			return err
		}
	}
	if tx.Bucket([]byte("usage_batches")) != nil {
		if err := tx.DeleteBucket([]byte("usage_batches")); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put([]byte("version"), []byte(fileSchemaVersion))
}
