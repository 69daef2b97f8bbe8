package keystore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// Usage layout of the bbolt file:
//
//	usage          "<date>\x00<user>\x00<user ID>\x00<model>" -> JSON UsageCounts
//	usage_writers  "<writer>\x00<user>" -> 8-byte big-endian last batch of
//	               the writer applied for the user, then 8-byte big-endian
//	               Unix seconds it was applied
//	meta           "usage_pruned" -> 8-byte big-endian Unix seconds
//
// The date and the ID are fixed-width and NUL sorts before every other
// byte, so byte order is (date, user, ID, model) order: a range query is one
// cursor Seek and a forward scan, and a user's rows of one day are one
// contiguous prefix.

// metaUsagePruned records, in the meta bucket, when usage_writers and, with
// a retention, usage were last pruned, so that every AddUsage need not scan
// them.
var metaUsagePruned = []byte("usage_pruned")

// usagePruneEvery is how often AddUsage prunes: a writer is remembered, and
// a row kept past its retention, for at most this much longer.
const usagePruneEvery = time.Hour

// fileUsageKey encodes a row's key for the usage bucket.
func fileUsageKey(k UsageKey) []byte {
	b := make([]byte, 0, len(k.Date)+len(k.User)+len(k.UserID)+len(k.Model)+3)
	b = append(b, k.Date...)
	b = append(b, 0)
	b = append(b, k.User...)
	b = append(b, 0)
	b = append(b, k.UserID...)
	b = append(b, 0)
	return append(b, k.Model...)
}

// parseFileUsageKey decodes a usage bucket key. The model, last, may contain
// NUL itself; the date, user and ID cannot.
func parseFileUsageKey(b []byte) (UsageKey, error) {
	date, rest, ok := bytes.Cut(b, []byte{0})
	if !ok || len(date) != len(UsageDateLayout) {
		return UsageKey{}, fmt.Errorf("malformed usage key %q", b)
	}
	user, rest, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return UsageKey{}, fmt.Errorf("malformed usage key %q", b)
	}
	id, model, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return UsageKey{}, fmt.Errorf("malformed usage key %q", b)
	}
	return UsageKey{User: string(user), UserID: string(id), Model: string(model), Date: string(date)}, nil
}

// AddUsage implements Store in one write transaction, so a batch is taken
// whole or not at all: the writer's sequence check, the counts, and now and
// then the pruning of idle writers and of rows past their retention.
func (s *FileStore) AddUsage(ctx context.Context, b UsageBatch) error {
	if err := b.validate(); err != nil {
		return err
	}
	sums := sumUsage(b.Rows)
	if len(sums) == 0 {
		return nil
	}
	now := time.Now()
	return s.update(ctx, func(tx *bbolt.Tx) error {
		// Each user's rows go at most once per batch: a user whose rows of
		// this batch, or of a later one, were applied is skipped (a retry).
		writers := tx.Bucket(bucketUsageWriters)
		state := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, b.Seq), uint64(now.Unix()))
		applied := make(map[string]bool)
		for k := range sums {
			if _, seen := applied[k.User]; seen {
				continue
			}
			wk := []byte(b.Writer + "\x00" + k.User)
			last, _, ok := writerState(writers.Get(wk))
			applied[k.User] = ok && last >= b.Seq
			if !applied[k.User] {
				if err := writers.Put(wk, state); err != nil {
					return err
				}
			}
		}
		if err := pruneUsage(tx, now, b.Retention); err != nil {
			return err
		}
		usage := tx.Bucket(bucketUsage)
		for k, add := range sums {
			if applied[k.User] {
				continue
			}
			key := fileUsageKey(k)
			var c UsageCounts
			if raw := usage.Get(key); raw != nil {
				if err := json.Unmarshal(raw, &c); err != nil {
					return fmt.Errorf("decoding usage record: %w", err)
				}
			}
			c = saturatedSum(c, add)
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

// saturatedSum adds b to a counter by counter, stopping at MaxUsageCount.
func saturatedSum(a, b UsageCounts) UsageCounts {
	for _, ctr := range usageCounters {
		p := ctr.of(&a)
		*p = min(max(*p, 0)+*ctr.of(&b), MaxUsageCount)
	}
	return a
}

// writerState decodes a usage_writers value.
func writerState(v []byte) (seq uint64, at time.Time, ok bool) {
	if len(v) != 16 {
		return 0, time.Time{}, false
	}
	return binary.BigEndian.Uint64(v), time.Unix(int64(binary.BigEndian.Uint64(v[8:])), 0), true
}

// pruneUsage forgets writers idle for UsageBatchTTL and, with a retention,
// deletes rows of days that ended longer ago than that; at most once every
// usagePruneEvery.
func pruneUsage(tx *bbolt.Tx, now time.Time, retention time.Duration) error {
	meta := tx.Bucket(bucketMeta)
	if last, ok := unixTime(meta.Get(metaUsagePruned)); ok && now.Sub(last) < usagePruneEvery {
		return nil
	}
	cutoff := now.Add(-UsageBatchTTL)
	if err := deleteWhere(tx.Bucket(bucketUsageWriters), nil, func(_, v []byte) bool {
		// An unreadable state cannot protect anything: drop it too.
		_, at, ok := writerState(v)
		return !ok || at.Before(cutoff)
	}); err != nil {
		return err
	}
	if retention > 0 {
		// A day ends at the next midnight: its rows go once that is older
		// than the retention. Keys start with the date, so the rows to
		// delete are the ones before the first day still kept.
		firstKept := []byte(UsageDate(now.Add(-retention)))
		if err := deleteWhere(tx.Bucket(bucketUsage), firstKept, nil); err != nil {
			return err
		}
	}
	return meta.Put(metaUsagePruned, unixBytes(now))
}

// deleteWhere deletes the bucket's keys below before (nil: any) that drop
// selects (nil: all of them).
func deleteWhere(b *bbolt.Bucket, before []byte, drop func(k, v []byte) bool) error {
	var doomed [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && (before == nil || bytes.Compare(k, before) < 0); k, v = c.Next() {
		if drop == nil || drop(k, v) {
			doomed = append(doomed, bytes.Clone(k))
		}
	}
	// Deleting while iterating would make bbolt's cursor skip entries.
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
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
			// The day's rows of this name, or of this one user.
			prefix := fileUsageKey(UsageKey{User: f.User, UserID: f.UserID, Date: day})
			if f.UserID == "" {
				prefix = prefix[:len(prefix)-1]
			}
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
	slices.SortFunc(rows, compareUsageRows)
	return rows, nil
}
