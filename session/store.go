package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is the layout of the data file this release writes. A file with a
// newer version is refused; an older one would be migrated here.
const FormatVersion = 1

// Bucket layout:
//
//	meta/format            -> FormatVersion (one byte)
//	retained/<topic>       -> message record; an empty payload with a stamp is a
//	                          tombstone (see RetainedStore)
//	sessions/<client id>/  -> one bucket per persistent session:
//	    meta               -> expiry interval, disconnect time
//	    subs/<filter>      -> subscription options
//	    out/<seq>          -> a queued or inflight delivery; its packet id is PacketID(seq)
//	    in/<packet id>     -> an incoming QoS 2 id awaiting PUBREL
//	spool/<peer>/<seq>     -> messages held for an unreachable cluster node (spool.go)
var (
	bucketMeta     = []byte("meta")
	bucketRetained = []byte("retained")
	bucketSessions = []byte("sessions")
	keyFormat      = []byte("format")
	keyMeta        = []byte("meta")
	bucketSubs     = []byte("subs")
	bucketOut      = []byte("out")
	bucketIn       = []byte("in")
)

// StoreOptions configure a Store.
type StoreOptions struct {
	// Logger receives store errors; nil discards them.
	Logger *slog.Logger
	// LockTimeout bounds the wait for the file lock another process holds.
	LockTimeout time.Duration
}

// Store keeps persistent sessions and retained messages in a bbolt file. Writes are
// queued without blocking and group-committed; each returns a ticket, and Wait
// tells when a ticket is on disk. Clean sessions and QoS 0 never reach it.
type Store struct {
	db   *bolt.DB
	c    *committer
	path string
}

// OpenStore opens (creating if needed) the data file at path. It fails with a message
// naming the file when another process holds it, when it is not a Skein data file or
// is corrupt, or when its format is newer than this release.
func OpenStore(path string, opts StoreOptions) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	db, err := openBolt(path, timeout)
	if err != nil {
		return nil, err
	}
	if err := initLayout(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("session store %s: %w", path, err)
	}
	return &Store{db: db, c: newCommitter(db, log), path: path}, nil
}

// openBolt opens the file, turning bbolt's errors and panics on a damaged file into
// errors that say what to do.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	// A truncated file makes reads of its memory map fault (SIGBUS), which would
	// kill the process; this turns the fault into a panic recovered below.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("session store %s is corrupt (%v): restore it from a backup or move it away", path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("session store %s is locked by another process (is another skein running with this --data-dir?)", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, fmt.Errorf("session store %s is corrupt or not a Skein data file (%w): restore it from a backup or move it away", path, err)
	case err != nil:
		return nil, fmt.Errorf("session store %s: %w", path, err)
	}
	return db, nil
}

func initLayout(db *bolt.DB) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // see openBolt
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("corrupt (%v): restore it from a backup or move it away", r)
		}
	}()
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyFormat); v == nil {
			if err := meta.Put(keyFormat, []byte{FormatVersion}); err != nil {
				return err
			}
		} else if len(v) != 1 || v[0] > FormatVersion {
			return fmt.Errorf("data format %v is newer than this release understands (%d)", v, FormatVersion)
		}
		for _, b := range [][]byte{bucketRetained, bucketSessions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// Group makes the writes enqueued until the returned function is called commit in
// one transaction, all or none: a crash cannot keep one without the others. Keep
// groups short; they only delay the next commit, never block other writers.
func (s *Store) Group() (end func()) {
	s.c.gate.RLock()
	return s.c.gate.RUnlock
}

// Path returns the data file's path.
func (s *Store) Path() string { return s.path }

// Close commits queued writes and closes the file.
func (s *Store) Close() error {
	s.c.close()
	return s.db.Close()
}

// Wait blocks until the write with ticket t (and every earlier one) is on disk.
// Ticket 0 is always durable.
func (s *Store) Wait(ctx context.Context, t uint64) error {
	if t == 0 {
		return nil
	}
	return s.c.wait(ctx, t)
}

// CommitStats returns how many transactions committed and how many writes they
// carried: Writes/Batches is the average group-commit batch.
func (s *Store) CommitStats() (batches, writes int64) {
	return s.c.Batches.Load(), s.c.Writes.Load()
}

// sessionBucket returns a session's bucket, or nil when the session is not stored
// (a late write for a session already deleted is dropped, never resurrecting it).
func sessionBucket(tx *bolt.Tx, clientID string) *bolt.Bucket {
	return tx.Bucket(bucketSessions).Bucket([]byte(clientID))
}

func (s *Store) putMeta(clientID string, m sessionMeta) uint64 {
	v := encodeMeta(m)
	return s.c.enqueue(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketSessions).CreateBucketIfNotExists([]byte(clientID))
		if err != nil {
			return fmt.Errorf("store session %q: %w", clientID, err)
		}
		for _, name := range [][]byte{bucketSubs, bucketOut, bucketIn} {
			if _, err := b.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("store session %q: %w", clientID, err)
			}
		}
		return b.Put(keyMeta, v)
	})
}

func (s *Store) deleteSession(clientID string) uint64 {
	return s.c.enqueue(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketSessions).DeleteBucket([]byte(clientID))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// put writes key=value in one of a session's sub-buckets; del deletes the key.
func (s *Store) put(clientID string, bucket, key, value []byte) uint64 {
	return s.c.enqueue(func(tx *bolt.Tx) error {
		if b := sessionBucket(tx, clientID); b != nil {
			return b.Bucket(bucket).Put(key, value)
		}
		return nil
	})
}

func (s *Store) del(clientID string, bucket, key []byte) uint64 {
	return s.c.enqueue(func(tx *bolt.Tx) error {
		if b := sessionBucket(tx, clientID); b != nil {
			return b.Bucket(bucket).Delete(key)
		}
		return nil
	})
}

// putSessionKey writes key=value in a session's own bucket, beside its meta record;
// delSessionKey deletes the key.
func (s *Store) putSessionKey(clientID string, key, value []byte) uint64 {
	return s.c.enqueue(func(tx *bolt.Tx) error {
		if b := sessionBucket(tx, clientID); b != nil {
			return b.Put(key, value)
		}
		return nil
	})
}

func (s *Store) delSessionKey(clientID string, key []byte) uint64 {
	return s.c.enqueue(func(tx *bolt.Tx) error {
		if b := sessionBucket(tx, clientID); b != nil {
			return b.Delete(key)
		}
		return nil
	})
}

// putRetained writes a retained record (a message or a tombstone) under topic.
func (s *Store) putRetained(topic string, rec []byte) uint64 {
	key := []byte(topic)
	return s.c.enqueue(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).Put(key, rec)
	})
}

// deleteRetained deletes the retained records of topics, in one write.
func (s *Store) deleteRetained(topics ...string) uint64 {
	keys := make([][]byte, len(topics))
	for i, t := range topics {
		keys[i] = []byte(t)
	}
	return s.c.enqueue(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRetained)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
