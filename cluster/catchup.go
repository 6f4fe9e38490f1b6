package cluster

import (
	"context"
	"time"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/session"
)

// requestCatchUp asks catchUpLoop to copy the retained messages of member name; it
// never blocks (gossip calls it with its locks held).
func (c *Cluster) requestCatchUp(name string) {
	select {
	case c.catchUp <- name:
	default: // a catch-up is queued already: one copy is enough
	}
}

// catchUpLoop runs the catch-ups requested when this node, having been cut off
// from most of the cluster, sees members again.
func (c *Cluster) catchUpLoop() {
	for {
		select {
		case <-c.stop:
			return
		case name := <-c.catchUp:
			c.catchUpRetained(name)
		}
	}
}

// catchUpRetained copies the retained messages of a live peer (from, if given),
// for a node that was away: the later stamp wins topic by topic.
func (c *Cluster) catchUpRetained(from ...string) {
	peers := from
	if len(peers) == 0 {
		peers = c.members.aliveOthers()
	}
	for _, n := range peers {
		p, err := c.peer(n)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		stream, err := p.client.RetainedSnapshot(ctx, &peerpb.RetainedRequest{})
		if err != nil {
			cancel()
			continue
		}
		count := 0
		for {
			r, err := stream.Recv()
			if err != nil {
				break
			}
			m, err := session.UnmarshalMessage(r.Message)
			if err != nil {
				continue
			}
			m.Stamp = r.Stamp
			if _, err := c.local.StoreRetained(m); err == nil {
				count++
			}
		}
		cancel()
		c.log.Info("caught up retained messages", "from", n, "messages", count)
		return
	}
}
