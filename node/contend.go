package node

import (
	"context"
	"time"
)

// Two CONNECTs with one client id at the same instant on two nodes. Each node
// closes the id elsewhere before it registers its own connection; a request that
// reaches a node while that node's own request is out finds nothing to close
// there yet, so both connections would stay. While a node asks the others for an
// id (pendingConnect), a request for that id from a node that goes first (the
// cluster decides, by node name) waits until this node's connection is
// registered and then closes it like any other; a request from a node that does
// not go first is answered "contended", and that node yields: it keeps what was
// handed over to it so far as an offline session the other node can take, waits
// a moment and asks again. The node that goes first never waits for one that
// does not, so no two requests wait for each other, and exactly one connection
// stays.

const (
	// yieldMin and yieldMax bound the wait of a node that yielded before it asks
	// again; the wait doubles each time.
	yieldMin = 10 * time.Millisecond
	yieldMax = 200 * time.Millisecond
)

// pendingConnect is one round of this node asking the other nodes for a client
// id; done is closed when the round yields or its connection is registered.
type pendingConnect struct{ done chan struct{} }

// takeOverFromCluster closes c's client id on the other nodes and returns the
// session one of them handed over (nil if none, or if it is already adopted
// here). It also returns the round still registered, which the caller ends once
// the connection is registered (endAskingLocked), and the handoffs of the id it
// took back (the client had left this node earlier).
func (b *Broker) takeOverFromCluster(c *conn, cl Cluster, cleanStart bool) (remote []byte, asking *pendingConnect, backs []*handoff) {
	id := c.clientID
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ConnectTimeout)
	defer cancel()
	wait := yieldMin
	for {
		asking = &pendingConnect{done: make(chan struct{})}
		b.mu.Lock()
		b.connecting[id] = asking
		if h := b.takeBackHandoffLocked(id); h != nil {
			backs = append(backs, h)
		}
		b.mu.Unlock()
		// A client id is live on at most one node: close it elsewhere, and bring
		// its session here [MQTT-3.1.4-3] across the cluster.
		state, contended, err := cl.TakeOver(ctx, id, !cleanStart)
		if err != nil {
			// Best effort: a peer that cannot be reached cannot hold a live
			// connection we could close; its session stays there until it returns.
			c.log.Warn("take over the client id from other nodes", "err", err)
		}
		if state != nil {
			remote = state
		}
		if !contended || ctx.Err() != nil {
			return remote, asking, backs
		}
		c.log.Debug("another node is connecting the client id at this instant; asking again", "wait", wait)
		b.mu.Lock()
		if remote != nil && !cleanStart && b.sessions[id] == nil {
			b.adoptRemoteLocked(c, remote)
		}
		remote = nil
		b.endAskingLocked(id, asking)
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, nil, backs
		}
		wait = min(2*wait, yieldMax)
	}
}

// endAskingLocked ends a round of asking for id, waking the requests from other
// nodes that wait for it. b.mu is held.
func (b *Broker) endAskingLocked(id string, p *pendingConnect) {
	if p == nil {
		return
	}
	if b.connecting[id] == p {
		delete(b.connecting, id)
	}
	close(p.done)
}

// waitForAsking is the first step of ReleaseClient: when this node is asking the
// other nodes for clientID itself, a request from a node that goes first waits
// until this node's connection is registered, and one from a node that does not
// is told it contends (contended true).
func (b *Broker) waitForAsking(ctx context.Context, clientID string, toFirst bool) (contended bool, err error) {
	b.mu.Lock()
	asking := b.connecting[clientID]
	b.mu.Unlock()
	if asking == nil {
		return false, nil
	}
	if !toFirst {
		return true, nil
	}
	select {
	case <-asking.done:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
