package node

import (
	"context"

	"github.com/skein-mq/skein/session"
)

// Cluster connects the broker to its peers; nil makes a standalone broker. cmd plugs
// in the cluster package's implementation. Methods are called concurrently from
// connection goroutines; none may call back into the broker synchronously.
type Cluster interface {
	// AddRoute and RemoveRoute announce that this node has its first subscriber of
	// (filter, group), or lost its last one (group "" for ordinary subscriptions).
	// They queue the change for the replicated route table and return at once.
	AddRoute(filter, group string)
	RemoveRoute(filter, group string)
	// Forward sends m to the other nodes with matching routes (to every node when m is
	// retained). It returns the shared subscriptions ("$share/group/filter") whose
	// member this node must not serve because another node was picked, the number of
	// nodes it went to, and, when needAck is set and any node was sent m, a channel
	// that yields nil once every destination has accepted it (or an error).
	Forward(m *session.Message, needAck bool) (notLocal map[string]bool, nodes int, done <-chan error)
	// TakeOver closes clientID's connection on every other node and, when resume is
	// set, returns the exported session one of them held (nil if none); a session
	// held elsewhere is discarded when resume is not set. contended reports that a
	// node that goes first is connecting the same id at this instant (see
	// ReleaseClient).
	TakeOver(ctx context.Context, clientID string, resume bool) (state []byte, contended bool, err error)
	// Relay sends node to a delivery for clientID's session, which moved there from
	// this node; d nil says no more relays follow. The channel (nil for d nil)
	// yields once node to accepted the delivery, or an error.
	Relay(to, clientID string, d *session.Delivery) <-chan error
	// HasRoute reports whether this node's replica of the route table has node's
	// route for (filter, group).
	HasRoute(node, filter, group string) bool
	// ReplicateRetained has every other node store a retained message (or a
	// stamped clear) without delivering it; the channel (nil for no other node)
	// yields once they accepted it, or an error.
	ReplicateRetained(m *session.Message) <-chan error
}

// routeRef is one (filter, group) this node has subscribers for.
type routeRef struct{ filter, group string }

// addRouteRefLocked counts a new local subscriber of (filter, group) and announces
// the first one to the cluster. b.routeMu is held.
func (b *Broker) addRouteRefLocked(filter, group string) {
	if b.cfg.Cluster == nil {
		return
	}
	r := routeRef{filter, group}
	b.routeRefs[r]++
	if b.routeRefs[r] == 1 {
		b.cfg.Cluster.AddRoute(filter, group)
	}
}

// dropRouteRefLocked uncounts a local subscriber and announces the last one gone.
// b.routeMu is held.
func (b *Broker) dropRouteRefLocked(filter, group string) {
	if b.cfg.Cluster == nil {
		return
	}
	r := routeRef{filter, group}
	if b.routeRefs[r] <= 1 {
		delete(b.routeRefs, r)
		b.cfg.Cluster.RemoveRoute(filter, group)
		return
	}
	b.routeRefs[r]--
}

// DeliverRemote delivers a message forwarded by another node to this node's
// subscribers: all ordinary ones, and the members of the shared subscriptions listed
// in shared (the publishing node picked this node for those). It returns the store
// ticket the acknowledgement to the sending node must wait for, and a channel (nil
// for none) it must wait for too: the acceptance by the nodes that sessions matching
// here moved to, of what this node relayed after them.
func (b *Broker) DeliverRemote(m *session.Message, shared []string) (uint64, <-chan error) {
	serve := func(string) bool { return false }
	if len(shared) > 0 {
		set := make(map[string]bool, len(shared))
		for _, s := range shared {
			set[s] = true
		}
		serve = func(key string) bool { return set[key] }
	}
	_, ticket, relayed := b.route(m, serve)
	return ticket, relayed
}

// StoreRetained stores a retained message replicated from another node, or a clear
// (empty payload), which stays as a tombstone, without delivering it; the later
// write wins (session.Later), so replication and catch-ups may arrive in any order.
func (b *Broker) StoreRetained(m *session.Message) (uint64, error) {
	if m.Stamp == 0 {
		// Written before retained writes were stamped (an old data file): older than
		// any stamped write, but still ordered, rather than the unconditional
		// replace of a standalone write.
		m.Stamp = 1
	}
	b.observeStamp(m.Stamp)
	t, err := b.retained.Set(m)
	if session.IsOlder(err) {
		return 0, nil // as new or newer is stored: nothing to do
	}
	return t, err
}

// stamp returns a timestamp for a retained write: the wall clock in nanoseconds,
// but always above every stamp this node issued or saw, so that on one node later
// writes win even if the clock steps back (a hybrid logical clock, simplified).
func (b *Broker) stamp() int64 {
	for {
		last := b.lastStamp.Load()
		next := max(b.now().UnixNano(), last+1)
		if b.lastStamp.CompareAndSwap(last, next) {
			return next
		}
	}
}

// observeStamp moves the clock past a stamp seen from another node.
func (b *Broker) observeStamp(s int64) {
	for {
		last := b.lastStamp.Load()
		if s <= last || b.lastStamp.CompareAndSwap(last, s) {
			return
		}
	}
}

// EachRetained calls fn for every retained message and tombstone ('$' topics
// included), for a snapshot to another node.
func (b *Broker) EachRetained(fn func(*session.Message) bool) error {
	b.retained.Each(fn)
	return nil
}

// ExpireTombstones forgets the retained tombstones stamped before before (unix
// nanoseconds) and returns how many; the cluster calls it once they are older than
// its retention period.
func (b *Broker) ExpireTombstones(before int64) int {
	return b.retained.ExpireTombstones(before)
}

// WaitDurable waits until store ticket t is on disk (at once without a store).
func (b *Broker) WaitDurable(ctx context.Context, t uint64) error {
	if b.cfg.Store == nil {
		return nil
	}
	return b.cfg.Store.Wait(ctx, t)
}

// importSession builds the session another node handed over and indexes its
// subscriptions. b.mu is held.
func (b *Broker) importSessionLocked(clientID string, state []byte) (*sessionRecord, error) {
	s, err := session.Import(clientID, b.cfg.Session, state, b.now())
	if err != nil {
		return nil, err
	}
	rec := &sessionRecord{s: s}
	b.sessions[clientID] = rec
	for _, sub := range s.Subscriptions() {
		b.indexSubscription(s, sub)
	}
	return rec, nil
}
