package session

import (
	"fmt"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// Applied marks layout, beside the session buckets (see store.go):
//
//	applied/<sender node> -> what this node last applied of the messages another
//	                         node forwarded to it, in the cluster's encoding
//
// With the mark on disk, a node that restarts after applying a batch and before its
// acknowledgement reached the sender skips the batch when the sender sends it again,
// so a QoS 2 message is not delivered twice.
var bucketApplied = []byte("applied")

// PutApplied records sender's mark. The committer commits writes in the order they
// were enqueued, so once the returned ticket is durable, so is every write enqueued
// before it: a mark written after a batch's deliveries is never on disk without them.
func (s *Store) PutApplied(sender string, mark []byte) uint64 {
	k, v := []byte(sender), append([]byte(nil), mark...)
	return s.c.enqueue(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketApplied)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
}

// LoadApplied returns every sender's mark.
func (s *Store) LoadApplied() (marks map[string][]byte, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // see openBolt
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("session store %s is corrupt (%v): restore it from a backup or move it away", s.path, r)
		}
	}()
	marks = map[string][]byte{}
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApplied)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			marks[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load applied marks from %s: %w", s.path, err)
	}
	return marks, nil
}
