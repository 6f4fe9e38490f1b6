package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	gproto "google.golang.org/protobuf/proto"

	"github.com/skein-mq/skein/cluster/peerpb"
)

// maxBatch bounds the deliveries in one forward batch.
const maxBatch = 512

// maxBatchBytes bounds the record bytes of one batch read from the spool, well
// under gRPC's default 4 MiB message limit (a single larger message still goes).
const maxBatchBytes = 2 << 20

// maxSpoolInflight bounds the batches read from the spool and not yet
// acknowledged: the spool is drained at the peer's pace, not read into memory.
const maxSpoolInflight = 4

// maxQueued bounds the deliveries waiting in memory for one peer; past it they go
// to the spool, as on a forward timeout.
const maxQueued = 100_000

// errNoAddr is a peer that gossip does not know (yet): there is nowhere to dial.
var errNoAddr = errors.New("cluster: no address for node")

// pending is one delivery waiting for its peer's acknowledgement.
type pending struct {
	d    *peerpb.Delivery
	done func(error) // nil when nobody waits: a QoS 0 message
	at   time.Time   // when it was queued, for the forward timeout
}

// keep reports whether the delivery must be held when its peer cannot take it: its
// publisher waits (QoS 1/2), or it is a retained write. A QoS 0 one may be lost.
func (it *pending) keep() bool {
	// A relay's end marker is kept too: without it the new node would watch for
	// duplicates of the session's messages far longer than needed.
	return it.done != nil || it.d.Retained || it.d.Relay != nil && it.d.Relay.End
}

// sentBatch is a batch on the wire, kept until acknowledged. A batch from memory
// keeps its deliveries, so a reconnect can send it again (the receiver skips
// batches it already applied); a batch from the spool keeps only the newest seq it
// carries: its deliveries stay in the spool until acknowledged.
type sentBatch struct {
	id        uint64
	items     []pending // from memory
	fromSpool bool
	spoolTo   uint64    // from the spool: the newest record it carries
	n         int       // from the spool: records in it
	at        time.Time // when it was sent
}

// peer is the connection to one other node: a gRPC client and the forward stream's
// sender, which batches deliveries and keeps them until acknowledged.
//
// A peer is in one of two modes. Streaming (the usual one): deliveries queue in
// memory and their publishers are answered when the peer accepts them. Spooling:
// deliveries go to the spool on disk, behind what it holds, and their publishers
// are answered once the write is durable; the sender drains the spool oldest first
// and returns to streaming once all of it is on the wire (records leave the spool
// as the peer acknowledges them; a stream that ends before that makes the peer
// spool again, so nothing overtakes them). A peer spools while gossip says it is
// down, after a delivery was not accepted within Config.ForwardTimeout, and from
// the start when the spool holds messages for it (from before a restart).
type peer struct {
	c      *Cluster
	name   string
	addr   string
	conn   *grpc.ClientConn
	client peerpb.PeerClient

	mu       sync.Mutex // guards queue, sent, down, spooling, cancel
	queue    []pending
	sent     []sentBatch // on the current stream, oldest first
	down     bool        // gossip says the peer is dead or left
	spooling bool
	// closed is set once close took what the peer held: a delivery that reaches it
	// later goes to the node's current peer (enqueueAgainOr).
	closed bool
	// retrying is set when the peer could not apply records sent from the spool
	// for now (ackRetry): they stay in the spool, and acks of the current stream
	// delete none, until the next stream sends them again.
	retrying bool
	cancel   context.CancelFunc // ends the current stream; nil between streams

	wake   chan struct{} // capacity 1: something to send, or an acknowledgement
	revive chan struct{} // capacity 1: gossip sees the peer alive again
	stop   chan struct{}
	done   chan struct{}
	// forwarded counts deliveries acknowledged by the peer.
	forwarded atomic.Uint64
}

// peerConnectParams cap gRPC's reconnect backoff at a few seconds instead of its
// two minutes: a peer that was away (restarted, partitioned) is reached again soon
// after gossip sees it back, for the held messages and the retained pulls.
var peerConnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// peerKeepalive pings a peer connection that is quiet for a while: a connection
// whose packets are silently dropped (a blackholed route, a vanished NAT entry)
// fails within Time+Timeout and is dialed again, rather than holding the stream
// until the kernel gives up on it after many minutes. The server's enforcement
// policy (peerKeepaliveEnforcement) allows pings that often.
var peerKeepalive = keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}

// peerKeepaliveEnforcement lets peers ping as often as peerKeepalive does.
var peerKeepaliveEnforcement = keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}

// peer returns (creating it if needed) the connection to node name; errNoAddr when
// gossip has no address for a node it has no peer for.
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
		return nil, fmt.Errorf("%w %q", errNoAddr, name)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithConnectParams(peerConnectParams), grpc.WithKeepaliveParams(peerKeepalive))
	if err != nil {
		return nil, fmt.Errorf("cluster: dial %s at %s: %w", name, addr, err)
	}
	p := &peer{c: c, name: name, addr: addr, conn: conn, client: peerpb.NewPeerClient(conn),
		wake: make(chan struct{}, 1), revive: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	// Decided under c.mu, which holdLocked holds too: a delivery spooled for a node
	// without a peer is drained by the peer made next.
	p.spooling = c.spool.Depth(name) > 0
	if old := c.peers[name]; old != nil {
		// The node came back at another address: the old stream is useless, but
		// what is held for the node goes on to the new one, in order. Sent batches
		// keep their ids, so the node skips those it applied already.
		p.sent, p.queue = old.handOver()
		if p.spooling && len(p.sent)+len(p.queue) > 0 {
			p.mu.Lock()
			p.spillLocked()
			p.mu.Unlock()
		}
		go old.close()
	}
	c.peers[name] = p
	go p.run()
	return p, nil
}

// enqueueTo hands a delivery to node's peer. A node gossip does not know (this node
// restarted while it was away) has no address to dial: the delivery is held in the
// spool, and the peer made when the node appears drains it.
func (c *Cluster) enqueueTo(node string, d *peerpb.Delivery, done func(error)) {
	p, err := c.peer(node)
	if errors.Is(err, errNoAddr) {
		c.mu.Lock()
		if p = c.peers[node]; p == nil {
			c.holdLocked(node, pending{d: d, done: done, at: time.Now()}, "", 0)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		err = nil
	}
	if err != nil {
		c.log.Warn("cannot forward to node", "member", node, "err", err)
		if done != nil {
			done(err)
		}
		return
	}
	p.enqueue(d, done)
}

// handOver takes what the peer holds in memory, its sent batches not acknowledged
// (from memory: those from the spool are read from it again) and its queue, and
// leaves it empty, so close fails nothing.
func (p *peer) handOver() ([]sentBatch, []pending) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sent []sentBatch
	for _, b := range p.sent {
		if !b.fromSpool {
			sent = append(sent, b)
		}
	}
	queue := p.queue
	p.sent, p.queue = nil, nil
	return sent, queue
}

// enqueueAgainOr hands a delivery that reached old after it was closed to the peer
// that replaced it at the node's new address, or, when old was not replaced,
// answers it with err.
func (c *Cluster) enqueueAgainOr(old *peer, it pending, err error) {
	c.mu.Lock()
	cur := c.peers[old.name]
	c.mu.Unlock()
	if cur == nil || cur == old {
		if it.done != nil {
			it.done(err)
		}
		return
	}
	cur.enqueue(it.d, it.done)
}

func (p *peer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// enqueue queues a delivery, or spools it while the peer spools. done (if not nil)
// is called once the peer accepted it, or once it is durable in the spool.
func (p *peer) enqueue(d *peerpb.Delivery, done func(error)) {
	it := pending{d: d, done: done, at: time.Now()}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.c.enqueueAgainOr(p, it, errClosing)
		return
	}
	if p.spooling {
		p.c.holdLocked(p.name, it, "", 0)
	} else {
		p.queue = append(p.queue, it)
		if len(p.queue) > maxQueued {
			p.c.log.Warn("too many messages waiting for a node: holding them on disk", "member", p.name, "messages", len(p.queue))
			p.spillLocked()
		}
	}
	p.mu.Unlock()
	p.signal()
}

// markDown is called when gossip sees the peer dead or gone: what waits for it in
// memory goes to the spool, and new deliveries follow it there.
func (p *peer) markDown() {
	p.mu.Lock()
	p.down = true
	n := p.spillLocked()
	p.mu.Unlock()
	if n > 0 {
		p.c.log.Info("node down: holding its messages on disk", "member", p.name, "messages", n)
	}
}

// close stops the sender and fails the waiters of what is in memory; what is in
// the spool stays there.
func (p *peer) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	// A stream blocked in Send by flow control (a stalled peer) never looks at
	// p.stop: end it, or closing waits for gRPC's keepalive to fail the transport.
	p.mu.Lock()
	if p.cancel != nil {
		p.cancel()
	}
	p.mu.Unlock()
	<-p.done
	p.conn.Close()
	p.mu.Lock()
	left := p.queue // what came after handOver; sent is empty then
	for _, b := range p.sent {
		left = append(left, b.items...)
	}
	p.queue, p.sent = nil, nil
	p.closed = true
	p.mu.Unlock()
	// Replaced by a peer at the node's new address: what reached this one after
	// the hand-over goes there. Otherwise (removed, or closed with the cluster) it
	// fails.
	for _, it := range left {
		p.c.enqueueAgainOr(p, it, errors.New("cluster: peer "+p.name+" removed"))
	}
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
		if !p.backoff(backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
		if err == nil {
			backoff = 50 * time.Millisecond
		}
	}
}

// backoff waits d before the next connection attempt, less when gossip sees the
// peer come back or a publisher waits for it. Deliveries to the spool are no
// reason to hurry: nobody waits for them. It reports false when the peer is
// closing.
func (p *peer) backoff(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-p.stop:
			return false
		case <-p.revive:
			return true
		case <-p.wake:
			p.mu.Lock()
			waiting := !p.down && !p.spooling
			p.mu.Unlock()
			if waiting {
				return true
			}
		}
	}
}

// stream runs one forward stream until it fails or is cancelled (a forward timeout
// or the peer going down ends it, see spillLocked).
func (p *peer) stream() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.mu.Lock()
	if !p.spooling && p.c.spool.Depth(p.name) > 0 {
		// The last stream ended with records from the spool not acknowledged, after
		// the peer went back to streaming: they go first again, and what followed
		// them in memory goes behind them in the spool.
		p.spillLocked()
	}
	p.cancel = cancel
	p.retrying = false // what was kept is read from the spool again below
	gen := p.c.streams.Add(1)
	// Batches from memory go again as they were; those from the spool are read
	// from it again.
	var resend []sentBatch
	kept := p.sent[:0]
	for _, b := range p.sent {
		if !b.fromSpool {
			kept = append(kept, b)
			resend = append(resend, b)
		}
	}
	clear(p.sent[len(kept):])
	p.sent = kept
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.cancel = nil
		p.mu.Unlock()
	}()
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
	for _, b := range resend {
		if err := s.Send(p.batchMsg(b, gen)); err != nil {
			return err
		}
	}
	var after uint64 // the newest spool record sent on this stream
	for {
		p.mu.Lock()
		var msg *peerpb.ForwardBatch
		if p.spooling {
			if p.c.spool.Last(p.name) <= after {
				// Everything held is on this stream, or acknowledged: back to
				// streaming, behind it on the same stream, so order holds. (Waiting
				// for an empty spool could take forever under steady load.) Appends
				// happen under p.mu: none can slip in behind this check.
				p.spooling = false
				p.mu.Unlock()
				if after > 0 {
					p.c.log.Info("sent a node the messages held for it: streaming again", "member", p.name)
				}
				continue
			}
			inflight := 0
			for _, b := range p.sent {
				if b.fromSpool {
					inflight++
				}
			}
			p.mu.Unlock()
			if inflight < maxSpoolInflight {
				var to uint64
				if msg, to, err = p.readSpool(ctx, gen, after); err != nil {
					return err
				}
				after = max(after, to)
			}
		} else {
			n := min(len(p.queue), maxBatch)
			if n > 0 {
				b := sentBatch{id: p.c.batchIDs.Add(1), items: append([]pending(nil), p.queue[:n]...), at: time.Now()}
				p.queue = append(p.queue[:0], p.queue[n:]...)
				p.sent = append(p.sent, b)
				msg = p.batchMsg(b, gen)
			}
			p.mu.Unlock()
		}
		if msg == nil {
			select {
			case <-p.wake:
				continue
			case <-p.stop:
				return nil
			case err := <-acks:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := s.Send(msg); err != nil {
			return err
		}
	}
}

// readSpool reads the records after seq after into a batch, registered as sent,
// and returns it with its newest seq; nil when every record is out already. A
// record that does not decode is logged and skipped (its seq is still covered by
// the batch, so the acknowledgement deletes it).
func (p *peer) readSpool(ctx context.Context, gen, after uint64) (*peerpb.ForwardBatch, uint64, error) {
	recs, err := p.c.spool.Read(ctx, p.name, after, maxBatch, maxBatchBytes)
	if err != nil || len(recs) == 0 {
		return nil, 0, err
	}
	msg := &peerpb.ForwardBatch{From: p.c.incarnation, Stream: gen, SpoolId: p.c.spool.ID(), Deliveries: make([]*peerpb.Delivery, 0, len(recs))}
	for _, r := range recs {
		d := &peerpb.Delivery{}
		if err := gproto.Unmarshal(r.Data, d); err != nil {
			p.c.log.Error("dropping a corrupt message held for a node", "member", p.name, "seq", r.Seq, "err", err)
			continue
		}
		d.SpoolSeq = r.Seq
		msg.Deliveries = append(msg.Deliveries, d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	msg.Id = p.c.batchIDs.Add(1)
	to := recs[len(recs)-1].Seq
	p.sent = append(p.sent, sentBatch{id: msg.Id, fromSpool: true, spoolTo: to, n: len(recs), at: time.Now()})
	return msg, to, nil
}

func (p *peer) batchMsg(b sentBatch, gen uint64) *peerpb.ForwardBatch {
	m := &peerpb.ForwardBatch{Id: b.id, From: p.c.incarnation, Stream: gen, Deliveries: make([]*peerpb.Delivery, len(b.items))}
	for i, it := range b.items {
		m.Deliveries[i] = it.d
	}
	return m
}

// acked completes every batch up to the acknowledged one (acks come in order):
// the waiters of batches from memory are answered, the records of batches from the
// spool deleted.
func (p *peer) acked(ack *peerpb.ForwardAck) {
	var err error
	if ack.Error != "" {
		err = fmt.Errorf("cluster: %s did not accept the messages: %s", p.name, ack.Error)
	}
	retry := strings.HasPrefix(ack.Error, ackRetry)
	p.mu.Lock()
	var done []pending
	var spoolTo uint64
	spooled := 0
	i := 0
	for ; i < len(p.sent) && p.sent[i].id <= ack.Id; i++ {
		if b := p.sent[i]; b.fromSpool {
			spoolTo = max(spoolTo, b.spoolTo)
			spooled += b.n
		} else {
			done = append(done, b.items...)
		}
	}
	p.sent = append(p.sent[:0], p.sent[i:]...)
	if spoolTo > 0 && retry && !p.retrying {
		// Their publishers were answered long ago: the records stay, and go again
		// on the next stream, from the oldest.
		p.retrying = true
		if p.cancel != nil {
			p.cancel()
		}
		p.c.log.Warn("a node could not take messages held for it now: sending them again", "member", p.name, "messages", spooled, "err", err)
	}
	keep := p.retrying
	p.mu.Unlock()
	if spoolTo > 0 && !keep {
		if err != nil {
			// Refused for good (a record that does not decode there): nobody can
			// send them again.
			p.c.log.Error("a node refused messages held for it: dropped", "member", p.name, "messages", spooled, "err", err)
		}
		p.c.spool.Delete(p.name, spoolTo)
		p.signal()
	}
	p.forwarded.Add(uint64(len(done) + spooled))
	for _, it := range done {
		if it.done != nil {
			it.done(err)
		}
	}
}
