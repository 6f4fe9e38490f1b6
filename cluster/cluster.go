package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/grpc"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/route"
	"github.com/skein-mq/skein/session"
)

// Local is the node this cluster member serves: what other nodes' requests do here.
// *node.Broker implements it. Methods are called from gRPC handler goroutines.
type Local interface {
	// DeliverRemote delivers a forwarded message to local subscribers (ordinary
	// ones, and the members of the listed shared subscriptions) and returns the
	// store ticket its acceptance must wait for, and a channel (nil for none) that
	// yields once what it relayed to other nodes after moved sessions was accepted.
	DeliverRemote(m *session.Message, shared []string) (uint64, <-chan error)
	// StoreRetained stores a replicated retained message, or a clear as a tombstone
	// (empty payload); the later write wins (session.Later).
	StoreRetained(m *session.Message) (uint64, error)
	// EachRetained visits every retained message and tombstone.
	EachRetained(fn func(*session.Message) bool) error
	// ExpireTombstones forgets the tombstones stamped before before (unix
	// nanoseconds) and returns how many.
	ExpireTombstones(before int64) int
	// WaitDurable waits for a store ticket.
	WaitDurable(ctx context.Context, ticket uint64) error
	// ReleaseClient closes the client's connection here because it connected to
	// node to, and hands its session over when resume is set (discards it
	// otherwise). When this node is connecting the same id at this instant, it
	// waits for that if toFirst (node to goes first), and answers contended
	// otherwise.
	ReleaseClient(ctx context.Context, clientID, to string, resume, toFirst bool) (state []byte, found, contended bool, err error)
	// DeliverRelayed delivers a message relayed after a session that moved here,
	// to that session, and returns the store ticket to wait for, and a channel (nil
	// for none) when the session moved on and the message was relayed again.
	DeliverRelayed(ctx context.Context, clientID string, d session.Delivery) (uint64, <-chan error)
	// HandoverEnded says the node the session moved from relays no more.
	HandoverEnded(clientID string)
}

// Cluster is this node's membership in the cluster. Create it with New, connect it
// to the node with Start, stop it with Close.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	name  string
	local Local

	table *route.Table
	fsm   *fsm

	peerLn   net.Listener
	mux      *mux
	peerAddr string // advertised host:port of gRPC and Raft
	grpcSrv  *grpc.Server

	ml      *memberlist.Memberlist
	raft    *raft.Raft
	raftDB  *raftboltdb.BoltStore
	raftNet *raftLayer // Raft's own connections, cut at Close
	routes  *routeBatcher
	members *memberState

	mu    sync.Mutex       // guards peers; held while spooling for a node without a peer
	peers map[string]*peer // by node name

	pulls    pulls          // retained-set pulls from other members (catchup.go)
	spool    *session.Spool // messages held for nodes that cannot take them
	releaser *releaser      // answers their publishers once on disk

	incarnation string // distinguishes this run's forward batches from a previous run's
	// batchIDs and streams number this run's forward batches and streams, to every
	// peer: a receiver compares them within one incarnation, so they must never go
	// back, also when a peer is replaced (a node that moved, or was purged and
	// came back).
	batchIDs, streams atomic.Uint64
	applied           *appliedBatches
	pickRR            sync.Map // shared key -> *atomic.Uint64, round-robin position
	stats             forwardStats

	started time.Time
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startedAt is when Start ran.
func (c *Cluster) startedAt() time.Time { return c.started }

// New validates cfg and binds the cluster's sockets, so a port in use fails early.
// Nothing runs until Start.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("node", cfg.NodeName)
	spool, err := session.OpenSpool(cfg.Store, cfg.Spool)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if held := spool.Peers(); len(held) > 0 {
		log.Info("holding messages for nodes from before the restart", "members", held)
	}
	applied := newAppliedBatches()
	marks, err := cfg.Store.LoadApplied()
	if err == nil {
		err = applied.loadMarks(marks)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.PeerAddr)
	if err != nil {
		return nil, fmt.Errorf("peer addr: %w", err)
	}
	advHost, err := advertiseHost(cfg.AdvertiseAddr, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	c := &Cluster{
		cfg:         cfg,
		log:         log,
		name:        cfg.NodeName,
		table:       route.NewTable(),
		peerLn:      ln,
		peerAddr:    net.JoinHostPort(advHost, strconv.Itoa(port)),
		peers:       make(map[string]*peer),
		spool:       spool,
		releaser:    newReleaser(cfg.Store),
		incarnation: cfg.NodeName + "#" + strconv.FormatUint(rand.Uint64(), 36),
		applied:     applied,
		stop:        make(chan struct{}),
	}
	c.fsm = &fsm{table: c.table}
	c.members = newMemberState(c)
	// The node announces the routes of the sessions it restores from disk while it
	// is being built, before Start: they wait in the batcher until it runs.
	c.routes = newRouteBatcher(c)
	return c, nil
}

// advertiseHost picks the host other nodes reach this one at.
func advertiseHost(advertise string, bound net.Addr) (string, error) {
	if advertise != "" {
		if host, _, err := net.SplitHostPort(advertise); err == nil {
			return host, nil
		}
		return advertise, nil
	}
	ip := bound.(*net.TCPAddr).IP
	if !ip.IsUnspecified() {
		return ip.String(), nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("advertise addr: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.String(), nil
		}
	}
	return "127.0.0.1", nil
}

// Name returns this node's name.
func (c *Cluster) Name() string { return c.name }

// Start connects the cluster to the node and starts gossip, Raft and the peer
// service. Joining the seeds continues in the background.
func (c *Cluster) Start(local Local) error {
	c.local = local
	c.started = time.Now()
	adv, err := net.ResolveTCPAddr("tcp", c.peerAddr)
	if err != nil {
		return fmt.Errorf("peer advertise address %s: %w", c.peerAddr, err)
	}
	c.mux = newMux(c.peerLn, adv)

	c.grpcSrv = grpc.NewServer(grpc.KeepaliveEnforcementPolicy(peerKeepaliveEnforcement))
	peerpb.RegisterPeerServer(c.grpcSrv, &server{c: c})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = c.grpcSrv.Serve(newChanListener(c.mux, c.mux.grpcConns)) // returns when stopped
	}()

	if err := c.startRaft(); err != nil {
		c.shutdownTransport()
		return err
	}
	if err := c.startGossip(); err != nil {
		c.shutdownTransport()
		return err
	}
	c.wg.Add(7)
	go func() { defer c.wg.Done(); c.routes.run(c.stop) }()
	go func() { defer c.wg.Done(); c.releaser.run(c.stop) }()
	go func() { defer c.wg.Done(); c.forwardWatchLoop() }()
	go func() { defer c.wg.Done(); c.joinLoop() }()
	go func() { defer c.wg.Done(); c.manageLoop() }()
	go func() { defer c.wg.Done(); c.rejoinLoop() }()
	go func() { defer c.wg.Done(); c.tombstoneLoop() }()
	c.log.Info("cluster started", "peer_addr", c.peerAddr, "gossip_addr", c.ml.LocalNode().Address())
	return nil
}

func (c *Cluster) shutdownTransport() {
	if c.grpcSrv != nil {
		c.grpcSrv.Stop()
	}
	if c.mux != nil {
		c.mux.close()
	}
}

// hclogTo adapts hashicorp's logger to slog at warning level and above: Raft and
// memberlist talk a lot at info.
func hclogTo(log *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: slogWriter{log}})
}

// slogWriter logs each line memberlist or Raft writes at the level the line
// names ("[DEBUG]", "[INFO]", "[WARN]", "[ERR]" or "[ERROR]"); warning without one.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(trimNL(p))
	w.log.Log(context.Background(), lineLevel(line), line)
	return len(p), nil
}

// lineLevel reads the level tag near the start of a hashicorp log line.
func lineLevel(line string) slog.Level {
	head := line[:min(len(line), 48)] // timestamp, then the tag
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if strings.Contains(head, l.tag) {
			return l.level
		}
	}
	return slog.LevelWarn
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

func (c *Cluster) startRaft() error {
	dir := filepath.Join(c.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("raft data dir: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: nil})
	if err != nil {
		return fmt.Errorf("raft log store in %s: %w", dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclogTo(c.log, "raft-snapshots"))
	if err != nil {
		store.Close()
		return fmt.Errorf("raft snapshots in %s: %w", dir, err)
	}
	layer := newRaftLayer(c.mux)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hclogTo(c.log, "raft-net"),
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.name)
	rc.Logger = hclogTo(c.log, "raft")
	rc.SnapshotThreshold = 8192
	if c.cfg.FastTimeouts {
		rc.HeartbeatTimeout = 300 * time.Millisecond
		rc.ElectionTimeout = 300 * time.Millisecond
		rc.LeaderLeaseTimeout = 200 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	r, err := raft.NewRaft(rc, c.fsm, store, store, snaps, trans)
	if err != nil {
		store.Close()
		return fmt.Errorf("start raft: %w", err)
	}
	c.raft, c.raftDB, c.raftNet = r, store, layer
	return nil
}

// Close leaves the cluster gracefully and stops every goroutine.
func (c *Cluster) Close() error {
	close(c.stop)
	c.pulls.close()
	var errs []error
	if c.ml != nil {
		if err := c.ml.Leave(2 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("leave gossip: %w", err))
		}
		if err := c.ml.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	peers := make([]*peer, 0, len(c.peers))
	for _, p := range c.peers {
		peers = append(peers, p)
	}
	c.mu.Unlock()
	for _, p := range peers {
		p.close()
	}
	if c.raft != nil {
		stopped := c.raft.Shutdown()
		// Raft waits for its RPCs in flight; one to a stalled peer would hold the
		// shutdown until the transport's timeout. Raft is told to stop first, so
		// nothing of it redials.
		c.raftNet.closeDialed()
		if err := stopped.Error(); err != nil {
			errs = append(errs, fmt.Errorf("stop raft: %w", err))
		}
	}
	c.shutdownTransport()
	c.wg.Wait()
	if c.raftDB != nil {
		if err := c.raftDB.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sleep waits d or until Close; it reports false when closing.
func (c *Cluster) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.stop:
		return false
	}
}

// Table returns this node's replica of the route table.
func (c *Cluster) Table() *route.Table { return c.table }

// IsLeader reports whether this node is the Raft leader.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

// leaderName returns the current leader's name, or "".
func (c *Cluster) leaderName() string {
	_, id := c.raft.LeaderWithID()
	return string(id)
}

// forwardStats counts messages to and from each peer.
type forwardStats struct {
	mu   sync.Mutex
	sent map[string]*atomic.Uint64
	recv map[string]*atomic.Uint64
	// timeouts counts the forward timeouts (the peer did not accept in time),
	// discarded the QoS 0 messages not held for a peer that could not take them,
	// purged the held messages dropped with a purged node.
	timeouts, discarded, purged map[string]*atomic.Uint64
}

// snapshot returns the values of one counter map.
func (s *forwardStats) snapshot(m *map[string]*atomic.Uint64) map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(*m))
	for n, v := range *m {
		out[n] = v.Load()
	}
	return out
}

func (s *forwardStats) counter(m *map[string]*atomic.Uint64, peer string) *atomic.Uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *m == nil {
		*m = make(map[string]*atomic.Uint64)
	}
	n := (*m)[peer]
	if n == nil {
		n = new(atomic.Uint64)
		(*m)[peer] = n
	}
	return n
}
