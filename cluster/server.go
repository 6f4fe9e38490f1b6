package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/route"
	"github.com/skein-mq/skein/session"
)

type routeKey = route.Key

// server is the peer gRPC service: what other nodes ask of this one.
type server struct {
	peerpb.UnimplementedPeerServer
	c *Cluster
}

// appliedBatches remembers what each sender had applied here, so a delivery that
// comes again is acknowledged without delivering it twice: per sending run
// (incarnation), the last forward batch (a batch sent again after a reconnect)
// and the latest stream (batches of earlier ones are refused);
// per sending node, the last record of its spool (a batch sent from the spool
// again after the sender restarted, with a new incarnation). Each mark keeps the
// store ticket of what it applied: the acknowledgement of a skipped delivery waits
// for it, as the first one's did, or should have had its stream not ended.
//
// The marks of batches that wrote something durable are also written to the store
// (applied_marks.go) and loaded at start, so a restart of this node does not make
// it apply a sender's unacknowledged batch again.
type appliedBatches struct {
	mu      sync.Mutex // guards the maps
	last    map[string]appliedMark
	spool   map[string]spoolMark
	senders map[string]*sync.Mutex
}

type appliedMark struct{ id, ticket, stream uint64 }

// errStaleStream refuses a batch of a forward stream the sender has replaced: the
// later stream carries what it did.
var errStaleStream = errors.New("cluster: batch of a replaced forward stream")

// enter admits a batch of stream of run from, and reports false when a later
// stream of that run has been seen.
func (a *appliedBatches) enter(from string, stream uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.last[from]
	if stream < m.stream {
		return false
	}
	m.stream = stream
	a.last[from] = m
	return true
}

// spoolMark is the last record applied from one sender's spool (spool ids change
// only with its data file, when its seqs start again).
type spoolMark struct {
	id          string
	seq, ticket uint64
}

func newAppliedBatches() *appliedBatches {
	return &appliedBatches{last: map[string]appliedMark{}, spool: map[string]spoolMark{}, senders: map[string]*sync.Mutex{}}
}

// sender returns the lock that makes one sending node's batches apply one at a
// time: a stream ended by a forward timeout may still be applying its batch while
// the sender's next stream brings the same deliveries from its spool.
func (a *appliedBatches) sender(name string) *sync.Mutex {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.senders[name]
	if l == nil {
		l = new(sync.Mutex)
		a.senders[name] = l
	}
	return l
}

// seen reports whether batch id of run from was applied, and its ticket.
func (a *appliedBatches) seen(from string, id uint64) (bool, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.last[from]
	return ok && id <= m.id, m.ticket
}

// lastBatch returns the id of the newest memory batch of run from applied (0 for
// none).
func (a *appliedBatches) lastBatch(from string) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last[from].id
}

func (a *appliedBatches) mark(from string, id, ticket uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if m := a.last[from]; id > m.id {
		m.id, m.ticket = id, max(ticket, m.ticket)
		a.last[from] = m
	}
}

// spoolSeen reports whether record seq of sender's spool id was applied, and the
// ticket to wait for.
func (a *appliedBatches) spoolSeen(sender, id string, seq uint64) (bool, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.spool[sender]
	return ok && m.id == id && seq <= m.seq, m.ticket
}

func (a *appliedBatches) markSpool(sender, id string, seq, ticket uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.spool[sender]
	if !ok || m.id != id {
		a.spool[sender] = spoolMark{id: id, seq: seq, ticket: ticket}
		return
	}
	if seq > m.seq {
		a.spool[sender] = spoolMark{id: id, seq: seq, ticket: max(ticket, m.ticket)}
	}
}

// Forward receives batches from one peer, delivers them locally in order, and
// acknowledges each once its deliveries are durable for persistent sessions.
func (s *server) Forward(stream peerpb.Peer_ForwardServer) error {
	for {
		b, err := stream.Recv()
		if err != nil {
			return err
		}
		lock := s.c.applied.sender(senderName(b.From))
		lock.Lock()
		if !s.c.applied.enter(b.From, b.Stream) {
			lock.Unlock()
			return errStaleStream
		}
		ack := s.apply(stream.Context(), b)
		lock.Unlock()
		if err := stream.Send(ack); err != nil {
			return err
		}
	}
}

// apply delivers one batch, skipping what was applied before, and waits until it
// is durable.
func (s *server) apply(ctx context.Context, b *peerpb.ForwardBatch) *peerpb.ForwardAck {
	c := s.c
	ack := &peerpb.ForwardAck{Id: b.Id}
	sender := senderName(b.From)
	// A batch from the sender's memory is skipped whole once applied, by its id; a
	// batch from its spool is not: its records are skipped one by one, by their spool
	// seq, or by the memory batch that carried them first (SentFrom, SentBatch). The
	// id of a spool batch must not move the memory batches' mark either: spool
	// batches are numbered from the same counter, after the memory batches they
	// hold, and would make those look applied before they were.
	fromMemory := b.SpoolId == ""
	if seen, t := c.applied.seen(b.From, b.Id); fromMemory && seen {
		if err := c.local.WaitDurable(ctx, t); err != nil {
			ack.Error = ackRetry + err.Error()
		}
		return ack
	}
	// retry is set by a failure that may pass (the store's commit, a node a
	// delivery went on to): the batch is then not marked applied, and the sender
	// sends it again. Deliveries applied before the failure may so come twice; that
	// is the price of losing none. The stream ending (ctx) is no such failure: what
	// was applied stays applied and becomes durable all the same, and the copies
	// sent again must be skipped.
	retry := false
	fail := func(err error) {
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			retry = true
		}
		if ack.Error == "" {
			ack.Error = err.Error()
		}
	}
	var ticket, spoolTo uint64
	var relayed []<-chan error
	applied := 0
	for _, d := range b.Deliveries {
		if d.SentFrom != "" {
			if seen, t := c.applied.seen(d.SentFrom, d.SentBatch); seen {
				ticket = max(ticket, t)
				continue
			}
		}
		if d.SpoolSeq != 0 && b.SpoolId != "" {
			spoolTo = max(spoolTo, d.SpoolSeq)
			if seen, t := c.applied.spoolSeen(sender, b.SpoolId, d.SpoolSeq); seen {
				ticket = max(ticket, t)
				continue
			}
		}
		applied++
		if r := d.Relay; r != nil {
			t, w, err := c.receiveRelay(ctx, r, d.Message)
			if err != nil {
				ack.Error = err.Error()
			}
			ticket = max(ticket, t)
			if w != nil {
				relayed = append(relayed, w)
			}
			continue
		}
		m, err := session.UnmarshalMessage(d.Message)
		if err != nil {
			ack.Error = "corrupt message: " + err.Error()
			continue
		}
		m.Stamp = d.Stamp
		if d.Retained {
			t, err := c.local.StoreRetained(m)
			if err != nil {
				fail(err)
			}
			ticket = max(ticket, t)
		}
		if d.Deliver {
			t, w := c.local.DeliverRemote(m, d.Shared)
			ticket = max(ticket, t)
			if w != nil {
				relayed = append(relayed, w)
			}
		}
	}
	if ticket > 0 {
		// Something durable was applied: so is the mark that skips it when sent again.
		batch := b.Id
		if !fromMemory {
			batch = c.applied.lastBatch(b.From)
		}
		ticket = max(ticket, c.persistMark(sender, b.From, batch, b.SpoolId, spoolTo))
	}
	if err := c.local.WaitDurable(ctx, ticket); err != nil {
		fail(err)
	}
	// What went on to nodes that sessions matching here moved to must be accepted
	// there too before this node answers for it.
	for _, w := range relayed {
		select {
		case err := <-w:
			if err != nil {
				fail(err)
			}
		case <-ctx.Done():
			fail(ctx.Err())
		}
	}
	if retry {
		ack.Error = ackRetry + ack.Error
		return ack
	}
	if fromMemory {
		c.applied.mark(b.From, b.Id, ticket)
	}
	if spoolTo != 0 {
		c.applied.markSpool(sender, b.SpoolId, spoolTo, ticket)
	}
	c.stats.counter(&c.stats.recv, sender).Add(uint64(applied))
	return ack
}

// ackRetry starts the error of an acknowledgement whose batch was not applied
// because of a failure that may pass: the sender sends it again. Any other error
// is the deliveries' own (a corrupt message), which would fail again.
const ackRetry = "retry: "

// senderName strips the run suffix of a sender's incarnation.
func senderName(from string) string {
	for i := len(from) - 1; i >= 0; i-- {
		if from[i] == '#' {
			return from[:i]
		}
	}
	return from
}

// ProposeRoutes applies route changes when this node leads.
func (s *server) ProposeRoutes(ctx context.Context, req *peerpb.RouteChanges) (*peerpb.ProposeResult, error) {
	c := s.c
	if c.raft.State() != raft.Leader {
		return &peerpb.ProposeResult{Leader: c.leaderName(), Error: "not the leader"}, nil
	}
	changes := make([]route.Change, len(req.Changes))
	for i, ch := range req.Changes {
		changes[i] = route.Change{Op: route.Op(ch.Op), Filter: ch.Filter, Key: route.Key{Node: ch.Node, Group: ch.Group}}
	}
	if err := c.raft.Apply(route.EncodeChanges(changes), 5*time.Second).Error(); err != nil {
		return &peerpb.ProposeResult{Error: err.Error()}, nil
	}
	return &peerpb.ProposeResult{}, nil
}

// TakeOver closes the client's connection here and hands its session over. Of two
// nodes connecting one client id at the same instant, the one whose name sorts
// first goes first.
func (s *server) TakeOver(ctx context.Context, req *peerpb.TakeOverRequest) (*peerpb.TakeOverResponse, error) {
	toFirst := req.Requester < s.c.name
	state, found, contended, err := s.c.local.ReleaseClient(ctx, req.ClientId, req.Requester, req.Resume, toFirst)
	if err != nil {
		return nil, err
	}
	return &peerpb.TakeOverResponse{Found: found, Session: state, Contended: contended}, nil
}

// RetainedSnapshot streams every retained message and tombstone with its stamp and,
// when asked, pulls the requester's set in turn (see catchup.go).
func (s *server) RetainedSnapshot(req *peerpb.RetainedRequest, stream peerpb.Peer_RetainedSnapshotServer) error {
	if req.PullBack && req.From != "" {
		s.c.requestPull(req.From, false)
	}
	var sendErr error
	err := s.c.local.EachRetained(func(m *session.Message) bool {
		data, err := session.MarshalMessage(m)
		if err != nil {
			return true
		}
		sendErr = stream.Send(&peerpb.Retained{Message: data, Stamp: m.Stamp})
		return sendErr == nil
	})
	if sendErr != nil {
		return sendErr
	}
	return err
}

// Join adds a node to Raft when this node leads (the leader also adds live gossip
// members on its own; Join makes it immediate).
func (s *server) Join(ctx context.Context, req *peerpb.JoinRequest) (*peerpb.JoinResponse, error) {
	c := s.c
	if c.raft.State() != raft.Leader {
		return &peerpb.JoinResponse{Error: "not the leader"}, nil
	}
	c.members.signal()
	return &peerpb.JoinResponse{}, nil
}
