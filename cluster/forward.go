package cluster

import (
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// waiter collects the acceptances of one message by several nodes.
type waiter struct {
	left atomic.Int32
	err  atomic.Pointer[error]
	ch   chan error
}

func newWaiter(n int) *waiter {
	w := &waiter{ch: make(chan error, 1)}
	w.left.Store(int32(n))
	return w
}

func (w *waiter) done(err error) {
	if err != nil {
		w.err.CompareAndSwap(nil, &err)
	}
	if w.left.Add(-1) == 0 {
		var e error
		if p := w.err.Load(); p != nil {
			e = *p
		}
		w.ch <- e
	}
}

// dest is what one node receives for one message.
type dest struct {
	deliver bool
	shared  []string
}

// Forward implements node.Cluster: it sends m to every other node with a matching
// route (one copy per node, never per subscriber), picks the node that serves each
// matching shared subscription, and sends a retained message to every node.
func (c *Cluster) Forward(m *session.Message, needAck bool) (map[string]bool, int, <-chan error) {
	dests := map[string]*dest{}
	get := func(n string) *dest {
		d := dests[n]
		if d == nil {
			d = &dest{}
			dests[n] = d
		}
		return d
	}
	var groups map[string][]string
	c.table.Match(m.Topic, func(filter string, k routeKey) bool {
		if k.Group == "" {
			if k.Node != c.name {
				get(k.Node).deliver = true
			}
			return true
		}
		if k.Node != c.name && !c.members.isAlive(k.Node) {
			return true // a dead node's members cannot take a shared message now
		}
		if groups == nil {
			groups = map[string][]string{}
		}
		key := proto.SharePrefix + k.Group + "/" + filter
		groups[key] = append(groups[key], k.Node)
		return true
	})
	var notLocal map[string]bool
	for key, nodes := range groups {
		sort.Strings(nodes)
		v, _ := c.pickRR.LoadOrStore(key, new(atomic.Uint64))
		chosen := nodes[(v.(*atomic.Uint64).Add(1)-1)%uint64(len(nodes))]
		if chosen == c.name {
			continue
		}
		if notLocal == nil {
			notLocal = map[string]bool{}
		}
		notLocal[key] = true
		d := get(chosen)
		d.shared = append(d.shared, key)
	}
	if m.Retain {
		for _, n := range c.members.aliveOthers() {
			get(n)
		}
	}
	if len(dests) == 0 {
		return notLocal, 0, nil
	}
	data, err := session.MarshalMessage(m)
	if err != nil {
		c.log.Error("encode a message to forward", "topic", m.Topic, "err", err)
		return notLocal, 0, nil
	}
	var w *waiter
	if needAck {
		w = newWaiter(len(dests))
	}
	for node, d := range dests {
		var done func(error)
		if w != nil {
			done = w.done
		}
		c.enqueueTo(node, &peerpb.Delivery{Message: data, Shared: d.shared, Retained: m.Retain, Deliver: d.deliver || len(d.shared) > 0, Stamp: m.Stamp}, done)
		c.stats.counter(&c.stats.sent, node).Add(1)
	}
	if w == nil {
		return notLocal, len(dests), nil
	}
	return notLocal, len(dests), w.ch
}

// ReplicateRetained implements node.Cluster: it sends a retained message (or a
// stamped clear) to every other live node to store, delivering it to nobody, and
// returns a channel that yields once they all accepted it (nil when there are no
// other nodes). The admin API's delete uses it: a clear that is not a publish.
func (c *Cluster) ReplicateRetained(m *session.Message) <-chan error {
	others := c.members.aliveOthers()
	if len(others) == 0 {
		return nil
	}
	data, err := session.MarshalMessage(m)
	if err != nil {
		return failed(fmt.Errorf("cluster: encode a retained message: %w", err))
	}
	w := newWaiter(len(others))
	for _, node := range others {
		c.enqueueTo(node, &peerpb.Delivery{Message: data, Retained: true, Stamp: m.Stamp}, w.done)
		c.stats.counter(&c.stats.sent, node).Add(1)
	}
	return w.ch
}
