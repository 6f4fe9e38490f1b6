package cluster

import (
	"context"
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

// appliedBatches remembers, per sending run, the last forward batch applied, so a
// batch sent again after a reconnect is acknowledged without delivering it twice.
type appliedBatches struct {
	mu   sync.Mutex
	last map[string]uint64
}

func newAppliedBatches() *appliedBatches { return &appliedBatches{last: map[string]uint64{}} }

func (a *appliedBatches) seen(from string, id uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return id <= a.last[from]
}

func (a *appliedBatches) mark(from string, id uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id > a.last[from] {
		a.last[from] = id
	}
}

// Forward receives batches from one peer, delivers them locally in order, and
// acknowledges each once its deliveries are durable for persistent sessions.
func (s *server) Forward(stream peerpb.Peer_ForwardServer) error {
	c := s.c
	for {
		b, err := stream.Recv()
		if err != nil {
			return err
		}
		ack := &peerpb.ForwardAck{Id: b.Id}
		if !c.applied.seen(b.From, b.Id) {
			var ticket uint64
			for _, d := range b.Deliveries {
				if r := d.Relay; r != nil {
					t, err := c.receiveRelay(stream.Context(), r, d.Message)
					if err != nil {
						ack.Error = err.Error()
					}
					ticket = max(ticket, t)
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
						ack.Error = err.Error()
					}
					ticket = max(ticket, t)
				}
				if d.Deliver {
					ticket = max(ticket, c.local.DeliverRemote(m, d.Shared))
				}
			}
			if err := c.local.WaitDurable(stream.Context(), ticket); err != nil && ack.Error == "" {
				ack.Error = err.Error()
			}
			c.applied.mark(b.From, b.Id)
			c.stats.counter(&c.stats.recv, senderName(b.From)).Add(uint64(len(b.Deliveries)))
		}
		if err := stream.Send(ack); err != nil {
			return err
		}
	}
}

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

// TakeOver closes the client's connection here and hands its session over.
func (s *server) TakeOver(ctx context.Context, req *peerpb.TakeOverRequest) (*peerpb.TakeOverResponse, error) {
	state, found, err := s.c.local.ReleaseClient(ctx, req.ClientId, req.Requester, req.Resume)
	if err != nil {
		return nil, err
	}
	return &peerpb.TakeOverResponse{Found: found, Session: state}, nil
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
