package cluster

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberState tracks the gossip members and since when a dead one has been dead,
// for the leader's grace period.
type memberState struct {
	c  *Cluster
	mu sync.Mutex // guards everything below
	// peerAddr of each known member (gRPC and Raft), from its gossip metadata.
	peerAddr map[string]string
	alive    map[string]bool
	deadAt   map[string]time.Time
	changed  chan struct{} // capacity 1: membership changed
}

func newMemberState(c *Cluster) *memberState {
	return &memberState{c: c, peerAddr: map[string]string{}, alive: map[string]bool{}, deadAt: map[string]time.Time{}, changed: make(chan struct{}, 1)}
}

func (s *memberState) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// NotifyJoin, NotifyLeave and NotifyUpdate implement memberlist.EventDelegate.
func (s *memberState) NotifyJoin(n *memberlist.Node) {
	s.mu.Lock()
	s.peerAddr[n.Name] = string(n.Meta)
	s.alive[n.Name] = true
	delete(s.deadAt, n.Name)
	s.mu.Unlock()
	s.c.log.Info("member joined", "member", n.Name, "peer_addr", string(n.Meta))
	s.signal()
	if n.Name != s.c.name {
		s.c.peerAlive(n.Name)
	}
}

func (s *memberState) NotifyLeave(n *memberlist.Node) {
	s.mu.Lock()
	s.alive[n.Name] = false
	s.deadAt[n.Name] = time.Now()
	s.mu.Unlock()
	s.c.log.Warn("member left or failed", "member", n.Name)
	s.signal()
	s.c.mu.Lock()
	p := s.c.peers[n.Name]
	s.c.mu.Unlock()
	if p != nil {
		p.markDown()
	}
}

func (s *memberState) NotifyUpdate(n *memberlist.Node) {
	s.mu.Lock()
	s.peerAddr[n.Name] = string(n.Meta)
	s.mu.Unlock()
}

// snapshot returns the members with their peer addresses and liveness.
func (s *memberState) snapshot() (addrs map[string]string, alive map[string]bool, deadAt map[string]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs, alive, deadAt = make(map[string]string), make(map[string]bool), make(map[string]time.Time)
	for k, v := range s.peerAddr {
		addrs[k] = v
	}
	for k, v := range s.alive {
		alive[k] = v
	}
	for k, v := range s.deadAt {
		deadAt[k] = v
	}
	return
}

func (s *memberState) isAlive(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alive[name]
}

func (s *memberState) addrOf(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerAddr[name]
}

// aliveNames returns the live members other than this node, sorted.
func (s *memberState) aliveOthers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n, ok := range s.alive {
		if ok && n != s.c.name {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// meta is this node's gossip metadata: its peer address.
type meta struct{ addr string }

func (m meta) NodeMeta(limit int) []byte            { return []byte(m.addr) }
func (meta) NotifyMsg([]byte)                       {}
func (meta) GetBroadcasts(int, int) [][]byte        { return nil }
func (meta) LocalState(bool) []byte                 { return nil }
func (meta) MergeRemoteState(buf []byte, join bool) {}

func (c *Cluster) startGossip() error {
	mc := memberlist.DefaultLANConfig()
	if c.cfg.FastTimeouts {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.SuspicionMult = 2
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
	}
	mc.Name = c.name
	host, port, err := net.SplitHostPort(c.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("gossip addr: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("gossip addr port %q: %w", port, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, p
	advHost, _, _ := net.SplitHostPort(c.peerAddr)
	mc.AdvertiseAddr, mc.AdvertisePort = advHost, p
	mc.Delegate = meta{addr: c.peerAddr}
	mc.Events = c.members
	mc.LogOutput = slogWriter{c.log.With("component", "memberlist")}
	mc.Logger = nil
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("gossip addr %s: %w", c.cfg.GossipAddr, err)
	}
	c.ml = ml // with port 0, memberlist picked a free port and advertises it
	return nil
}

// GossipAddr returns the address other nodes join this one at.
func (c *Cluster) GossipAddr() string { return c.ml.LocalNode().Address() }

// joinLoop joins the seeds, retrying until one answers, so nodes can start in any
// order; a DNS name joins every address it resolves to.
func (c *Cluster) joinLoop() {
	if len(c.cfg.Join) == 0 {
		return
	}
	backoff := 200 * time.Millisecond
	for {
		n, err := c.ml.Join(c.cfg.Join)
		if n > 0 {
			c.log.Info("joined the cluster", "contacted", n)
			c.catchUpRetained()
			return
		}
		c.log.Debug("join failed, retrying", "seeds", c.cfg.Join, "err", err)
		if !c.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
