package session

import (
	"fmt"
	"time"
)

// MarshalMessage encodes a message in the store's record format, which is also how
// nodes send messages to each other.
func MarshalMessage(m *Message) ([]byte, error) {
	w := &recordWriter{}
	if err := encodeMessage(w, m); err != nil {
		return nil, err
	}
	return w.b, nil
}

// UnmarshalMessage decodes MarshalMessage's output. The message aliases b.
func UnmarshalMessage(b []byte) (*Message, error) {
	return decodeMessage(&recordReader{b: b})
}

const exportV1 = 1

// Export serializes the session's state (subscriptions, queued and inflight
// deliveries with their sequence numbers and QoS 2 states, incoming QoS 2 ids,
// expiry) so another node can take the session over with Import: the deliveries keep
// their packet ids, so none is lost and QoS 2 is not delivered twice.
func (s *Session) Export() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exportLocked()
}

// exportLocked is Export with s.mu held.
func (s *Session) exportLocked() ([]byte, error) {
	w := &recordWriter{}
	w.u8(exportV1)
	w.u32(s.expiry)
	w.u64(s.nextSeq)
	w.u32(uint32(len(s.subs)))
	for _, sub := range s.subs {
		w.bytes([]byte(sub.Filter))
		w.bytes(encodeSubscription(sub))
	}
	entries := append(append([]*entry(nil), s.inflight...), s.queue...)
	n := 0
	for _, e := range entries {
		if e.seq != 0 {
			n++
		}
	}
	w.u32(uint32(n))
	for _, e := range entries {
		if e.seq == 0 {
			continue // a queued QoS 0 message does not move
		}
		rec, err := encodeOut(&outRecord{qos: e.out.QoS, retain: e.out.Retain, released: e.released, subIDs: e.out.SubIDs, msg: e.out.Msg})
		if err != nil {
			return nil, fmt.Errorf("export session %q: %w", s.ClientID, err)
		}
		w.u64(e.seq)
		w.u8(b2u8(e.sent))
		w.bytes(rec)
	}
	w.u32(uint32(len(s.incoming)))
	for id := range s.incoming {
		w.u16(id)
	}
	return w.b, nil
}

// Import rebuilds a session exported by Export on another node. It is offline and
// not persistent; the broker attaches and persists it as for any session.
func Import(clientID string, cfg Config, b []byte, now time.Time) (*Session, error) {
	r := &recordReader{b: b}
	if v := r.u8(); r.err == nil && v != exportV1 {
		return nil, fmt.Errorf("import session %q: %w: version %d", clientID, errRecord, v)
	}
	s := New(clientID, cfg)
	s.makeMaps()
	s.expiry = r.u32()
	s.nextSeq = r.u64()
	for i, n := 0, int(r.u32()); i < n && r.err == nil; i++ {
		filter := string(r.bytes())
		sub, err := decodeSubscription(filter, r.bytes())
		if r.err == nil && err != nil {
			return nil, fmt.Errorf("import session %q: %w", clientID, err)
		}
		s.subs[filter] = sub
	}
	for i, n := 0, int(r.u32()); i < n && r.err == nil; i++ {
		seq := r.u64()
		sent := r.u8() != 0
		rec := r.bytes()
		if r.err != nil {
			break
		}
		o, err := decodeOut(rec)
		if err != nil {
			return nil, fmt.Errorf("import session %q: delivery %d: %w", clientID, seq, err)
		}
		e := &entry{seq: seq, released: o.released, sent: sent,
			out: Outgoing{Msg: o.msg, QoS: o.qos, Retain: o.retain, SubIDs: o.subIDs, PacketID: PacketID(seq)}}
		switch {
		case o.released:
			s.inflight = append(s.inflight, e)
		case !o.msg.Expired(now):
			s.enqueueLocked(e)
		}
		if seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
	}
	for i, n := 0, int(r.u32()); i < n && r.err == nil; i++ {
		s.incoming[r.u16()] = struct{}{}
	}
	if r.err != nil {
		return nil, fmt.Errorf("import session %q: %w", clientID, r.err)
	}
	return s, nil
}
