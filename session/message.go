package session

import (
	"sync/atomic"
	"time"

	"github.com/skein-mq/skein/proto"
)

// Message is an application message as the broker routes and stores it. It is
// immutable once published: one *Message is shared by every session it is queued for.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte // QoS it was published with
	Retain  bool // retain flag it was published with
	// Props holds the 5.0 properties forwarded to subscribers: payload format,
	// content type, response topic, correlation data and user properties. Message
	// expiry is kept as Expires instead, and topic alias and subscription identifiers
	// are per connection, so neither is here.
	Props proto.Properties
	// From is the publishing client's id, for the no-local subscription option.
	From string
	// Expires is when the message expires (5.0 message expiry); zero means never.
	Expires time.Time
	// Received is when the broker received the message (unix nanoseconds), for the
	// publish-to-deliver latency; 0 when unknown (read back from disk).
	Received int64
	// Stamp orders writes of retained messages to one topic across a cluster (a
	// hybrid logical clock, wall-clock nanoseconds); the later stamp wins (see
	// Later). 0 on a standalone node.
	Stamp int64
	// ID identifies the message across a cluster, so that a node receiving it twice
	// while a session moves between nodes delivers it once (see
	// Session.WatchDuplicates). Zero on a standalone node.
	ID MessageID

	// shared memoizes the QoS 0 encoding (retain flag clear) per version slot, so
	// fan-out encodes once for all subscribers that receive identical bytes.
	shared [2]atomic.Pointer[[]byte]
}

// MessageID names a message cluster-wide: a random number for the run of the node
// where it was published, and a sequence number in that run.
type MessageID struct{ Origin, Seq uint64 }

// IsZero reports whether the id is unset.
func (id MessageID) IsZero() bool { return id == MessageID{} }

// SharedEncoding returns the memoized encoding in slot (one per family of protocol
// versions with identical bytes), building it with build on first use. Concurrent
// first uses may both build; one result wins and both are equal.
func (m *Message) SharedEncoding(slot int, build func() ([]byte, error)) ([]byte, error) {
	if p := m.shared[slot].Load(); p != nil {
		return *p, nil
	}
	b, err := build()
	if err != nil {
		return nil, err
	}
	m.shared[slot].CompareAndSwap(nil, &b)
	return b, nil
}

// Tombstone reports whether m, as a retained write, is a tombstone: a clear (empty
// payload) with a stamp, which a cluster node keeps so that older writes to the
// topic lose to it (see RetainedStore).
func (m *Message) Tombstone() bool { return len(m.Payload) == 0 && m.Stamp != 0 }

// Expired reports whether the message has expired at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// RemainingExpiry returns the expiry interval to send with the message at now in
// whole seconds, rounded up so a message is never sent with 0 while it is alive, and
// whether the message has an expiry at all [MQTT-3.3.2-6].
func (m *Message) RemainingExpiry(now time.Time) (uint32, bool) {
	if m.Expires.IsZero() {
		return 0, false
	}
	d := m.Expires.Sub(now)
	if d <= 0 {
		return 0, true
	}
	return uint32((d + time.Second - 1) / time.Second), true
}

// NewMessage builds a Message from a decoded PUBLISH received at now. The payload is
// not copied: decoded packets own their buffers (see package proto).
func NewMessage(p *proto.Publish, from string, now time.Time) *Message {
	m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: from, Received: now.UnixNano()}
	if !p.Props.Empty() {
		m.Props = forwardedProps(&p.Props)
		if p.Props.Has(proto.PropMessageExpiry) {
			m.Expires = now.Add(time.Duration(p.Props.MessageExpiry) * time.Second)
		}
	}
	return m
}

// forwardedProps keeps the properties a server forwards unaltered to subscribers
// [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20].
func forwardedProps(in *proto.Properties) proto.Properties {
	var out proto.Properties
	for _, id := range []proto.PropID{proto.PropPayloadFormat, proto.PropContentType, proto.PropResponseTopic, proto.PropCorrelationData} {
		if in.Has(id) {
			out.Set(id)
		}
	}
	out.PayloadFormat = in.PayloadFormat
	out.ContentType = in.ContentType
	out.ResponseTopic = in.ResponseTopic
	out.CorrelationData = in.CorrelationData
	out.User = in.User
	return out
}
