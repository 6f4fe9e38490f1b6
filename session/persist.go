package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Persist makes the session persistent in store: its current state is written, and
// every later change is written through. The returned ticket is the write of the
// initial state.
func (s *Session) Persist(store *Store) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == store {
		return s.ticket
	}
	s.store = store
	var disconnectedAt time.Time
	if s.out == nil {
		disconnectedAt = time.Now()
	}
	s.writeMetaLocked(disconnectedAt)
	for _, sub := range s.subs {
		s.ticket = store.put(s.ClientID, bucketSubs, []byte(sub.Filter), encodeSubscription(sub))
	}
	for _, e := range s.inflight {
		_, _ = s.putEntryLocked(e) // a message that does not encode stays in memory only
	}
	for _, e := range s.queue {
		if e.seq != 0 {
			_, _ = s.putEntryLocked(e) // as above
		}
	}
	for id := range s.incoming {
		s.ticket = store.put(s.ClientID, bucketIn, idKey(id), nil)
	}
	return s.ticket
}

// Unpersist deletes the session from its store (it ended) and stops writing through.
func (s *Session) Unpersist() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		s.ticket = s.store.deleteSession(s.ClientID)
		s.store = nil
	}
}

// Persistent reports whether the session writes through to a store.
func (s *Session) Persistent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store != nil
}

// writeMetaLocked writes the expiry interval and when the client left (zero while
// it is connected), so expiry counts the time the broker was down too.
func (s *Session) writeMetaLocked(disconnectedAt time.Time) {
	if s.store != nil {
		s.ticket = s.store.putMeta(s.ClientID, sessionMeta{expiry: s.expiry, disconnectedAt: disconnectedAt})
	}
}

func (s *Session) putEntryLocked(e *entry) (uint64, error) {
	rec := &outRecord{qos: e.out.QoS, retain: e.out.Retain, released: e.released, sent: e.sent, subIDs: e.out.SubIDs, msg: e.out.Msg}
	v, err := encodeOut(rec)
	if err != nil {
		return 0, err
	}
	s.ticket = s.store.put(s.ClientID, bucketOut, seqKey(e.seq), v)
	return s.ticket, nil
}

// forgetLocked deletes a finished or dropped delivery's record.
func (s *Session) forgetLocked(e *entry) {
	if s.store != nil && e.seq != 0 {
		s.ticket = s.store.del(s.ClientID, bucketOut, seqKey(e.seq))
	}
}

func idKey(id uint16) []byte { return binary.BigEndian.AppendUint16(nil, id) }

// Restored is a persistent session read back from the store at start.
type Restored struct {
	Session *Session
	// DisconnectedAt is when the client left; for a session whose client was
	// connected when the broker stopped, the time the store was opened.
	DisconnectedAt time.Time
	// Will is the session's will still waiting out its delay, or nil.
	Will *DelayedWill
}

// LoadSessions reads every persistent session. The sessions come back offline and
// already write through to the store; their deliveries keep their sequence numbers,
// so each is resent with the packet id it had. Expired messages are dropped. A
// record that cannot be read fails the load with an error naming the session: the
// broker must not start with part of its state silently gone.
func (s *Store) LoadSessions(cfg Config, now time.Time) (out []Restored, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a damaged file faults: see openBolt
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("session store %s is corrupt (%v): restore it from a backup or move it away", s.path, r)
		}
	}()
	var expired []func(*bolt.Tx) error
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEachBucket(func(id []byte) error {
			r, gone, err := loadSession(tx.Bucket(bucketSessions).Bucket(id), string(id), cfg, now)
			if err != nil {
				return fmt.Errorf("session %q: %w", id, err)
			}
			for _, seq := range gone {
				key := seqKey(seq)
				clientID := string(id)
				expired = append(expired, func(tx *bolt.Tx) error {
					if b := sessionBucket(tx, clientID); b != nil {
						return b.Bucket(bucketOut).Delete(key)
					}
					return nil
				})
			}
			r.Session.store = s
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("session store %s: %w", s.path, err)
	}
	for _, fn := range expired {
		s.c.enqueue(fn)
	}
	return out, nil
}

// loadSession rebuilds one session; it also returns the sequence numbers of expired
// deliveries to delete.
func loadSession(b *bolt.Bucket, clientID string, cfg Config, now time.Time) (Restored, []uint64, error) {
	var r Restored
	if b == nil {
		return r, nil, errors.New("not a bucket")
	}
	meta, err := decodeMeta(b.Get(keyMeta))
	if err != nil {
		return r, nil, err
	}
	s := New(clientID, cfg)
	s.makeMaps()
	s.expiry = meta.expiry
	r.Session = s
	r.DisconnectedAt = meta.disconnectedAt
	if r.DisconnectedAt.IsZero() {
		r.DisconnectedAt = now
	}
	if v := b.Get(keyWill); v != nil {
		// A copy: the bytes belong to the transaction reading them.
		if r.Will, err = decodeWill(append([]byte(nil), v...)); err != nil {
			return r, nil, err
		}
	}
	err = b.Bucket(bucketSubs).ForEach(func(k, v []byte) error {
		sub, err := decodeSubscription(string(k), v)
		if err != nil {
			return err
		}
		s.subs[sub.Filter] = sub
		return nil
	})
	if err != nil {
		return r, nil, err
	}
	var gone []uint64
	err = b.Bucket(bucketOut).ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: delivery key %x", errRecord, k)
		}
		seq := binary.BigEndian.Uint64(k)
		// Values point into the file's memory map, valid only in this transaction.
		o, err := decodeOut(bytes.Clone(v))
		if err != nil {
			return fmt.Errorf("delivery %d: %w", seq, err)
		}
		if seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
		// Whether a message without expiry was sent is not recorded (it costs a write
		// per message and only DUP depends on it): assume it was.
		sent := o.sent || o.msg == nil || o.msg.Expires.IsZero()
		e := &entry{seq: seq, released: o.released, sent: sent,
			out: Outgoing{Msg: o.msg, QoS: o.qos, Retain: o.retain, SubIDs: o.subIDs, PacketID: PacketID(seq)}}
		if o.released {
			// Only PUBREL/PUBCOMP is left: it holds a window slot until PUBCOMP.
			s.inflight = append(s.inflight, e)
			return nil
		}
		if !sent && o.msg.Expired(now) {
			// Expired before its delivery started: it may go (5.0 section 3.3.2.3.3).
			// A message already sent must be sent again whatever its expiry.
			gone = append(gone, seq)
			return nil
		}
		s.enqueueLocked(e)
		return nil
	})
	if err != nil {
		return r, nil, err
	}
	err = b.Bucket(bucketIn).ForEach(func(k, _ []byte) error {
		if len(k) != 2 {
			return fmt.Errorf("%w: packet id key %x", errRecord, k)
		}
		s.incoming[binary.BigEndian.Uint16(k)] = struct{}{}
		return nil
	})
	return r, gone, err
}

// LoadRetained reads every retained message and tombstone into dst, dropping
// expired messages.
func (s *Store) LoadRetained(dst *MemoryRetained, now time.Time) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a damaged file faults: see openBolt
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("session store %s is corrupt (%v): restore it from a backup or move it away", s.path, r)
		}
	}()
	var expired []string
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error {
			m, err := decodeMessage(&recordReader{b: bytes.Clone(v)}) // v is only valid in the transaction
			if err != nil {
				return fmt.Errorf("retained message %q: %w", k, err)
			}
			if m.Expired(now) {
				expired = append(expired, string(k))
				return nil
			}
			_, err = dst.Set(m)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("session store %s: %w", s.path, err)
	}
	if len(expired) > 0 {
		s.deleteRetained(expired...)
	}
	return nil
}
