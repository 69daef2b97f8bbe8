package keystore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Usage layout of the bbolt file:
//
//	usage          "<date>\x00<user>\x00<model>" -> JSON UsageCounts
//	usage_batches  batch ID -> 8-byte big-endian Unix seconds it was applied
//	meta           "usage_batches_pruned" -> 8-byte big-endian Unix seconds
//
// The date is fixed-width and NUL sorts before every other byte, so byte
// order is (date, user, model) order: a range query is one cursor Seek and a
// forward scan, and a user's rows of one day are one contiguous prefix.

// metaUsagePruned records, in the meta bucket, when usage_batches was last
// pruned, so that every AddUsage need not scan it.
var metaUsagePruned = []byte("usage_batches_pruned")

// usagePruneEvery is how often AddUsage scans usage_batches for IDs older
// than UsageBatchTTL: an ID is kept for at most this much longer than the TTL.
const usagePruneEvery = time.Hour

// fileUsageKey encodes a row's key for the usage bucket.
func fileUsageKey(k UsageKey) []byte {
	b := make([]byte, 0, len(k.Date)+len(k.User)+len(k.Model)+2)
	b = append(b, k.Date...)
	b = append(b, 0)
	b = append(b, k.User...)
	b = append(b, 0)
	return append(b, k.Model...)
}

// parseFileUsageKey decodes a usage bucket key. The model, last, may contain
// NUL itself; the date and user cannot.
func parseFileUsageKey(b []byte) (UsageKey, error) {
	date, rest, ok := bytes.Cut(b, []byte{0})
	if !ok || len(date) != len(UsageDateLayout) {
		return UsageKey{}, fmt.Errorf("malformed usage key %q", b)
	}
	user, model, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return UsageKey{}, fmt.Errorf("malformed usage key %q", b)
	}
	return UsageKey{User: string(user), Model: string(model), Date: string(date)}, nil
}

// AddUsage implements Store in one write transaction: the batch ID check,
// the counts, and now and then the pruning of old batch IDs.
func (s *FileStore) AddUsage(ctx context.Context, batchID string, rows []UsageRow) error {
	if err := validUsageBatch(batchID, rows); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	now := time.Now()
	return s.update(ctx, func(tx *bbolt.Tx) error {
		batches := tx.Bucket(bucketUsageBatches)
		if batches.Get([]byte(batchID)) != nil {
			return nil // applied already: this is a retry
		}
		if err := pruneUsageBatches(tx, now); err != nil {
			return err
		}
		if err := batches.Put([]byte(batchID), unixBytes(now)); err != nil {
			return err
		}
		usage := tx.Bucket(bucketUsage)
		for _, r := range rows {
			if r.UsageCounts == (UsageCounts{}) {
				continue
			}
			key := fileUsageKey(r.UsageKey)
			var c UsageCounts
			if raw := usage.Get(key); raw != nil {
				if err := json.Unmarshal(raw, &c); err != nil {
					return fmt.Errorf("decoding usage record: %w", err)
				}
			}
			c.Add(r.UsageCounts)
			raw, err := json.Marshal(c)
			if err != nil {
				return err
			}
			if err := usage.Put(key, raw); err != nil {
				return err
			}
		}
		return nil
	})
}

// pruneUsageBatches deletes batch IDs older than UsageBatchTTL, at most once
// every usagePruneEvery (a full scan of the bucket).
func pruneUsageBatches(tx *bbolt.Tx, now time.Time) error {
	meta := tx.Bucket(bucketMeta)
	if last, ok := unixTime(meta.Get(metaUsagePruned)); ok && now.Sub(last) < usagePruneEvery {
		return nil
	}
	cutoff := now.Add(-UsageBatchTTL)
	batches := tx.Bucket(bucketUsageBatches)
	var old [][]byte
	err := batches.ForEach(func(id, v []byte) error {
		// An unreadable timestamp cannot protect anything: drop it too.
		if at, ok := unixTime(v); !ok || at.Before(cutoff) {
			old = append(old, bytes.Clone(id))
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Deleting while iterating would make bbolt's cursor skip entries.
	for _, id := range old {
		if err := batches.Delete(id); err != nil {
			return err
		}
	}
	return meta.Put(metaUsagePruned, unixBytes(now))
}

// unixBytes encodes t as 8-byte big-endian Unix seconds.
func unixBytes(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.Unix()))
}

// unixTime decodes unixBytes' encoding; ok is false for anything else.
func unixTime(b []byte) (time.Time, bool) {
	if len(b) != 8 {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b)), 0), true
}

// QueryUsage implements Store in one read transaction. With a user, it
// seeks that user's rows of each day; without, it scans the date range.
func (s *FileStore) QueryUsage(ctx context.Context, f UsageFilter) ([]UsageRow, error) {
	days, err := f.days()
	if err != nil {
		return nil, err
	}
	rows := []UsageRow{}
	// scan appends the matching rows from seek on, while within returns true.
	scan := func(c *bbolt.Cursor, seek []byte, within func(k []byte) bool) error {
		for k, v := c.Seek(seek); k != nil && within(k); k, v = c.Next() {
			key, err := parseFileUsageKey(k)
			if err != nil {
				return err
			}
			if !f.matches(key) {
				continue
			}
			row := UsageRow{UsageKey: key}
			if err := json.Unmarshal(v, &row.UsageCounts); err != nil {
				return fmt.Errorf("decoding usage record: %w", err)
			}
			rows = append(rows, row)
		}
		return nil
	}
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketUsage).Cursor()
		if f.User == "" {
			return scan(c, []byte(f.From), func(k []byte) bool {
				return len(k) >= len(f.To) && string(k[:len(f.To)]) <= f.To
			})
		}
		for _, day := range days {
			prefix := fileUsageKey(UsageKey{User: f.User, Date: day})
			err := scan(c, prefix, func(k []byte) bool { return bytes.HasPrefix(k, prefix) })
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}
