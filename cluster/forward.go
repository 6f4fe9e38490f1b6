package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// maxBatch bounds the deliveries in one forward batch.
const maxBatch = 512

// maxHeld bounds the deliveries held for one peer that is down; past it the oldest
// are dropped and counted.
const maxHeld = 100_000

// pending is one delivery waiting for its peer's acknowledgement.
type pending struct {
	d    *peerpb.Delivery
	done func(error) // nil when nobody waits
}

// sentBatch is a batch on the wire, kept until acknowledged so a reconnect can send
// it again (the receiver skips batches it already applied).
type sentBatch struct {
	id    uint64
	items []pending
}

// peer is the connection to one other node: a gRPC client and the forward stream's
// sender, which batches deliveries and keeps them until acknowledged.
type peer struct {
	c      *Cluster
	name   string
	addr   string
	conn   *grpc.ClientConn
	client peerpb.PeerClient

	mu      sync.Mutex // guards queue, sent, nextID, down, dropped
	queue   []pending
	sent    []sentBatch
	nextID  uint64
	down    bool // the peer is dead: deliveries are held, and their waiters released
	dropped uint64

	wake chan struct{} // capacity 1
	stop chan struct{}
	done chan struct{}
	// Forwarded counts deliveries acknowledged by the peer.
	forwarded atomic.Uint64
}

// peerConnectParams cap gRPC's reconnect backoff at a few seconds instead of its
// two minutes: a peer that was away (restarted, partitioned) is reached again soon
// after gossip sees it back, for the held messages and the retained pulls.
var peerConnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// peer returns (creating it if needed) the connection to node name.
func (c *Cluster) peer(name string) (*peer, error) {
	addr := c.members.addrOf(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.peers[name]; p != nil && (addr == "" || p.addr == addr) {
		return p, nil
	}
	select {
	case <-c.stop:
		// Close has taken (or is about to take) the peers to close them under c.mu:
		// a new one would outlive it.
		return nil, errClosing
	default:
	}
	if addr == "" {
		return nil, fmt.Errorf("cluster: no address for node %q", name)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithConnectParams(peerConnectParams))
	if err != nil {
		return nil, fmt.Errorf("cluster: dial %s at %s: %w", name, addr, err)
	}
	p := &peer{c: c, name: name, addr: addr, conn: conn, client: peerpb.NewPeerClient(conn),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if old := c.peers[name]; old != nil {
		// The node came back at another address: the old stream is useless, but
		// what is held for the node goes on to the new one, in order.
		p.queue, p.nextID = old.handOver()
		go old.close()
	}
	c.peers[name] = p
	go p.run()
	return p, nil
}

// handOver takes what the peer holds, sent batches not acknowledged first, and
// leaves it empty, so close fails nothing; the next batch id continues from it.
func (p *peer) handOver() ([]pending, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var items []pending
	for _, b := range p.sent {
		items = append(items, b.items...)
	}
	items = append(items, p.queue...)
	p.sent, p.queue = nil, nil
	return items, p.nextID
}

// peerAlive is called when gossip sees a node join: held deliveries flow again,
// to its new address if it moved.
func (c *Cluster) peerAlive(name string) {
	c.mu.Lock()
	p := c.peers[name]
	c.mu.Unlock()
	if p == nil {
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
	p.signal()
}

// dropPeer forgets a node whose routes were purged, with what was held for it.
func (c *Cluster) dropPeer(name string) {
	c.mu.Lock()
	p := c.peers[name]
	delete(c.peers, name)
	c.mu.Unlock()
	if p != nil {
		p.close()
	}
}

func (p *peer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// enqueue queues a delivery. done (if not nil) is called once the peer accepted it,
// or at once when the peer is down and the delivery is held for it.
func (p *peer) enqueue(d *peerpb.Delivery, done func(error)) {
	p.mu.Lock()
	if p.down && done != nil {
		done(nil) // held: the sending node answers for it now
		done = nil
	}
	if len(p.queue) >= maxHeld {
		// Bounded: drop the oldest held delivery (its waiter, if any, is released).
		if old := p.queue[0]; old.done != nil {
			old.done(errors.New("cluster: too many messages held for " + p.name))
		}
		p.queue = p.queue[1:]
		p.dropped++
	}
	p.queue = append(p.queue, pending{d: d, done: done})
	p.mu.Unlock()
	p.signal()
}

// markDown releases the waiters of everything queued or sent: the peer is dead, the
// deliveries are held here until it returns or its routes are purged.
func (p *peer) markDown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	release := func(items []pending) {
		for i := range items {
			if items[i].done != nil {
				items[i].done(nil)
				items[i].done = nil
			}
		}
	}
	release(p.queue)
	for _, b := range p.sent {
		release(b.items)
	}
}

func (p *peer) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.conn.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	fail := func(items []pending) {
		for _, it := range items {
			if it.done != nil {
				it.done(errors.New("cluster: peer " + p.name + " removed"))
			}
		}
	}
	fail(p.queue)
	for _, b := range p.sent {
		fail(b.items)
	}
	p.queue, p.sent = nil, nil
}

// run keeps a forward stream open and feeds it, reconnecting with backoff.
func (p *peer) run() {
	defer close(p.done)
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		err := p.stream()
		select {
		case <-p.stop:
			return
		default:
		}
		if !p.c.members.isAlive(p.name) {
			p.markDown()
		}
		p.c.log.Debug("forward stream ended, reconnecting", "peer", p.name, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-p.stop:
			t.Stop()
			return
		case <-p.wake:
			t.Stop()
		}
		backoff = min(2*backoff, 2*time.Second)
		if err == nil {
			backoff = 50 * time.Millisecond
		}
	}
}

// stream runs one forward stream until it fails.
func (p *peer) stream() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := p.client.Forward(ctx)
	if err != nil {
		return err
	}
	acks := make(chan error, 1)
	go func() {
		for {
			ack, err := s.Recv()
			if err != nil {
				acks <- err
				return
			}
			p.acked(ack)
		}
	}()
	// Anything sent on a previous stream and not acknowledged goes again first.
	p.mu.Lock()
	resend := append([]sentBatch(nil), p.sent...)
	p.mu.Unlock()
	for _, b := range resend {
		if err := s.Send(p.batchMsg(b)); err != nil {
			return err
		}
	}
	for {
		p.mu.Lock()
		n := min(len(p.queue), maxBatch)
		var b sentBatch
		if n > 0 {
			p.nextID++
			b = sentBatch{id: p.nextID, items: append([]pending(nil), p.queue[:n]...)}
			p.queue = append(p.queue[:0], p.queue[n:]...)
			p.sent = append(p.sent, b)
		}
		p.mu.Unlock()
		if n == 0 {
			select {
			case <-p.wake:
				continue
			case <-p.stop:
				return nil
			case err := <-acks:
				return err
			}
		}
		if err := s.Send(p.batchMsg(b)); err != nil {
			return err
		}
	}
}

func (p *peer) batchMsg(b sentBatch) *peerpb.ForwardBatch {
	m := &peerpb.ForwardBatch{Id: b.id, From: p.c.incarnation, Deliveries: make([]*peerpb.Delivery, len(b.items))}
	for i, it := range b.items {
		m.Deliveries[i] = it.d
	}
	return m
}

// acked completes every batch up to the acknowledged one (acks come in order).
func (p *peer) acked(ack *peerpb.ForwardAck) {
	var err error
	if ack.Error != "" {
		err = fmt.Errorf("cluster: %s did not accept the messages: %s", p.name, ack.Error)
	}
	p.mu.Lock()
	var done []pending
	i := 0
	for ; i < len(p.sent) && p.sent[i].id <= ack.Id; i++ {
		done = append(done, p.sent[i].items...)
	}
	p.sent = append(p.sent[:0], p.sent[i:]...)
	p.mu.Unlock()
	p.forwarded.Add(uint64(len(done)))
	for _, it := range done {
		if it.done != nil {
			it.done(err)
		}
	}
}

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
		p, err := c.peer(node)
		if err != nil {
			c.log.Warn("cannot forward to node", "member", node, "err", err)
			if done != nil {
				done(err)
			}
			continue
		}
		p.enqueue(&peerpb.Delivery{Message: data, Shared: d.shared, Retained: m.Retain, Deliver: d.deliver || len(d.shared) > 0, Stamp: m.Stamp}, done)
		c.stats.counter(&c.stats.sent, node).Add(1)
	}
	if w == nil {
		return notLocal, len(dests), nil
	}
	return notLocal, len(dests), w.ch
}
