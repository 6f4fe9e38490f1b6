package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gproto "google.golang.org/protobuf/proto"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/session"
)

// Messages for a node that cannot take them are held on disk, in the session
// store's spool (session.Spool), so that the publisher's PUBACK/PUBREC, sent once
// the spool write is durable, survives a restart of this node too. This file has
// the moves into the spool (a node down, a forward timeout), the answers to the
// waiting publishers, and the end of what is held for a node purged from the
// cluster; peer.go drains the spool.

// errClosing answers a publisher whose message could not be held because the
// cluster member is shutting down: it gets no acknowledgement and sends again.
var errClosing = errors.New("cluster: shutting down")

// holdLocked writes one delivery to node's spool, behind what it holds, and hands
// its waiter to the releaser, which answers it once the write is on disk. A QoS 0
// delivery is discarded and counted instead: it may be lost, and must not push
// acknowledged messages out of the bounded spool. sentFrom and sentBatch name the
// batch that carried it already, if any (see peerpb.Delivery). The caller holds
// the lock that orders node's deliveries: its peer's mu, or c.mu when it has none.
func (c *Cluster) holdLocked(node string, it pending, sentFrom string, sentBatch uint64) {
	if !it.keep() {
		c.stats.counter(&c.stats.discarded, node).Add(1)
		return
	}
	d := it.d
	// A copy: the stream may be encoding d right now.
	rec, err := gproto.Marshal(&peerpb.Delivery{Message: d.Message, Shared: d.Shared, Retained: d.Retained, Deliver: d.Deliver, Stamp: d.Stamp, Relay: d.Relay, SentFrom: sentFrom, SentBatch: sentBatch})
	if err != nil {
		c.log.Error("encode a message to hold for a node", "member", node, "err", err)
		if it.done != nil {
			it.done(fmt.Errorf("cluster: hold a message for %s: %w", node, err))
		}
		return
	}
	_, ticket := c.spool.Append(node, rec)
	if it.done != nil {
		c.releaser.add(ticket, it.done)
	}
}

// spillLocked moves what waits in memory for the peer, sent batches not
// acknowledged first, to the spool and makes the peer spool. The stream is ended:
// the sender connects again and drains the spool from its oldest record. It returns
// how many deliveries moved. p.mu is held.
func (p *peer) spillLocked() int {
	n := 0
	for _, b := range p.sent {
		// Batches from the spool are still in it; those from memory may have been
		// applied already: the receiver skips them if so.
		for _, it := range b.items {
			p.c.holdLocked(p.name, it, p.c.incarnation, b.id)
			n++
		}
	}
	for _, it := range p.queue {
		p.c.holdLocked(p.name, it, "", 0)
		n++
	}
	clear(p.queue)
	p.sent, p.queue = nil, p.queue[:0]
	p.spooling = true
	if p.cancel != nil {
		p.cancel()
	}
	return n
}

// checkTimeout spools what the peer has not accepted within timeout. While the
// peer spools, nobody waits for what is in flight, but a stream that carries no
// acknowledgement for that long is stuck: it is ended, and the next one starts
// again from the oldest record.
func (p *peer) checkTimeout(now time.Time, timeout time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var oldest time.Time
	switch {
	case len(p.sent) > 0 && p.sent[0].fromSpool:
		oldest = p.sent[0].at
	case len(p.sent) > 0:
		oldest = p.sent[0].items[0].at
	case len(p.queue) > 0:
		oldest = p.queue[0].at
	default:
		return
	}
	if now.Sub(oldest) < timeout {
		return
	}
	if p.spooling {
		if p.cancel != nil {
			p.cancel()
		}
		return
	}
	n := p.spillLocked()
	p.c.stats.counter(&p.c.stats.timeouts, p.name).Add(1)
	p.c.log.Warn("node did not accept messages in time: holding them on disk", "member", p.name, "messages", n, "forward_timeout", timeout)
}

// forwardWatchLoop applies the forward timeout to every peer.
func (c *Cluster) forwardWatchLoop() {
	timeout := c.cfg.ForwardTimeout
	tick := time.NewTicker(min(max(timeout/10, 10*time.Millisecond), 500*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-tick.C:
			for _, p := range c.peerList() {
				p.checkTimeout(now, timeout)
			}
		}
	}
}

// peerList returns the current peers.
func (c *Cluster) peerList() []*peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*peer, 0, len(c.peers))
	for _, p := range c.peers {
		out = append(out, p)
	}
	return out
}

// peerAlive is called when gossip sees a node join: what is held for it flows
// again, to its new address if it moved. A node this node holds messages for
// without a peer (from before a restart) gets one now.
func (c *Cluster) peerAlive(name string) {
	c.mu.Lock()
	p := c.peers[name]
	c.mu.Unlock()
	if p == nil {
		if c.spool.Depth(name) > 0 {
			if _, err := c.peer(name); err != nil {
				c.log.Warn("connect to a node messages are held for", "member", name, "err", err)
			}
		}
		return
	}
	if addr := c.members.addrOf(name); addr != "" && addr != p.addr {
		if _, err := c.peer(name); err != nil {
			c.log.Warn("connect to a node that moved", "member", name, "err", err)
		}
		return
	}
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
	select {
	case p.revive <- struct{}{}:
	default:
	}
}

// dropPeer forgets a node whose routes were purged, with what was held for it in
// memory and on disk.
func (c *Cluster) dropPeer(name string) {
	c.mu.Lock()
	p := c.peers[name]
	delete(c.peers, name)
	n := c.spool.Depth(name)
	c.spool.Drop(name)
	c.mu.Unlock()
	if n > 0 {
		c.stats.counter(&c.stats.purged, name).Add(uint64(n))
		c.log.Warn("dropped the messages held for a purged node", "member", name, "messages", n)
	}
	if p != nil {
		p.close()
	}
}

// expireHeld drops what is held for nodes whose routes are gone while they are
// down: the leader purges a node's routes once it has been dead for the grace
// period (and drops what it holds itself); every other node follows once its
// replica has no routes left for it. A node not heard of since this one started
// gets the grace period from the start, as in reconcile. Nothing is dropped while
// no leader is known: the replica may be behind.
func (c *Cluster) expireHeld() {
	names := c.spool.Peers()
	for _, p := range c.peerList() {
		names = append(names, p.name)
	}
	if len(names) == 0 {
		return
	}
	_, alive, deadAt := c.members.snapshot()
	now := time.Now()
	for _, name := range names {
		if alive[name] || name == c.name {
			continue
		}
		since, known := deadAt[name]
		if !known {
			since = c.startedAt()
		}
		if now.Sub(since) < c.cfg.DeadNodeGrace || c.table.NodeLen(name) > 0 || c.leaderName() == "" {
			continue
		}
		c.dropPeer(name)
	}
}

// release is a publisher waiting for a spool write.
type release struct {
	ticket uint64
	done   func(error)
}

// releaser answers the publishers of spooled messages once their writes are on
// disk, in order, from one goroutine: enqueueing never blocks on the disk.
type releaser struct {
	store *session.Store

	mu     sync.Mutex // guards items, closed
	items  []release
	closed bool
	wake   chan struct{} // capacity 1
}

func newReleaser(store *session.Store) *releaser {
	return &releaser{store: store, wake: make(chan struct{}, 1)}
}

// add queues done to be called once ticket is durable; after the releaser stopped,
// done gets errClosing at once.
func (r *releaser) add(ticket uint64, done func(error)) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		done(errClosing)
		return
	}
	r.items = append(r.items, release{ticket, done})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run answers waiters until stop is closed, then those still queued. Tickets of
// one peer come in order, and one durable ticket makes every earlier one durable,
// so waiting for each in turn costs one wait per commit.
func (r *releaser) run(stop <-chan struct{}) {
	var batch []release
	for {
		r.mu.Lock()
		batch, r.items = r.items, batch[:0] // two buffers, swapped
		stopping := false
		select {
		case <-stop:
			stopping, r.closed = true, true // nothing is added after this batch
		default:
		}
		r.mu.Unlock()
		for _, it := range batch {
			// The store outlives the cluster member: this returns once the commit
			// does, or fails.
			it.done(r.store.Wait(context.Background(), it.ticket))
		}
		clear(batch)
		if stopping {
			return
		}
		select {
		case <-r.wake:
		case <-stop:
		}
	}
}
