package session

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skein-mq/skein/proto"
)

// Config bounds one session. The zero value is not valid; use DefaultConfig.
type Config struct {
	// MaxInflight is the outgoing QoS 1/2 window: messages sent and not yet
	// acknowledged. A 5.0 client's Receive Maximum lowers it further (Attach).
	MaxInflight int
	// MaxQueued bounds the messages waiting for the window or for the client to
	// return. Past it, a message is dropped (see DropOldest) and counted.
	MaxQueued int
	// MaxQueuedBytes bounds the topic and payload bytes of the queued messages; 0
	// means no bound beyond MaxQueued.
	MaxQueuedBytes int
	// DropOldest drops the oldest queued message to make room for a new one instead
	// of dropping the new one (Mosquitto drops the new one; so does the default).
	DropOldest bool
	// QueueQoS0 queues QoS 0 messages for an offline persistent session, as
	// Mosquitto's queue_qos0_messages does. Default false.
	QueueQoS0 bool
	// OnDrop, when set, is called for every message the session drops, whether the
	// message arriving or an older one it evicts; it runs under the session's lock
	// and must not block (a counter).
	OnDrop func(DropReason)
}

// DefaultConfig returns the defaults: 100 inflight, 1000 queued, drop newest.
func DefaultConfig() Config {
	return Config{MaxInflight: 100, MaxQueued: 1000}
}

// Validate checks the bounds.
func (c Config) Validate() error {
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		return fmt.Errorf("session: max inflight %d: must be 1..65535", c.MaxInflight)
	}
	if c.MaxQueued < 0 {
		return fmt.Errorf("session: max queued messages %d: must not be negative", c.MaxQueued)
	}
	if c.MaxQueuedBytes < 0 {
		return fmt.Errorf("session: max queued bytes %d: must not be negative", c.MaxQueuedBytes)
	}
	return nil
}

// Outgoing is one packet a session hands to its connection: a PUBLISH of Msg, or, when
// Release is set, a PUBREL for PacketID.
type Outgoing struct {
	Msg      *Message
	QoS      byte
	PacketID uint16
	Dup      bool
	Retain   bool  // retain flag as sent to this subscriber
	SubIDs   []int // 5.0 subscription identifiers of the matching subscriptions
	Release  bool
	// Ticket, when not 0, is the store write that made this delivery durable: the
	// connection must not send it before Store.Wait(Ticket) returns, or a crash could
	// lose the record of a QoS 2 message the client already has.
	Ticket uint64
}

// Outbox is where an online session delivers. Push appends to the connection's write
// queue and must not block or call back into the session. It reports false when the
// connection is closing or its queue is full; the session then keeps QoS 1/2 messages
// for the next connection and drops QoS 0 ones.
type Outbox interface {
	Push(o Outgoing) bool
}

// Subscription is a subscription as the session remembers it, keyed by its full
// filter (with any $share/group/ prefix).
type Subscription struct {
	proto.Subscription
	ID int // 5.0 subscription identifier, 0 for none
}

// Delivery is a message routed to a session, with the options of the subscription it
// matched.
type Delivery struct {
	Msg    *Message
	QoS    byte // granted: min(published, subscribed)
	Retain bool
	SubIDs []int
	// Shared names the shared subscription (group and filter) the message came
	// through, "" for an ordinary one: if the client leaves before acknowledging it,
	// TakeShared hands it back for another member of the group.
	Shared string
}

// DropReason says why a delivery was not queued.
type DropReason int

// Reasons for dropping a message.
const (
	NotDropped    DropReason = iota
	DropQueueFull            // the session's queue was at MaxQueued
	DropOffline              // QoS 0 for a session with no connection
	DropOutbox               // QoS 0 and the connection's write queue was full
	DropExpired              // message expiry passed while it waited
	DropTooLarge             // larger than the client's Maximum Packet Size (5.0)
	// NumDropReasons is the number of DropReason values, for arrays indexed by them.
	NumDropReasons
)

// DropReasons lists the labels of the drop reasons, indexed by DropReason.
func DropReasons() []string { return dropReasonNames[:] }

var dropReasonNames = [NumDropReasons]string{"none", "queue_full", "offline", "outbox_full", "expired", "too_large"}

// String names the reason as metrics label it.
func (r DropReason) String() string {
	return dropReasonNames[r]
}

// ErrPacketIDNotFound is returned for an ack of a packet id the session is not waiting for.
var ErrPacketIDNotFound = errors.New("session: packet identifier not found")

// PacketID is the packet identifier of the delivery with sequence number seq (from 1).
// Deriving the id from the sequence makes it durable with the delivery record itself:
// after a restart a message goes out again with the id it had [MQTT-4.4.0-1].
func PacketID(seq uint64) uint16 { return uint16((seq-1)%65535) + 1 }

// entry is a QoS 1/2 delivery from the moment it is routed to its final ack: queued,
// then inflight.
type entry struct {
	out Outgoing
	seq uint64
	// released is set once PUBREC arrived: only the PUBREL/PUBCOMP exchange is left
	// [MQTT-4.3.3-4], and the message is forgotten.
	released bool
	// sent is set once the PUBLISH was pushed to a connection (or, for entries read
	// back from disk, may have been): a resend carries DUP.
	sent bool
	// shared is Delivery.Shared.
	shared string
}

// Session is the state of one client session. All methods are safe for concurrent use.
type Session struct {
	ClientID string
	cfg      Config

	mu sync.Mutex // guards everything below
	// subs: full filter -> subscription.
	subs map[string]Subscription
	// window is the inflight limit for the current connection.
	window int
	// inflight in sequence order; acks usually come in order, so the scan is short.
	inflight []*entry
	// queue holds deliveries waiting for the window or for a connection, in order.
	queue       []*entry
	queuedBytes int // topic and payload bytes in queue
	nextSeq     uint64
	// incoming holds the QoS 2 packet ids received and not yet released by PUBREL.
	incoming map[uint16]struct{}
	out      Outbox
	// expiry is the session expiry interval in force for when the client goes away.
	expiry uint32
	// drops counts messages dropped by this session since it was created.
	drops uint64

	// identity is who the client authenticated as, for the read checks at delivery.
	identity atomic.Pointer[identity]

	// relay, once set by ExportAndSeal, takes every delivery: the session lives on
	// another node now.
	relay func(Delivery) <-chan error
	// seen, while not nil, holds the ids of recent deliveries so a message that
	// arrives twice while the session moves between nodes is delivered once.
	seen *idWindow

	// store is set while the session is persistent; every change is written through.
	store *Store
	// ticket is the newest store write of this session.
	ticket uint64
}

// New returns an empty session. Its maps are made on first use: most sessions of
// an idle broker never subscribe or receive QoS 2.
func New(clientID string, cfg Config) *Session {
	return &Session{
		ClientID: clientID,
		cfg:      cfg,
		window:   cfg.MaxInflight,
		nextSeq:  1,
	}
}

// makeMaps makes the maps New leaves nil, for the code that restores a session.
func (s *Session) makeMaps() {
	s.subs = make(map[string]Subscription)
	s.incoming = make(map[uint16]struct{})
}

type identity struct {
	username  string
	anonymous bool
}

// anonymousIdentity is shared by the sessions of anonymous clients; never modified.
var anonymousIdentity = identity{anonymous: true}

// SetIdentity records who the session's client authenticated as.
func (s *Session) SetIdentity(username string, anonymous bool) {
	if username == "" && anonymous {
		s.identity.Store(&anonymousIdentity) // the usual case, without an allocation
		return
	}
	s.identity.Store(&identity{username, anonymous})
}

// Identity returns who the session's client authenticated as; a session restored
// from disk is anonymous until its client connects.
func (s *Session) Identity() (username string, anonymous bool) {
	if id := s.identity.Load(); id != nil {
		return id.username, id.anonymous
	}
	return "", true
}

// SetExpiry sets the session expiry interval (seconds; 0xFFFFFFFF never).
func (s *Session) SetExpiry(sec uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expiry = sec
	s.writeMetaLocked(time.Time{})
}

// Expiry returns the session expiry interval.
func (s *Session) Expiry() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiry
}

// Ticket returns the newest store write of this session (0 when not persistent): an
// acknowledgement that depends on the session's state (SUBACK, PUBREC, PUBCOMP) waits
// for it.
func (s *Session) Ticket() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ticket
}

// Subscribe records a subscription and reports whether it replaced one with the same filter.
func (s *Session) Subscribe(sub Subscription) (existed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, existed = s.subs[sub.Filter]
	if s.subs == nil {
		s.subs = make(map[string]Subscription)
	}
	s.subs[sub.Filter] = sub
	if s.store != nil {
		s.ticket = s.store.put(s.ClientID, bucketSubs, []byte(sub.Filter), encodeSubscription(sub))
	}
	return existed
}

// Unsubscribe removes a subscription and reports whether it existed.
func (s *Session) Unsubscribe(filter string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.subs[filter]
	delete(s.subs, filter)
	if ok && s.store != nil {
		s.ticket = s.store.del(s.ClientID, bucketSubs, []byte(filter))
	}
	return ok
}

// Subscriptions returns a copy of the session's subscriptions.
func (s *Session) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, sub)
	}
	return out
}

// Counts returns how many messages are inflight and queued, and how many were dropped.
func (s *Session) Counts() (inflight, queued int, drops uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight), len(s.queue), s.drops
}

// Online reports whether a connection is attached.
func (s *Session) Online() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out != nil
}

// Attach connects the session to a connection's outbox. receiveMax is the client's
// Receive Maximum (0 when it sent none); the window is the smaller of it and
// MaxInflight. Every pending PUBREL is pushed again, and every unacknowledged
// PUBLISH goes back to the front of the queue, to be sent again with DUP set and
// its original packet id [MQTT-4.4.0-1] as the new window allows: a client that
// came back with a smaller Receive Maximum gets no more than it allows
// [MQTT-3.3.4-9], and a push the connection refuses is retried by Refill like any
// other.
func (s *Session) Attach(out Outbox, receiveMax int, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = out
	s.window = s.cfg.MaxInflight
	if receiveMax > 0 && receiveMax < s.window {
		s.window = receiveMax
	}
	s.writeMetaLocked(time.Time{})
	// In the order they were sent. Once one PUBLISH does not fit (or is refused),
	// it and the later ones go back to the queue, so the order holds.
	var resend []*entry
	kept := s.inflight[:0]
	for _, e := range s.inflight {
		if e.released {
			kept = append(kept, e)
			// After the record of its PUBREC, like the first PUBREL: sent before it
			// is on disk, a crash would bring the message back after the client
			// forgot it.
			out.Push(Outgoing{PacketID: e.out.PacketID, Release: true, Ticket: e.out.Ticket})
			continue
		}
		if len(resend) == 0 && len(kept) < s.window {
			o := e.out
			o.Dup = true
			if out.Push(o) {
				kept = append(kept, e)
				continue
			}
		}
		resend = append(resend, e)
		s.queuedBytes += msgSize(e.out.Msg)
	}
	clear(s.inflight[len(kept):])
	s.inflight = kept
	if len(resend) > 0 {
		s.queue = append(resend, s.queue...)
	}
	s.fillLocked(now)
}

// Detach disconnects the session from its connection, if out is still the one
// attached (a newer connection may have attached already).
func (s *Session) Detach(out Outbox, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == out {
		s.out = nil
		s.writeMetaLocked(now)
	}
}

// Deliver routes one message to the session; see DeliverDurable.
func (s *Session) Deliver(d Delivery, now time.Time) DropReason {
	r, _ := s.DeliverDurable(d, now)
	return r
}

// DeliverDurable routes one message to the session. QoS 0 goes straight to the
// connection (and is dropped when there is none, unless QueueQoS0); QoS 1/2 take the
// next sequence number (and so packet id) and a window slot, or wait in the queue
// behind messages already waiting, so that order is kept. For a persistent session the
// delivery is written to the store; the returned ticket is that write, which the
// publisher's acknowledgement must wait for (0 when nothing was written).
func (s *Session) DeliverDurable(d Delivery, now time.Time) (DropReason, uint64) {
	r, t, _ := s.DeliverOrRelay(d, now)
	return r, t
}

// DeliverOrRelay is DeliverDurable, and for a session that moved to another node
// (see ExportAndSeal) it hands the delivery to the relay and returns the relay's
// channel, which yields once that node accepted it (nil: nothing to wait for).
// The caller waits for it, if at all, after releasing whatever it holds: the other
// node's answer can take as long as the forward timeout.
func (s *Session) DeliverOrRelay(d Delivery, now time.Time) (DropReason, uint64, <-chan error) {
	s.mu.Lock()
	if relay := s.relay; relay != nil {
		s.mu.Unlock()
		return NotDropped, 0, relay(d)
	}
	defer s.mu.Unlock()
	if s.seen != nil && !d.Msg.ID.IsZero() && !s.seen.add(d.Msg.ID) {
		return NotDropped, 0, nil // it reached this session once already, by another node
	}
	if d.QoS == 0 {
		if s.out != nil {
			if s.out.Push(Outgoing{Msg: d.Msg, Retain: d.Retain, SubIDs: d.SubIDs}) {
				return NotDropped, 0, nil
			}
			s.dropLocked(DropOutbox)
			return DropOutbox, 0, nil
		}
		if !s.cfg.QueueQoS0 {
			s.dropLocked(DropOffline)
			return DropOffline, 0, nil
		}
		if s.fullLocked(d.Msg) && !s.makeRoomLocked(d.Msg) {
			return DropQueueFull, 0, nil
		}
		s.enqueueLocked(&entry{out: Outgoing{Msg: d.Msg, Retain: d.Retain, SubIDs: d.SubIDs}})
		return NotDropped, 0, nil
	}
	canSend := s.out != nil && len(s.queue) == 0 && s.roomLocked(s.nextSeq)
	if !canSend && s.fullLocked(d.Msg) && !s.makeRoomLocked(d.Msg) {
		return DropQueueFull, 0, nil
	}
	e := &entry{seq: s.nextSeq, shared: d.Shared, out: Outgoing{Msg: d.Msg, QoS: d.QoS, Retain: d.Retain, SubIDs: d.SubIDs, PacketID: PacketID(s.nextSeq)}}
	s.nextSeq++
	var ticket uint64
	if s.store != nil {
		t, err := s.putEntryLocked(e)
		if err != nil {
			// The message cannot be encoded for the store (it came from a client, so
			// this is a codec bug): deliver it from memory rather than lose it.
			t = 0
		}
		ticket, e.out.Ticket = t, t
	}
	if canSend && s.sendLocked(e) {
		return NotDropped, ticket, nil
	}
	if s.fullLocked(d.Msg) && !s.makeRoomLocked(d.Msg) {
		// Only reachable when the connection refused the push: the queue was empty.
		s.forgetLocked(e)
		return DropQueueFull, 0, nil
	}
	s.enqueueLocked(e)
	return NotDropped, ticket, nil
}

func msgSize(m *Message) int { return len(m.Topic) + len(m.Payload) }

// fullLocked reports whether queueing m would pass a bound.
func (s *Session) fullLocked(m *Message) bool {
	return len(s.queue) >= s.cfg.MaxQueued ||
		s.cfg.MaxQueuedBytes > 0 && s.queuedBytes+msgSize(m) > s.cfg.MaxQueuedBytes
}

func (s *Session) enqueueLocked(e *entry) {
	s.queue = append(s.queue, e)
	s.queuedBytes += msgSize(e.out.Msg)
}

// makeRoomLocked drops the oldest queued deliveries, when DropOldest is set, until m
// fits; each drop is counted, and so is m's when it does not fit. It reports whether
// there is room for m now.
func (s *Session) makeRoomLocked(m *Message) bool {
	if s.cfg.MaxQueuedBytes > 0 && msgSize(m) > s.cfg.MaxQueuedBytes {
		// It would not fit in an empty queue either: evicting would only lose more.
		s.dropLocked(DropQueueFull)
		return false
	}
	for s.cfg.DropOldest && s.fullLocked(m) {
		// The oldest message not sent yet: one sent before (queued again after a
		// restart or a reconnect) must be sent again, not dropped [MQTT-4.4.0-1].
		i := slices.IndexFunc(s.queue, func(e *entry) bool { return !e.sent })
		if i < 0 {
			break
		}
		old := s.queue[i]
		s.forgetLocked(old)
		s.queuedBytes -= msgSize(old.out.Msg)
		s.queue = slices.Delete(s.queue, i, i+1)
		s.dropLocked(DropQueueFull)
	}
	if s.fullLocked(m) {
		s.dropLocked(DropQueueFull)
		return false
	}
	return true
}

// roomLocked reports whether a delivery with sequence seq may go inflight: the window
// has a free slot, and its packet id is not held by an inflight delivery 65535
// sequence numbers away. Inflight is sorted by sequence, so its ends bound the range.
func (s *Session) roomLocked(seq uint64) bool {
	if len(s.inflight) >= s.window {
		return false
	}
	if len(s.inflight) == 0 {
		return true
	}
	lo, hi := min(seq, s.inflight[0].seq), max(seq, s.inflight[len(s.inflight)-1].seq)
	return hi-lo < 65535
}

// sendLocked pushes e to the outbox; a QoS 1/2 delivery goes inflight. It reports
// false when the outbox refused it.
func (s *Session) sendLocked(e *entry) bool {
	o := e.out
	o.Dup = e.sent
	if o.QoS > 0 && !e.sent && s.store != nil && !e.out.Msg.Expires.IsZero() {
		// An expiring message once sent must survive a restart whatever its
		// expiry: record that it goes out, and send it only once that is on disk,
		// or a crash in between would drop it on restore as expired and never sent
		// while the client holds it [MQTT-4.3.3-7]. (Refused below, it is resent
		// with DUP, which a client takes in its stride.)
		e.sent = true
		if t, err := s.putEntryLocked(e); err == nil { // it encoded when queued
			o.Ticket = max(o.Ticket, t)
		}
	}
	if !s.out.Push(o) {
		return false
	}
	if o.QoS > 0 {
		e.sent = true
		// Keep inflight sorted by sequence. New deliveries go at the end; only after
		// a restart can a queued delivery be older than a released one inflight.
		i := len(s.inflight)
		for i > 0 && s.inflight[i-1].seq > e.seq {
			i--
		}
		s.inflight = slices.Insert(s.inflight, i, e)
	}
	return true
}

// fillLocked moves queued messages into the window while there is room, skipping
// expired ones.
func (s *Session) fillLocked(now time.Time) {
	n := 0
	for n < len(s.queue) && s.out != nil {
		e := s.queue[n]
		if !e.sent && e.out.Msg.Expired(now) {
			s.dropLocked(DropExpired)
			s.forgetLocked(e)
			s.queuedBytes -= msgSize(e.out.Msg)
			n++
			continue
		}
		if e.out.QoS > 0 && !s.roomLocked(e.seq) {
			break
		}
		if !s.sendLocked(e) {
			break
		}
		s.queuedBytes -= msgSize(e.out.Msg)
		n++
	}
	if n > 0 {
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
	}
}

// Refill moves queued messages into the window: the connection calls it when its
// write queue has room again after refusing a push, since nothing else would.
func (s *Session) Refill(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fillLocked(now)
}

func (s *Session) findLocked(id uint16) int {
	for i, e := range s.inflight {
		if e.out.PacketID == id {
			return i
		}
	}
	return -1
}

// removeInflightLocked ends inflight delivery i and lets queued ones in.
func (s *Session) removeInflightLocked(i int, now time.Time) {
	s.forgetLocked(s.inflight[i])
	s.inflight = append(s.inflight[:i], s.inflight[i+1:]...)
	s.fillLocked(now)
}

// TakeShared removes and returns the QoS 1/2 messages that reached this session
// through a shared subscription and are not yet delivered: queued ones, and QoS 1
// ones sent and not acknowledged. The broker gives them to another member of their
// group when this client leaves. A QoS 2 message once sent stays: its delivery must
// be completed to this client when it reconnects, and must not go to another
// member even if this session ends first (5.0 [MQTT-4.8.2-4], [MQTT-4.8.2-5]).
func (s *Session) TakeShared(now time.Time) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Delivery
	take := func(list []*entry, queued bool) []*entry {
		kept := list[:0]
		for _, e := range list {
			if e.shared == "" || e.released || e.sent && e.out.QoS == 2 {
				kept = append(kept, e)
				continue
			}
			out = append(out, Delivery{Msg: e.out.Msg, QoS: e.out.QoS, Retain: e.out.Retain, SubIDs: e.out.SubIDs, Shared: e.shared})
			s.forgetLocked(e)
			if queued {
				s.queuedBytes -= msgSize(e.out.Msg)
			}
		}
		clear(list[len(kept):])
		return kept
	}
	s.inflight = take(s.inflight, false)
	s.queue = take(s.queue, true)
	if len(out) > 0 {
		s.fillLocked(now)
	}
	return out
}

// Puback completes a QoS 1 delivery.
func (s *Session) Puback(id uint16, now time.Time) error {
	return s.complete(id, 1, false, now)
}

// Pubcomp completes a QoS 2 delivery whose PUBREL was sent.
func (s *Session) Pubcomp(id uint16, now time.Time) error {
	return s.complete(id, 2, true, now)
}

func (s *Session) complete(id uint16, qos byte, released bool, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.findLocked(id)
	if i < 0 || s.inflight[i].out.QoS != qos || s.inflight[i].released != released {
		return fmt.Errorf("complete qos %d id %d: %w", qos, id, ErrPacketIDNotFound)
	}
	s.removeInflightLocked(i, now)
	return nil
}

// dropLocked counts a dropped message.
func (s *Session) dropLocked(r DropReason) {
	s.drops++
	if s.cfg.OnDrop != nil {
		s.cfg.OnDrop(r)
	}
}

// Discard ends the delivery of packet id whatever its state: the connection could
// not send it (too large for the client, counted as DropTooLarge) and the broker
// treats it as delivered.
func (s *Session) Discard(id uint16, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.findLocked(id)
	if i < 0 {
		return fmt.Errorf("discard id %d: %w", id, ErrPacketIDNotFound)
	}
	s.dropLocked(DropTooLarge)
	s.removeInflightLocked(i, now)
	return nil
}

// Pubrec records that the client received a QoS 2 message: from now on only the
// PUBREL/PUBCOMP exchange is left, and the message itself is forgotten
// [MQTT-4.3.3-4]. The caller sends PUBREL. A PUBREC with a failure reason code (5.0)
// ends the exchange instead, freeing the slot.
func (s *Session) Pubrec(id uint16, code proto.ReasonCode, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.findLocked(id)
	if i < 0 || s.inflight[i].out.QoS != 2 {
		return fmt.Errorf("pubrec id %d: %w", id, ErrPacketIDNotFound)
	}
	if code.IsError() {
		s.removeInflightLocked(i, now)
		return nil
	}
	e := s.inflight[i]
	e.released = true
	e.out = Outgoing{PacketID: id, QoS: 2}
	if s.store != nil {
		// A released record carries no message; it cannot fail to encode. Its
		// ticket is kept for a PUBREL sent again on a new connection (Attach).
		e.out.Ticket, _ = s.putEntryLocked(e)
	}
	return nil
}

// ReceiveQoS2 records an incoming QoS 2 PUBLISH. It reports false for a packet id
// already awaiting PUBREL: a retransmission the broker must not deliver again
// [MQTT-4.3.3-9]. limit bounds how many may await PUBREL at once (the server's
// Receive Maximum); over it, ReceiveQoS2 fails. For a persistent session the id is
// written through: the PUBREC must wait for Ticket.
func (s *Session) ReceiveQoS2(id uint16, limit int) (isNew bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.incoming[id]; dup {
		return false, nil
	}
	if limit > 0 && len(s.incoming) >= limit {
		return false, &proto.Error{Code: proto.ReceiveMaximumExceeded, Msg: fmt.Sprintf("more than %d QoS 2 messages awaiting PUBREL", limit)}
	}
	if s.incoming == nil {
		s.incoming = make(map[uint16]struct{})
	}
	s.incoming[id] = struct{}{}
	if s.store != nil {
		s.ticket = s.store.put(s.ClientID, bucketIn, idKey(id), nil)
	}
	return true, nil
}

// Release forgets an incoming QoS 2 packet id on PUBREL and reports whether it was
// known. For a persistent session the PUBCOMP must wait for Ticket: once the client
// has PUBCOMP it may reuse the id, which must not then look like a duplicate.
func (s *Session) Release(id uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.incoming[id]
	delete(s.incoming, id)
	if ok && s.store != nil {
		s.ticket = s.store.del(s.ClientID, bucketIn, idKey(id))
	}
	return ok
}
