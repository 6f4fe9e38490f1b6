package session

import (
	"fmt"
	"time"
)

// A will waiting out its delay (5.0) is part of the session's state [MQTT-3.1.3-9]:
// a persistent session keeps it on disk beside its meta record, so a broker that
// restarts within the delay still publishes it once the delay ends.

// keyWill is the key of a session's delayed will in its bucket.
var keyWill = []byte("will")

// DelayedWill is a will waiting for its delay, as the store keeps it.
type DelayedWill struct {
	// Msg is the will as it will be published, without an expiry: Expiry counts
	// from publication (5.0 section 3.1.3.2.4).
	Msg *Message
	// Expiry is the will's Message Expiry Interval; HasExpiry reports whether it
	// has one.
	Expiry    time.Duration
	HasExpiry bool
	// Due is when the delay ends.
	Due time.Time
}

// Message returns the will's message as published at now.
func (w *DelayedWill) Message(now time.Time) *Message {
	m := w.Msg.withoutExpiry()
	m.Received = now.UnixNano()
	if w.HasExpiry {
		m.Expires = now.Add(w.Expiry)
	}
	return m
}

// withoutExpiry returns a copy of m with no expiry.
func (m *Message) withoutExpiry() *Message {
	return &Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Props: m.Props, From: m.From, Received: m.Received, Stamp: m.Stamp, ID: m.ID}
}

// SaveWill records the session's delayed will, written through for a persistent
// session; a later one replaces it, and ClearWill removes it. It returns the
// store ticket (0 when not stored).
func (s *Session) SaveWill(w *DelayedWill) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == nil {
		return 0
	}
	rec, err := encodeWill(w)
	if err != nil {
		return 0 // a message that was just built from a decoded packet encodes
	}
	s.ticket = s.store.putSessionKey(s.ClientID, keyWill, rec)
	return s.ticket
}

// ClearWill removes the session's delayed will: it was published, or cancelled by
// the client's return.
func (s *Session) ClearWill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		s.ticket = s.store.delSessionKey(s.ClientID, keyWill)
	}
}

const willV1 = 1

func encodeWill(d *DelayedWill) ([]byte, error) {
	w := &recordWriter{}
	w.u8(willV1)
	w.u64(uint64(d.Due.UnixNano()))
	w.u64(uint64(d.Expiry))
	w.u8(b2u8(d.HasExpiry))
	if err := encodeMessage(w, d.Msg.withoutExpiry()); err != nil {
		return nil, err
	}
	return w.b, nil
}

// decodeWill decodes a will record; the will aliases b.
func decodeWill(b []byte) (*DelayedWill, error) {
	r := &recordReader{b: b}
	v := r.u8()
	d := &DelayedWill{Due: time.Unix(0, int64(r.u64())), Expiry: time.Duration(r.u64()), HasExpiry: r.u8() == 1}
	if r.err != nil || v != willV1 {
		return nil, fmt.Errorf("%w: delayed will", errRecord)
	}
	m, err := decodeMessage(r)
	if err != nil {
		return nil, fmt.Errorf("delayed will: %w", err)
	}
	d.Msg = m
	return d, nil
}
