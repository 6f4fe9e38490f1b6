package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// Handing a persistent session over to another node without losing what is in
// flight. The old node exports the session and seals it in one step (every
// delivery is either in the export or relayed afterwards), and keeps the sealed
// session's subscriptions in its trie and its routes in the table: publishers whose
// replica of the route table does not show the new node's routes yet still send
// here, and the sealed session relays those messages to the new node. Once this
// node's replica shows the new node's routes, and a little longer for replicas that
// lag behind, the subscriptions go, and with the last one the route. A message can
// reach the new node both ways meanwhile, so the new node delivers each message id
// once until the old one says it is done (see session.WatchDuplicates).

const (
	// handoverPoll is how often a handoff checks for the new node's routes.
	handoverPoll = 25 * time.Millisecond
	// handoverLinger keeps relaying after the new node's routes showed up here,
	// for replicas of the route table that apply the change a little later.
	handoverLinger = 2 * time.Second
	// handoverMax ends a handoff whose routes never show up (no quorum, or the
	// new node gone): what arrives after it is not relayed.
	handoverMax = 10 * time.Minute
	// duplicateLinger keeps watching for duplicates after the old node is done: a
	// direct copy of the last relayed messages may still be on its way.
	duplicateLinger = 5 * time.Second
)

// handoff is a session this node gave to another node, sealed and relaying.
type handoff struct {
	rec  *sessionRecord
	to   string
	stop chan struct{} // closed to end the handoff early
}

// newMessageOrigin returns a random number naming this run of the node in message ids.
func newMessageOrigin() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return binary.BigEndian.Uint64(b[:]) | 1
}

// messageID returns a new cluster-wide message id.
func (b *Broker) messageID() session.MessageID {
	return session.MessageID{Origin: b.msgOrigin, Seq: b.msgSeq.Add(1)}
}

// ReleaseClient gives up clientID because it connected to node to: its connection
// here is closed (5.0: DISCONNECT 0x8E), and a persistent session, when the client
// resumes it, is exported and handed over (it relays what still arrives here for a
// while); otherwise the session is discarded. found reports whether this node had
// the client at all. When this node is connecting the id at this instant too, the
// request waits for that connection if toFirst (node to goes first), and is
// answered contended otherwise (see contend.go).
func (b *Broker) ReleaseClient(ctx context.Context, clientID, to string, resume, toFirst bool) (state []byte, found, contended bool, err error) {
	if contended, err := b.waitForAsking(ctx, clientID, toFirst); contended || err != nil {
		return nil, false, contended, err
	}
	state, found, err = b.releaseClient(ctx, clientID, to, resume)
	return state, found, false, err
}

// releaseClient is ReleaseClient once no CONNECT of this node contends.
func (b *Broker) releaseClient(ctx context.Context, clientID, to string, resume bool) (state []byte, found bool, err error) {
	b.mu.Lock()
	c := b.clients[clientID]
	b.mu.Unlock()
	if c != nil {
		c.log.Info("client id taken over by another node", "member", to)
		c.kick(closeTakenOver)
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		// The node asking gave up: it goes on without the session, so the session
		// stays here rather than be sealed and exported to nobody.
		return nil, c != nil, err
	}
	rec := b.sessions[clientID]
	if rec == nil {
		return nil, c != nil, nil
	}
	if rec.s.Online() {
		// A local client connected meanwhile: it keeps the session.
		return nil, true, nil
	}
	if !resume || rec.s.Expiry() == 0 {
		b.discardSessionLocked(rec)
		return nil, true, nil
	}
	state, err = rec.s.ExportAndSeal(func(d session.Delivery) <-chan error { return b.relay(to, clientID, d) })
	if err != nil {
		return nil, true, err
	}
	rec.stopTimers()
	rec.s.Unpersist() // the new node owns it now, and writes it to its own disk
	delete(b.sessions, clientID)
	b.Stats.SessionsHandedOver.Add(1)
	if b.closing {
		// Shutting down (a rolling restart: the client reconnected elsewhere
		// after DISCONNECT 0x8B): the session goes all the same, but no handoff
		// outlives the broker. What still reaches its subscriptions here before
		// the end is relayed; the new node stops watching for duplicates on its
		// own.
		return state, true, nil
	}
	h := &handoff{rec: rec, to: to, stop: make(chan struct{})}
	b.handoffs[clientID] = h
	b.wg.Add(1)
	go b.runHandoff(h)
	return state, true, nil
}

// relay passes a delivery for a session that moved on to its new node. The
// channel (nil for QoS 0) yields once that node accepted it: a QoS 1/2
// acknowledgement waits for it (see route), as for any node a message goes to.
func (b *Broker) relay(to, clientID string, d session.Delivery) <-chan error {
	b.Stats.MessagesRelayed.Add(1)
	done := b.cfg.Cluster.Relay(to, clientID, &d)
	if d.QoS == 0 {
		return nil
	}
	return done
}

// runHandoff relays until the new node's routes show in this node's replica of the
// route table (and handoverLinger more), then drops the sealed session's
// subscriptions and tells the new node it is done.
func (b *Broker) runHandoff(h *handoff) {
	defer b.wg.Done()
	start := time.Now()
	tick := time.NewTicker(handoverPoll)
	defer tick.Stop()
	routed := false
	for !routed && time.Since(start) < handoverMax {
		select {
		case <-h.stop:
			b.endHandoff(h)
			return
		case <-tick.C:
			routed = b.routesMoved(h)
		}
	}
	linger := time.NewTimer(handoverLinger)
	defer linger.Stop()
	select {
	case <-h.stop:
	case <-linger.C:
	}
	b.endHandoff(h)
}

// routesMoved reports whether every subscription of the handed-over session has
// the new node's route in this node's replica.
func (b *Broker) routesMoved(h *handoff) bool {
	for _, sub := range h.rec.s.Subscriptions() {
		group, filter, shared := proto.SplitShared(sub.Filter)
		if !shared {
			filter = sub.Filter
		}
		if !b.cfg.Cluster.HasRoute(h.to, filter, group) {
			return false
		}
	}
	return true
}

// endHandoff drops the sealed session's subscriptions (and with the last local
// subscriber of a filter, this node's route) and tells the new node no more relays
// follow. It runs once per handoff.
func (b *Broker) endHandoff(h *handoff) {
	id := h.rec.s.ClientID
	b.mu.Lock()
	if b.handoffs[id] != h {
		b.mu.Unlock()
		return
	}
	delete(b.handoffs, id)
	b.mu.Unlock()
	for _, sub := range h.rec.s.Subscriptions() {
		b.removeSubscription(h.rec.s, sub.Filter)
	}
	b.cfg.Cluster.Relay(h.to, id, nil)
}

// cancel ends the handoff's goroutine at once; it runs endHandoff, which does
// nothing for a handoff no longer in b.handoffs. b.mu is held.
func (h *handoff) cancel() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
}

// takeBackHandoffLocked ends a handoff of clientID because the client came back to
// this node, which takes the session back from the node it went to. Its goroutine
// stops, but the sealed session keeps its subscriptions, relaying what arrives,
// until the session is back (endTakenBack): dropping them now would leave the
// client's messages published here in between with no subscriber, while this
// node's replica may not show the other node's route yet. b.mu is held.
func (b *Broker) takeBackHandoffLocked(clientID string) *handoff {
	h := b.handoffs[clientID]
	if h == nil {
		return nil
	}
	delete(b.handoffs, clientID) // its goroutine's endHandoff does nothing now
	h.cancel()
	return h
}

// endTakenBack finishes a handoff taken back (takeBackHandoffLocked) once the
// session is here again: the sealed session's subscriptions go, and its node is
// told no more relays follow.
func (b *Broker) endTakenBack(h *handoff) {
	if h == nil {
		return
	}
	for _, sub := range h.rec.s.Subscriptions() {
		b.removeSubscription(h.rec.s, sub.Filter)
	}
	b.cfg.Cluster.Relay(h.to, h.rec.s.ClientID, nil)
}

// DeliverRelayed delivers a message that the node a session moved from relayed
// after it, to that session; d is the delivery as that node built it. A relay that
// arrives while the session is being imported here is parked and delivered when
// the import ends: waiting for it would hold up the stream from that node, past its
// forward timeout when the import is slow. A relay for a session that moved on
// again, to a third node, goes on there. It returns the store ticket the
// acceptance must wait for, and a channel (nil for none) that yields once the
// third node accepted it.
func (b *Broker) DeliverRelayed(_ context.Context, clientID string, d session.Delivery) (uint64, <-chan error) {
	b.mu.Lock()
	if b.importing[clientID] != nil {
		if len(b.parked[clientID]) >= maxParkedRelays {
			b.mu.Unlock()
			b.Stats.Dropped[session.DropQueueFull].Add(1)
			return 0, nil
		}
		b.parked[clientID] = append(b.parked[clientID], d)
		b.mu.Unlock()
		return 0, nil
	}
	rec := b.sessions[clientID]
	if rec == nil {
		if h := b.handoffs[clientID]; h != nil {
			rec = h.rec // sealed: it relays to where it went
		}
	}
	b.mu.Unlock()
	if rec == nil {
		// The session ended here (expired, or replaced by a clean one) before the
		// relay came: nobody to deliver it to.
		b.log.Debug("relayed message for a session that is gone", "client_id", clientID, "topic", d.Msg.Topic)
		return 0, nil
	}
	_, t, relayed := rec.s.DeliverOrRelay(d, b.now()) // drops are counted by the session
	return t, relayed
}

// maxParkedRelays bounds the relays parked for one session being imported.
const maxParkedRelays = 100_000

// deliverParkedLocked delivers the relays parked for clientID's session during
// its import, to the session it has now. b.mu is held.
func (b *Broker) deliverParkedLocked(clientID string, parked []session.Delivery) {
	if len(parked) == 0 {
		return
	}
	rec := b.sessions[clientID]
	if rec == nil {
		b.log.Warn("relayed messages for a session whose import failed", "client_id", clientID, "messages", len(parked))
		b.Stats.Dropped[session.DropQueueFull].Add(int64(len(parked)))
		return
	}
	for _, d := range parked {
		rec.s.DeliverOrRelay(d, b.now())
	}
}

// HandoverEnded is told by the node a session moved from that it relays no more:
// the session stops watching for duplicates once the last direct copies are in.
func (b *Broker) HandoverEnded(clientID string) {
	b.mu.Lock()
	rec := b.sessions[clientID]
	b.mu.Unlock()
	if rec != nil {
		time.AfterFunc(duplicateLinger, rec.s.StopWatchingDuplicates)
	}
}

// endImportLocked marks the import of clientID's session done, waking those
// waiting for it, and returns the relays parked meanwhile; a later CONNECT's
// import for the same id, if any, stays, and keeps them. b.mu is held.
func (b *Broker) endImportLocked(clientID string, done chan struct{}) []session.Delivery {
	if done == nil {
		return nil
	}
	var parked []session.Delivery
	if b.importing[clientID] == done {
		delete(b.importing, clientID)
		parked = b.parked[clientID]
		delete(b.parked, clientID)
	}
	select {
	case <-done:
	default:
		close(done)
	}
	return parked
}
