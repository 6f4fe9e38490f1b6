package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// writer is a connection's write side: a queue that any goroutine may push to without
// blocking, drained in batches into a single write by a goroutine that exists only
// while there is something to write. An idle connection has no writer goroutine and
// holds no encoding buffer: a push to an empty queue starts the goroutine, and it
// returns once the queue is empty again.
type writer struct {
	c *conn

	mu sync.Mutex // guards q, spare, running, stopped and refused
	q  []outItem
	// spare is the drained batch's backing array, handed back for the next batch
	// while the goroutine runs and dropped when it returns.
	spare []outItem
	// running is set while the writer goroutine exists (or is about to start).
	running bool
	stopped bool // finish was called: nothing more is queued; the first call's DISCONNECT is the one sent
	// refused is set when Push turned a delivery away for a full queue: once the
	// queue drains, the session must be asked to refill its window.
	refused bool
	// round is set while the event loop's reader handles a round of input (see
	// endRound): the replies it queues wait for the round's end instead of starting
	// the writer goroutine. roundWaits says one of them waits for the store or for
	// other nodes.
	round, roundWaits bool
	// wg counts the writer goroutine; teardown waits on it after finish.
	wg sync.WaitGroup
	// lastBatch is about the length of the recent batches, to take a queue array
	// of that size when the queue starts again.
	lastBatch int

	// Owned by the writer goroutine.
	failed bool
	// aliases are the topic aliases this broker defined towards a 5.0 client that
	// accepts them (Topic Alias Maximum in CONNECT).
	aliases map[string]uint16
}

// outItem is one queued packet: a session delivery (PUBLISH or PUBREL), an
// acknowledgement, or another control packet.
type outItem struct {
	o   session.Outgoing
	ctl proto.Packet
	// ack is set for PUBACK, PUBREC, PUBREL and PUBCOMP, which need no allocation.
	ack     proto.PacketType
	ackID   uint16
	ackCode proto.ReasonCode
	// ticket, when not 0, is the store write this packet must not overtake: an
	// acknowledgement is a promise that the message is on disk.
	ticket uint64
	// fwd, when not nil, yields once the other nodes the message went to accepted it:
	// the acknowledgement is a promise for them too.
	fwd <-chan error
}

func (w *writer) init(c *conn) {
	w.c = c
}

// Push implements session.Outbox. It refuses when the connection is closing or the
// queue is at MaxWriteQueue.
func (w *writer) Push(o session.Outgoing) bool {
	w.mu.Lock()
	if w.stopped || len(w.q) >= w.c.b.cfg.MaxWriteQueue {
		w.refused = !w.stopped
		w.mu.Unlock()
		return false
	}
	w.enqueueLocked(outItem{o: o})
	w.mu.Unlock()
	return true
}

// pushControl queues a control packet. Control packets answer the client's own
// packets, so they are not dropped; a client that sends without ever reading grows
// the queue until it is four times MaxWriteQueue, and is then disconnected.
func (w *writer) pushControl(p proto.Packet) {
	w.pushItem(outItem{ctl: p})
}

// pushAck queues PUBACK, PUBREC, PUBREL or PUBCOMP, to be sent once store ticket
// (0: none) is durable.
func (w *writer) pushAck(t proto.PacketType, id uint16, code proto.ReasonCode, ticket uint64) {
	w.pushItem(outItem{ack: t, ackID: id, ackCode: code, ticket: ticket})
}

func (w *writer) pushItem(it outItem) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	overflow := len(w.q) >= 4*w.c.b.cfg.MaxWriteQueue
	if !overflow {
		w.enqueueReplyLocked(it)
	}
	w.mu.Unlock()
	if overflow {
		w.c.kick(closeSlowConsumer)
	}
}

// startLocked starts the writer goroutine unless it runs already. w.mu is held.
func (w *writer) startLocked() {
	if w.running {
		return
	}
	w.running = true
	w.wg.Add(1)
	go w.loop(false)
}

// enqueueReplyLocked queues a packet the connection's reader sends in answer to
// the client's: during an event loop round it waits for endRound. w.mu is held.
func (w *writer) enqueueReplyLocked(it outItem) {
	if !w.round {
		w.enqueueLocked(it)
		return
	}
	if w.q == nil {
		w.q = queues.get(w.lastBatch)
	}
	w.q = append(w.q, it)
	w.roundWaits = w.roundWaits || it.ticket != 0 || it.fwd != nil
}

// beginRound marks the start of an event loop round of input (pollconn.go).
func (w *writer) beginRound() {
	w.mu.Lock()
	w.round = true
	w.mu.Unlock()
}

// flushRound hands what the round queued so far to the writer goroutine, for a
// round that goes on reading: the replies go out while the client keeps sending.
func (w *writer) flushRound() {
	w.mu.Lock()
	if w.round && len(w.q) > 0 && !w.stopped {
		w.startLocked()
	}
	w.mu.Unlock()
}

// endRound sends what the round queued. When the writer goroutine is not running
// and nothing queued waits for the disk or for other nodes, the reader's goroutine
// writes the batch itself, so a CONNACK or the acknowledgements of a round cost no
// goroutine; if the socket has no room, this waits (up to WriteTimeout), which
// holds back only this connection's next round of input. More queued meanwhile
// goes to a writer goroutine.
func (w *writer) endRound() {
	w.mu.Lock()
	w.round = false
	waits := w.roundWaits
	w.roundWaits = false
	if w.running || len(w.q) == 0 || w.stopped {
		w.mu.Unlock()
		return
	}
	if waits {
		w.startLocked() // the reader must not wait for the disk
		w.mu.Unlock()
		return
	}
	w.running = true
	w.wg.Add(1)
	w.mu.Unlock()
	w.loop(true)
}

// pushConnack queues the accepting CONNACK and marks the connection connected in one
// step under the queue's lock, so a concurrent finish either sees the connection
// unconnected (no DISCONNECT) or queues its DISCONNECT after the CONNACK.
func (w *writer) pushConnack(p proto.Packet) {
	w.mu.Lock()
	if !w.stopped {
		w.enqueueReplyLocked(outItem{ctl: p})
		w.c.connected.Store(true)
	}
	w.mu.Unlock()
}

// finish makes the writer write what is queued, then a 5.0 DISCONNECT with code
// (when not 0 and the client is connected), then close the socket and return. Only
// the first call counts. The remaining writes are bounded by a short deadline, so a
// stalled client cannot hold the teardown. wait returns once that is done.
func (w *writer) finish(code proto.ReasonCode) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	if last := w.c.disconnectPacket(code); last != nil {
		w.enqueueLocked(outItem{ctl: last})
	}
	w.stopped = true
	w.startLocked()
	w.mu.Unlock()
	_ = w.c.nc.SetWriteDeadline(time.Now().Add(min(w.c.b.cfg.WriteTimeout, 5*time.Second))) // a closed socket fails the write anyway
}

// wait returns once the writer goroutine has closed the socket after finish.
func (w *writer) wait() { w.wg.Wait() }

// loop is the writer goroutine: it drains the queue and returns when it is empty,
// or, after finish, once the socket is closed. Run inline by endRound, it writes one
// batch and hands what came meanwhile to a goroutine.
func (w *writer) loop(inline bool) {
	defer w.wg.Done()
	for first := true; ; first = false {
		w.mu.Lock()
		if inline && !first && len(w.q) > 0 && !w.stopped {
			w.wg.Add(1)
			go w.loop(false) // still running: the goroutine takes over
			w.mu.Unlock()
			return
		}
		if len(w.q) == 0 {
			stopped := w.stopped
			if !stopped {
				// Idle: the next push starts a new goroutine.
				w.running = false
			}
			// Hold no queue memory while idle.
			queues.put(w.q)
			queues.put(w.spare)
			w.q, w.spare = nil, nil
			w.mu.Unlock()
			if stopped {
				w.c.nc.Close()
			}
			return
		}
		batch := w.q
		w.lastBatch = max(len(batch), w.lastBatch/2)
		w.q = w.spare[:0]
		w.spare = nil
		stopped := w.stopped
		refused := w.refused
		w.refused = false
		w.mu.Unlock()

		if len(batch) > 0 && !w.failed {
			if err := w.write(batch); err != nil {
				w.failed = true
				r := closeNetworkError
				if errors.Is(err, os.ErrDeadlineExceeded) {
					r = closeSlowConsumer
				}
				w.c.kick(r)
			}
		}
		clear(batch)
		w.mu.Lock()
		w.spare = batch[:0]
		w.mu.Unlock()
		if refused && !stopped && !w.failed && w.c.sess != nil {
			// The queue is empty again: deliveries the session kept back may go.
			w.c.sess.Refill(w.c.b.now())
		}
		if stopped {
			w.c.nc.Close()
			return
		}
	}
}

// enqueueLocked appends it to the queue, taking the queue's array from the free
// list when the queue has none (sized by the connection's last batch), and starts
// the writer goroutine. w.mu is held.
func (w *writer) enqueueLocked(it outItem) {
	if w.q == nil {
		w.q = queues.get(w.lastBatch)
	}
	w.q = append(w.q, it)
	w.startLocked()
}

// queues are the free queue arrays: an idle connection holds none, a busy one
// takes one when its queue starts to fill. At most about 9 MiB are kept.
var queues = newFreeList[outItem]([]int{8, 64, 512}, []int{2048, 256, 128})

// write encodes a batch into one buffer and writes it with one call. When the batch
// holds acknowledgements or deliveries that depend on store writes, it first waits
// for the newest of them: one wait per batch, while the reader goes on reading, so
// the disk's latency costs no throughput.
func (w *writer) write(batch []outItem) error {
	c := w.c
	b := c.b
	if store := b.cfg.Store; store != nil {
		var ticket uint64
		for i := range batch {
			ticket = max(ticket, batch[i].ticket, batch[i].o.Ticket)
		}
		if err := store.Wait(context.Background(), ticket); err != nil {
			return fmt.Errorf("wait for the session store: %w", err)
		}
	}
	for i := range batch {
		if fwd := batch[i].fwd; fwd != nil {
			if err := <-fwd; err != nil {
				// The message did not reach every node that needs it: no
				// acknowledgement, so the publisher sends it again.
				return fmt.Errorf("forward to other nodes: %w", err)
			}
		}
	}
	now := b.now()
	buf := bufs.get(batchSize(batch))
	defer func() { bufs.put(buf) }()
	// pub is the PUBLISH each delivery is encoded from, reused across the batch so
	// that encoding a delivery does not allocate.
	var pub proto.Publish
	sent := 0
	for i := range batch {
		it := &batch[i]
		start := len(buf)
		var err error
		switch {
		case it.ack != 0:
			buf, err = appendAck(buf, it.ack, it.ackID, it.ackCode, c.version)
		case it.ctl != nil:
			buf, err = it.ctl.Append(buf, c.version)
		case it.o.Release:
			buf, err = appendAck(buf, proto.PUBREL, it.o.PacketID, 0, c.version)
		default:
			var tooLarge bool
			buf, tooLarge, err = w.appendPublish(buf, &pub, &it.o, now)
			if tooLarge {
				// [MQTT-3.1.2-25] never send a packet larger than the client accepts:
				// drop it for this client, as if delivered.
				if it.o.QoS > 0 {
					// Discard counts the drop through Session.OnDrop.
					_ = c.sess.Discard(it.o.PacketID, now) // the slot may be gone already after a takeover
				} else {
					b.Stats.drop(session.DropTooLarge)
				}
				continue
			}
			sent++
			if r := it.o.Msg.Received; r != 0 {
				b.Stats.DeliveryLatency.Observe(now.Sub(time.Unix(0, r)))
			}
		}
		if err != nil {
			// Encoding fails only on values the broker itself produced; log and skip
			// rather than kill the connection.
			c.log.Error("encode failed", "client_id", c.clientID, "err", err)
			buf = buf[:start]
		}
	}
	if len(buf) == 0 {
		return nil
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(b.cfg.WriteTimeout)); err != nil {
		return err
	}
	n, err := c.nc.Write(buf)
	b.Stats.BytesSent.Add(int64(n))
	b.Stats.MessagesSent.Add(int64(sent))
	b.Stats.PacketsSent.Add(int64(len(batch)))
	return err
}

// batchSize estimates the bytes a batch encodes to, so the buffer taken for it
// rarely has to grow: a PUBLISH is about its topic and payload plus its headers.
func batchSize(batch []outItem) int {
	n := 0
	for i := range batch {
		if m := batch[i].o.Msg; m != nil && !batch[i].o.Release {
			n += len(m.Topic) + len(m.Payload) + 16
		} else {
			n += 16
		}
	}
	return n
}

// appendAck encodes an acknowledgement without allocating.
func appendAck(dst []byte, t proto.PacketType, id uint16, code proto.ReasonCode, v proto.Version) ([]byte, error) {
	switch t {
	case proto.PUBACK:
		p := proto.Puback{PacketID: id, ReasonCode: code}
		return p.Append(dst, v)
	case proto.PUBREC:
		p := proto.Pubrec{PacketID: id, ReasonCode: code}
		return p.Append(dst, v)
	case proto.PUBREL:
		p := proto.Pubrel{PacketID: id, ReasonCode: code}
		return p.Append(dst, v)
	}
	p := proto.Pubcomp{PacketID: id, ReasonCode: code}
	return p.Append(dst, v)
}

// appendPublish encodes a delivery for this connection's version; tooLarge reports a
// packet over the client's Maximum Packet Size, which is not appended. A QoS 0
// message without per-subscriber parts (retain flag, subscription ids, expiry, topic
// alias) is encoded once per version and the bytes are shared by every subscriber.
func (w *writer) appendPublish(dst []byte, pub *proto.Publish, o *session.Outgoing, now time.Time) (_ []byte, tooLarge bool, err error) {
	c := w.c
	m := o.Msg
	start := len(dst)
	fits := func(b []byte) bool { return c.clientMaxPacket == 0 || len(b)-start <= c.clientMaxPacket }
	if c.clientAliasMax == 0 && o.QoS == 0 && !o.Retain && len(o.SubIDs) == 0 && m.Expires.IsZero() {
		slot := 0
		if c.version == proto.V5 {
			slot = 1
		}
		enc, err := m.SharedEncoding(slot, func() ([]byte, error) {
			return w.buildPublish(pub, o, now).Append(nil, c.version)
		})
		if err != nil {
			return dst, false, err
		}
		if c.clientMaxPacket > 0 && len(enc) > c.clientMaxPacket {
			return dst, true, nil
		}
		return append(dst, enc...), false, nil
	}
	p := w.buildPublish(pub, o, now)
	if c.clientAliasMax == 0 {
		dst, err = p.Append(dst, c.version)
		if err == nil && !fits(dst) {
			return dst[:start], true, nil
		}
		return dst, false, err
	}
	// Topic aliases towards the client [MQTT-3.3.2-7]: the first packet of a topic
	// carries the topic and defines an alias, later ones carry only the alias. New
	// aliases are defined while the client's maximum allows; the alias is kept only
	// once the packet that defines it is known to be sent.
	p.Props.Set(proto.PropTopicAlias)
	alias, known := w.aliases[m.Topic]
	if known {
		p.Topic = ""
		p.Props.TopicAlias = alias
	} else if len(w.aliases) < c.clientAliasMax {
		alias = uint16(len(w.aliases) + 1)
		p.Props.TopicAlias = alias
	} else {
		p.Props.Clear(proto.PropTopicAlias)
	}
	dst, err = p.Append(dst, c.version)
	if err != nil {
		return dst, false, err
	}
	if !fits(dst) {
		return dst[:start], true, nil
	}
	if !known && p.Props.Has(proto.PropTopicAlias) {
		if w.aliases == nil {
			w.aliases = make(map[string]uint16)
		}
		w.aliases[m.Topic] = alias
	}
	return dst, false, nil
}

// buildPublish fills p, the batch's reusable PUBLISH, for a delivery and returns it.
func (w *writer) buildPublish(p *proto.Publish, o *session.Outgoing, now time.Time) *proto.Publish {
	m := o.Msg
	*p = proto.Publish{Topic: m.Topic, Payload: m.Payload, QoS: o.QoS, Retain: o.Retain, Dup: o.Dup, PacketID: o.PacketID}
	if w.c.version == proto.V5 {
		p.Props = m.Props
		if sec, ok := m.RemainingExpiry(now); ok {
			// [MQTT-3.3.2-6] the expiry interval sent is what is left of it.
			p.Props.MessageExpiry = sec
			p.Props.Set(proto.PropMessageExpiry)
		}
		p.Props.SubscriptionIDs = o.SubIDs
	}
	return p
}
