package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/skein-mq/skein/proto"
)

// Records on disk are small binary structures. Each starts with a record version
// byte so a later release can read what an earlier one wrote. Messages embed a 5.0
// PUBLISH as the codec writes it, which carries the topic, payload and properties
// without a second format to maintain.

const recordV1 = 1

var errRecord = errors.New("session: corrupt record")

// recordWriter appends fields.
type recordWriter struct{ b []byte }

func (w *recordWriter) u8(v byte)    { w.b = append(w.b, v) }
func (w *recordWriter) u16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *recordWriter) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *recordWriter) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *recordWriter) bytes(v []byte) {
	w.b = binary.AppendUvarint(w.b, uint64(len(v)))
	w.b = append(w.b, v...)
}

// recordReader consumes fields; the first short read sets err.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errRecord
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
func (r *recordReader) u8() byte    { return r.take(1)[0] }
func (r *recordReader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *recordReader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *recordReader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }
func (r *recordReader) bytes() []byte {
	if r.err != nil {
		return nil
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > uint64(len(r.b)-k) {
		r.err = errRecord
		return nil
	}
	r.b = r.b[k:]
	return r.take(int(n))
}

// encodeMessage writes a message: record version, expiry (unix nanoseconds, 0 for
// none), publisher id, QoS and retain flag, then the message as a 5.0 PUBLISH.
func encodeMessage(w *recordWriter, m *Message) error {
	w.u8(recordV1)
	var exp int64
	if !m.Expires.IsZero() {
		exp = m.Expires.UnixNano()
	}
	w.u64(uint64(exp))
	w.bytes([]byte(m.From))
	w.u8(m.QoS)
	w.u8(b2u8(m.Retain))
	p := proto.Publish{Topic: m.Topic, Payload: m.Payload, Props: m.Props}
	enc, err := p.Append(nil, proto.V5)
	if err != nil {
		return fmt.Errorf("encode message on %q: %w", m.Topic, err)
	}
	w.bytes(enc)
	// Read only when present: records written before these fields end earlier.
	w.u64(uint64(m.Stamp))
	w.u64(m.ID.Origin)
	w.u64(m.ID.Seq)
	return nil
}

// encodeRetained returns the record of a retained message or tombstone: a message
// record. A tombstone is a message with an empty payload and a stamp; releases before
// tombstones deleted the record on a clear instead, so no older file holds an empty
// retained record, and an older node reading one from a snapshot clears the topic.
func encodeRetained(m *Message) ([]byte, error) {
	w := &recordWriter{}
	if err := encodeMessage(w, m); err != nil {
		return nil, err
	}
	return w.b, nil
}

func decodeMessage(r *recordReader) (*Message, error) {
	if v := r.u8(); r.err == nil && v != recordV1 {
		return nil, fmt.Errorf("%w: message record version %d", errRecord, v)
	}
	exp := int64(r.u64())
	from := string(r.bytes())
	qos := r.u8()
	retain := r.u8() != 0
	enc := r.bytes()
	if r.err != nil {
		return nil, r.err
	}
	pk, _, err := proto.DecodeBytes(enc, proto.V5)
	if err != nil {
		return nil, fmt.Errorf("%w: message: %w", errRecord, err)
	}
	p, ok := pk.(*proto.Publish)
	if !ok || qos > 2 {
		return nil, fmt.Errorf("%w: message is not a PUBLISH", errRecord)
	}
	m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: qos, Retain: retain, Props: p.Props, From: from}
	if exp != 0 {
		m.Expires = time.Unix(0, exp)
	}
	if len(r.b) >= 8 {
		m.Stamp = int64(r.u64())
	}
	if len(r.b) >= 16 {
		m.ID = MessageID{Origin: r.u64(), Seq: r.u64()}
	}
	return m, nil
}

// outRecord is one delivery of a persistent session: queued, or inflight.
type outRecord struct {
	qos      byte
	retain   bool
	released bool // PUBREC received: only PUBREL/PUBCOMP left
	sent     bool // the PUBLISH went out at least once (recorded for expiring messages)
	subIDs   []int
	msg      *Message // nil once released
}

func encodeOut(o *outRecord) ([]byte, error) {
	w := &recordWriter{}
	w.u8(recordV1)
	w.u8(o.qos)
	w.u8(b2u8(o.retain) | b2u8(o.released)<<1 | b2u8(o.sent)<<2)
	w.u16(uint16(len(o.subIDs)))
	for _, id := range o.subIDs {
		w.u32(uint32(id))
	}
	if !o.released {
		if err := encodeMessage(w, o.msg); err != nil {
			return nil, err
		}
	}
	return w.b, nil
}

func decodeOut(b []byte) (*outRecord, error) {
	r := &recordReader{b: b}
	if v := r.u8(); r.err == nil && v != recordV1 {
		return nil, fmt.Errorf("%w: delivery record version %d", errRecord, v)
	}
	o := &outRecord{qos: r.u8()}
	flags := r.u8()
	o.retain, o.released, o.sent = flags&1 != 0, flags&2 != 0, flags&4 != 0
	n := int(r.u16())
	for i := 0; i < n && r.err == nil; i++ {
		o.subIDs = append(o.subIDs, int(r.u32()))
	}
	if r.err != nil {
		return nil, r.err
	}
	if !o.released {
		m, err := decodeMessage(r)
		if err != nil {
			return nil, err
		}
		o.msg = m
	}
	return o, nil
}

// encodeSubscription writes a subscription's options (the filter is the key).
func encodeSubscription(s Subscription) []byte {
	w := &recordWriter{}
	w.u8(recordV1)
	w.u8(s.QoS)
	w.u8(b2u8(s.NoLocal) | b2u8(s.RetainAsPublished)<<1)
	w.u8(s.RetainHandling)
	w.u32(uint32(s.ID))
	return w.b
}

func decodeSubscription(filter string, b []byte) (Subscription, error) {
	r := &recordReader{b: b}
	v := r.u8()
	s := Subscription{Subscription: proto.Subscription{Filter: filter, QoS: r.u8()}}
	flags := r.u8()
	s.NoLocal, s.RetainAsPublished = flags&1 != 0, flags&2 != 0
	s.RetainHandling = r.u8()
	s.ID = int(r.u32())
	if r.err != nil || v != recordV1 || s.QoS > 2 || s.RetainHandling > 2 {
		return s, fmt.Errorf("%w: subscription %q", errRecord, filter)
	}
	return s, nil
}

// sessionMeta is the per-session record: expiry interval and when the client left.
type sessionMeta struct {
	expiry         uint32
	disconnectedAt time.Time // zero while online
}

func encodeMeta(m sessionMeta) []byte {
	w := &recordWriter{}
	w.u8(recordV1)
	w.u32(m.expiry)
	var at int64
	if !m.disconnectedAt.IsZero() {
		at = m.disconnectedAt.UnixNano()
	}
	w.u64(uint64(at))
	return w.b
}

func decodeMeta(b []byte) (sessionMeta, error) {
	r := &recordReader{b: b}
	v := r.u8()
	m := sessionMeta{expiry: r.u32()}
	if at := int64(r.u64()); at != 0 {
		m.disconnectedAt = time.Unix(0, at)
	}
	if r.err != nil || v != recordV1 {
		return m, fmt.Errorf("%w: session record", errRecord)
	}
	return m, nil
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
