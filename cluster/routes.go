package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/route"
)

// routeBatcher collects this node's route changes and commits them through Raft in
// batches: a subscribe storm of many filters becomes a few log entries. Changes keep
// their order. While no quorum is reachable the changes wait and are retried, so a
// node cut off keeps serving its clients and catches up when quorum returns.
type routeBatcher struct {
	c *Cluster

	mu      sync.Mutex // guards pending, trimmed, sending, last, mine, entries, changes, checked
	pending []route.Change
	// trimmed counts the changes removed from the front of pending so far, so that
	// trimmed+i is a change's position for good; sending is how many changes at the
	// front of pending are being proposed now, which must not change under it.
	trimmed, sending int
	// last is the position of the newest pending change of each (filter, group), so
	// a change that undoes it cancels it instead of following it (see add).
	last map[mineKey]int
	// mine is this node's routes as the node announced them: what the table must
	// hold for this node once everything pending is committed.
	mine map[mineKey]bool
	wake chan struct{} // capacity 1
	// Proposed counts committed entries and changes, for tests and metrics.
	entries, changes uint64
	// checked is entries at the last check of the table against mine; checks
	// counts the checks, every fullCheckEvery-th compares route by route.
	checked uint64
	checks  int
}

// fullCheckEvery: most checks compare only the number of routes, which is cheap
// however many there are.
const fullCheckEvery = 30

type mineKey struct{ filter, group string }

func newRouteBatcher(c *Cluster) *routeBatcher {
	return &routeBatcher{c: c, wake: make(chan struct{}, 1), mine: map[mineKey]bool{}, last: map[mineKey]int{}}
}

// opCancelled marks a pending change that a later one undid; batches skip it.
const opCancelled route.Op = 0

// add queues one of this node's route changes. A change that undoes the newest
// pending change of the same (filter, group), not yet being proposed, cancels it:
// a client that unsubscribes and subscribes again (or disconnects and reconnects
// with a clean session) before the removal is committed keeps its route in the
// table throughout, rather than leaving a moment with none between two entries.
func (b *routeBatcher) add(ch route.Change) {
	b.mu.Lock()
	k := mineKey{ch.Filter, ch.Key.Group}
	if ch.Op == route.OpAdd {
		b.mine[k] = true
	} else {
		delete(b.mine, k)
	}
	if pos, ok := b.last[k]; ok && pos-b.trimmed >= b.sending && b.pending[pos-b.trimmed].Op != ch.Op {
		b.pending[pos-b.trimmed].Op = opCancelled
		delete(b.last, k)
		b.mu.Unlock()
		return
	}
	b.last[k] = b.trimmed + len(b.pending)
	b.pending = append(b.pending, ch)
	full := len(b.pending) >= b.c.cfg.RouteBatchSize
	b.mu.Unlock()
	if full || len(b.wake) == 0 {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// run commits batches until stop, and now and then checks that the table holds
// this node's routes as announced.
func (b *routeBatcher) run(stop <-chan struct{}) {
	backoff := 50 * time.Millisecond
	check := time.NewTicker(time.Second)
	if b.c.cfg.FastTimeouts {
		check.Reset(200 * time.Millisecond)
	}
	defer check.Stop()
	for {
		select {
		case <-stop:
			return
		case <-b.wake:
		case <-check.C:
			if !b.repair() {
				continue
			}
		}
		// Let more changes join the batch, unless it is full already.
		b.mu.Lock()
		full := len(b.pending) >= b.c.cfg.RouteBatchSize
		b.mu.Unlock()
		if !full && !b.c.sleep(b.c.cfg.RouteBatchDelay) {
			return
		}
		for {
			b.mu.Lock()
			batch, n := b.takeBatchLocked()
			b.mu.Unlock()
			if n == 0 {
				break
			}
			if len(batch) > 0 {
				if err := b.c.propose(batch); err != nil {
					b.c.log.Debug("route changes not committed yet, retrying", "changes", n, "err", err)
					b.mu.Lock()
					b.sending = 0
					b.mu.Unlock()
					if !b.c.sleep(backoff) {
						return
					}
					backoff = min(2*backoff, 2*time.Second)
					continue
				}
			}
			backoff = 50 * time.Millisecond
			b.mu.Lock()
			b.trimLocked(n)
			if len(batch) > 0 {
				b.entries++
				b.changes += uint64(len(batch))
			}
			b.mu.Unlock()
		}
	}
}

// repair compares the table's routes of this node with the ones it announced and
// queues the changes that make them agree; it reports whether it queued any. They
// drift apart when the leader purges the routes of a node it saw dead past the
// grace period while the node was only cut off, and when a node restarts: the
// routes of its clean sessions, gone with the process, are still in the table
// (a stale shared-subscription route would swallow the group's messages). It
// checks only when the table is settled: nothing pending, no commit of this node
// since the last check, a leader known and every committed entry applied.
func (b *routeBatcher) repair() bool {
	c := b.c
	if c.leaderName() == "" || c.raft.AppliedIndex() < c.raft.CommitIndex() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) > 0 || b.entries != b.checked {
		b.checked = b.entries
		return false
	}
	b.checks++
	if b.checks%fullCheckEvery != 0 && c.table.NodeLen(c.name) == len(b.mine) {
		return false
	}
	have := c.table.NodeRoutes(c.name)
	seen := make(map[mineKey]bool, len(have))
	var fix []route.Change
	for _, ch := range have {
		k := mineKey{ch.Filter, ch.Key.Group}
		seen[k] = true
		if !b.mine[k] {
			fix = append(fix, route.Change{Op: route.OpRemove, Filter: ch.Filter, Key: ch.Key})
		}
	}
	removes := len(fix)
	for k := range b.mine {
		if !seen[k] {
			fix = append(fix, route.Change{Op: route.OpAdd, Filter: k.filter, Key: route.Key{Node: c.name, Group: k.group}})
		}
	}
	if len(fix) == 0 {
		return false
	}
	c.log.Warn("the route table disagrees with this node's subscriptions: correcting it",
		"stale_routes", removes, "missing_routes", len(fix)-removes)
	b.pending = append(b.pending, fix...)
	return true
}

// takeBatchLocked marks the next batch as being proposed and returns its changes,
// cancelled ones left out, and how many pending changes it covers. b.mu is held.
func (b *routeBatcher) takeBatchLocked() ([]route.Change, int) {
	n := min(len(b.pending), b.c.cfg.RouteBatchSize)
	batch := make([]route.Change, 0, n)
	for _, ch := range b.pending[:n] {
		if ch.Op != opCancelled {
			batch = append(batch, ch)
		}
	}
	b.sending = n
	return batch, n
}

// trimLocked drops the first n pending changes, which are committed (or were
// cancelled). b.mu is held.
func (b *routeBatcher) trimLocked(n int) {
	for _, ch := range b.pending[:n] {
		k := mineKey{ch.Filter, ch.Key.Group}
		if pos, ok := b.last[k]; ok && pos < b.trimmed+n {
			delete(b.last, k)
		}
	}
	b.pending = append(b.pending[:0], b.pending[n:]...)
	b.trimmed += n
	b.sending = 0
}

// Pending returns the number of route changes not committed yet.
func (b *routeBatcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

var errNoLeader = errors.New("cluster: no raft leader")

// propose commits changes: directly on the leader, through the leader otherwise.
func (c *Cluster) propose(changes []route.Change) error {
	if c.raft.State() == raft.Leader {
		return c.raft.Apply(route.EncodeChanges(changes), 5*time.Second).Error()
	}
	leader := c.leaderName()
	if leader == "" {
		return errNoLeader
	}
	p, err := c.peer(leader)
	if err != nil {
		return err
	}
	req := &peerpb.RouteChanges{Changes: make([]*peerpb.RouteChange, len(changes))}
	for i, ch := range changes {
		req.Changes[i] = &peerpb.RouteChange{Op: uint32(ch.Op), Filter: ch.Filter, Node: ch.Key.Node, Group: ch.Key.Group}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.client.ProposeRoutes(ctx, req)
	if err != nil {
		return fmt.Errorf("propose routes to %s: %w", leader, err)
	}
	if res.Error != "" {
		return fmt.Errorf("propose routes to %s: %s", leader, res.Error)
	}
	return nil
}

// AddRoute implements node.Cluster.
func (c *Cluster) AddRoute(filter, group string) {
	c.routes.add(route.Change{Op: route.OpAdd, Filter: filter, Key: route.Key{Node: c.name, Group: group}})
}

// RemoveRoute implements node.Cluster.
func (c *Cluster) RemoveRoute(filter, group string) {
	c.routes.add(route.Change{Op: route.OpRemove, Filter: filter, Key: route.Key{Node: c.name, Group: group}})
}
