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

	mu      sync.Mutex // guards pending
	pending []route.Change
	wake    chan struct{} // capacity 1
	// Proposed counts committed entries and changes, for tests and metrics.
	entries, changes uint64
}

func newRouteBatcher(c *Cluster) *routeBatcher {
	return &routeBatcher{c: c, wake: make(chan struct{}, 1)}
}

func (b *routeBatcher) add(ch route.Change) {
	b.mu.Lock()
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

// run commits batches until stop.
func (b *routeBatcher) run(stop <-chan struct{}) {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-stop:
			return
		case <-b.wake:
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
			n := min(len(b.pending), b.c.cfg.RouteBatchSize)
			batch := append([]route.Change(nil), b.pending[:n]...)
			b.mu.Unlock()
			if n == 0 {
				break
			}
			if err := b.c.propose(batch); err != nil {
				b.c.log.Debug("route changes not committed yet, retrying", "changes", n, "err", err)
				if !b.c.sleep(backoff) {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
			b.mu.Lock()
			b.pending = append(b.pending[:0], b.pending[n:]...)
			b.entries++
			b.changes += uint64(n)
			b.mu.Unlock()
		}
	}
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
