package session

import "time"

// PersistentRetained is a RetainedStore served from memory and written through to a
// Store, so retained messages and tombstones survive restarts. Build it with
// OpenRetained.
type PersistentRetained struct {
	*MemoryRetained
	store *Store
}

// OpenRetained loads the retained messages and tombstones of store and returns the
// store that keeps them.
func OpenRetained(store *Store, now time.Time) (*PersistentRetained, error) {
	mem := NewMemoryRetained()
	if err := store.LoadRetained(mem, now); err != nil {
		return nil, err
	}
	return &PersistentRetained{MemoryRetained: mem, store: store}, nil
}

// Set implements RetainedStore: memory first, then the write-through. Both happen
// under the memory lock (queueing a write never blocks on the disk), so the file
// keeps writes to one topic in the order memory applied them: two racing writes
// cannot leave the loser on disk for the next start.
func (r *PersistentRetained) Set(m *Message) (uint64, error) {
	var rec []byte
	switch {
	case len(m.Payload) > 0:
		b, err := encodeRetained(m)
		if err != nil {
			return 0, err
		}
		rec = b
	case m.Stamp != 0:
		b, err := encodeRetained(tombstone(m.Topic, m.Stamp))
		if err != nil {
			return 0, err
		}
		rec = b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.setLocked(m); err != nil {
		return 0, err // IsOlder: nothing changed, nothing to write
	}
	if rec == nil {
		return r.store.deleteRetained(m.Topic), nil
	}
	return r.store.putRetained(m.Topic, rec), nil
}

// ExpireTombstones implements RetainedStore, deleting the expired tombstones from
// the file too.
func (r *PersistentRetained) ExpireTombstones(before int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	gone := r.expireLocked(before)
	if len(gone) > 0 {
		r.store.deleteRetained(gone...)
	}
	return len(gone)
}
