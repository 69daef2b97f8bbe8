package keystore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"
)

// Request log layout of the bbolt file:
//
//	requests  8-byte big-endian sequence number -> JSON RequestRecord
//
// The bucket's own sequence numbers the records, so byte order is append
// order. The records beyond keep are those numbered up to the sequence
// minus keep: trimming needs no count of the records.

// AppendRequests implements Store in one write transaction: the records
// are appended and the oldest beyond keep deleted.
func (s *FileStore) AppendRequests(ctx context.Context, keep int, recs []RequestRecord) error {
	if err := validateRequests(keep, recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	// One buffer for the records and one for their keys, which bbolt
	// needs to stay put until the transaction ends: a batch is a few
	// allocations, not a few per record.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	ends := make([]int, len(recs))
	for i, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
		ends[i] = buf.Len()
	}
	raws := buf.Bytes()
	keys := make([]byte, 8*len(recs))
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRequests)
		start := 0
		for i, end := range ends {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			key := keys[8*i : 8*i+8]
			binary.BigEndian.PutUint64(key, seq)
			if err := b.Put(key, raws[start:end-1]); err != nil { // without Encode's newline
				return err
			}
			start = end
		}
		if b.Sequence() <= uint64(keep) {
			return nil
		}
		// Delete from the oldest end up to the last record beyond keep:
		// the keys first, in one pass, then each by its key. (Seeking the
		// first key again after each delete walked the emptied pages
		// every time: a quarter of the gateway's CPU for the log.)
		cutoff := b.Sequence() - uint64(keep)
		var old []byte // 8-byte keys, copied: deletes rearrange the pages
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= cutoff; k, _ = c.Next() {
			old = append(old, k...)
		}
		for i := 0; i+8 <= len(old); i += 8 {
			if err := b.Delete(old[i : i+8]); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecentRequests implements Store: a cursor from the newest record back.
func (s *FileStore) RecentRequests(ctx context.Context, q RequestQuery) ([]RequestRecord, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	col := newRequestCollector(q)
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRequests).Cursor()
		// Names need no JSON escaping: a record of another user lacks
		// this text, and is passed over without decoding it.
		mark := []byte(`"user":"` + q.User + `"`)
		n := 0
		for k, v := c.Last(); k != nil && col.more(); k, v = c.Prev() {
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return unavailable(ctx.Err())
			}
			if q.User != "" && !bytes.Contains(v, mark) {
				col.wants("") // counted as read, not selected
				continue
			}
			var r RequestRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding request log record: %w", err)
			}
			if col.wants(r.User) {
				col.take(r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return col.out, nil
}
