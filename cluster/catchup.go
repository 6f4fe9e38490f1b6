package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/session"
)

// Retained sets merge in both directions. Whenever this node sees another member
// join (a new node, a restarted one, one back from a partition) it pulls that
// member's whole retained set, messages and tombstones, and applies it entry by
// entry with last writer wins; and it asks the member to pull this node's set in
// turn (pull_back), because the member may see this node join later than this node
// sees it, and what it writes in between, still thinking this node dead, is not
// forwarded here. Every node of each side does this for every member of the other,
// so whatever one side wrote reaches every node of the other without being
// replicated again, and with last writer wins and tombstones the result is the same
// whatever the order of the pulls. A retained set is small next to the cost of a
// lost or resurrected message, so there is no election of who pulls: a 3-node heal
// costs a few snapshots.

// pullTimeout bounds one pull: waiting for the connection, then the snapshot.
const pullTimeout = time.Minute

// pullAttempts bounds the retries of a pull that failed while its member is alive.
const pullAttempts = 3

// pulls tracks the pulls running, one goroutine per member. The zero value is
// ready to use.
type pulls struct {
	mu      sync.Mutex // guards everything below
	closed  bool
	running map[string]*pullState
	merged  map[string]uint64 // pulls completed, by member (Status)
}

// pullState is one member's pull: asking again while it runs makes it run once
// more afterwards, so a pull never misses writes made before it was asked for.
type pullState struct {
	again    bool
	pullBack bool
}

// close makes later requests no-ops; running pulls stop with Cluster.stop.
func (p *pulls) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
}

// done counts a completed pull from member name.
func (p *pulls) done(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.merged == nil {
		p.merged = make(map[string]uint64)
	}
	p.merged[name]++
}

// merges returns how many pulls from member name completed.
func (p *pulls) merges(name string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.merged[name]
}

// requestPull starts pulling the retained set of member name (asking it to pull
// back if pullBack is set). It never blocks: gossip calls it with its locks held.
func (c *Cluster) requestPull(name string, pullBack bool) {
	if name == c.name {
		return
	}
	p := &c.pulls
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if st := p.running[name]; st != nil {
		st.again = true
		st.pullBack = st.pullBack || pullBack
		return
	}
	if p.running == nil {
		p.running = make(map[string]*pullState)
	}
	st := &pullState{pullBack: pullBack}
	p.running[name] = st
	c.wg.Add(1) // before Close's Wait: p.closed is set first, under p.mu
	go c.pullLoop(name, st)
}

// pullLoop runs member name's pulls until none is asked for any more.
func (c *Cluster) pullLoop(name string, st *pullState) {
	defer c.wg.Done()
	p := &c.pulls
	for {
		p.mu.Lock()
		pullBack := st.pullBack
		st.again, st.pullBack = false, false
		p.mu.Unlock()
		c.pullRetained(name, pullBack)
		p.mu.Lock()
		if !st.again || p.closed {
			delete(p.running, name)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// pullRetained merges member name's retained set into this node's, retrying a
// failed pull while the member is alive.
func (c *Cluster) pullRetained(name string, pullBack bool) {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		n, err := c.pullOnce(name, pullBack)
		if err == nil {
			c.pulls.done(name)
			c.log.Info("merged the retained set of a member", "member", name, "entries", n)
			return
		}
		if attempt == pullAttempts || !c.members.isAlive(name) {
			c.log.Warn("could not merge the retained set of a member", "member", name, "err", err)
			return
		}
		c.log.Debug("retained pull failed, retrying", "member", name, "err", err)
		if !c.sleep(backoff) {
			return
		}
		backoff *= 2
	}
}

// pullOnce streams member name's snapshot into the local store and returns the
// number of entries received.
func (c *Cluster) pullOnce(name string, pullBack bool) (int, error) {
	select {
	case <-c.stop:
		return 0, errClosing
	default:
	}
	p, err := c.peer(name)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), pullTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	// WaitForReady: the member is back, but the connection to it may still be in its
	// reconnect backoff (peerConnectParams).
	stream, err := p.client.RetainedSnapshot(ctx, &peerpb.RetainedRequest{From: c.name, PullBack: pullBack}, grpc.WaitForReady(true))
	if err != nil {
		return 0, fmt.Errorf("retained snapshot of %s: %w", name, err)
	}
	// After a long absence, entries older than it are judged apart (absence.go).
	before, authoritative := c.members.staleRule(name, c.cfg.TombstoneRetention)
	var seen map[string]bool // the topics of the snapshot, when it is authoritative
	if before != 0 && authoritative {
		seen = make(map[string]bool)
	}
	n, ignored := 0, 0
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("retained snapshot of %s: %w", name, err)
		}
		n++
		m, err := session.UnmarshalMessage(r.Message) // aliases r, which is not reused
		if err != nil {
			c.log.Warn("corrupt retained entry in a snapshot", "member", name, "err", err)
			continue
		}
		m.Stamp = r.Stamp
		if seen != nil {
			seen[m.Topic] = true
		}
		if before != 0 && !authoritative && m.Stamp < before {
			ignored++
			continue
		}
		if _, err := c.local.StoreRetained(m); err != nil {
			c.log.Error("store a retained entry from a snapshot", "member", name, "topic", m.Topic, "err", err)
		}
	}
	if before != 0 {
		cleared := 0
		if seen != nil {
			cleared = c.clearMissing(seen, before)
		}
		c.log.Warn("merged retained messages after an absence longer than the tombstone retention: the older ones of one side win",
			"member", name, "authoritative", authoritative, "ignored", ignored, "cleared", cleared)
	}
	return n, nil
}

// clearMissing clears this node's retained messages stamped before before whose
// topics are not in seen (an authoritative snapshot, see absence.go), and returns
// how many it cleared.
func (c *Cluster) clearMissing(seen map[string]bool, before int64) int {
	var stale []*session.Message
	err := c.local.EachRetained(func(m *session.Message) bool {
		if !m.Tombstone() && m.Stamp < before && !seen[m.Topic] {
			stale = append(stale, m)
		}
		return true
	})
	if err != nil {
		c.log.Error("read the retained messages to clear", "err", err)
		return 0
	}
	for _, m := range stale {
		// A tombstone just after the message beats it and loses to any later write;
		// being old, it expires at the next sweep.
		if _, err := c.local.StoreRetained(&session.Message{Topic: m.Topic, Retain: true, Stamp: m.Stamp + 1}); err != nil {
			c.log.Error("clear a retained message missing from an authoritative snapshot", "topic", m.Topic, "err", err)
		}
	}
	return len(stale)
}
