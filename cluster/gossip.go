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
	// gossipAddr of each known member, to seek out failed ones again.
	gossipAddr map[string]string
	alive      map[string]bool
	deadAt     map[string]time.Time
	left       map[string]bool    // left gracefully (not failed): not sought out again
	away       map[string]absence // each member's last absence (absence.go)
	changed    chan struct{}      // capacity 1: membership changed
}

func newMemberState(c *Cluster) *memberState {
	return &memberState{c: c, peerAddr: map[string]string{}, gossipAddr: map[string]string{}, alive: map[string]bool{},
		deadAt: map[string]time.Time{}, left: map[string]bool{}, away: map[string]absence{}, changed: make(chan struct{}, 1)}
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
	s.recordReturnLocked(n.Name, time.Now())
	s.peerAddr[n.Name] = string(n.Meta)
	s.gossipAddr[n.Name] = n.Address()
	s.alive[n.Name] = true
	delete(s.deadAt, n.Name)
	delete(s.left, n.Name)
	s.mu.Unlock()
	s.c.log.Info("member joined", "member", n.Name, "peer_addr", string(n.Meta))
	s.signal()
	if n.Name != s.c.name {
		s.c.peerAlive(n.Name)
		// Whether it is new, restarted or back from a partition, the retained sets
		// merge both ways (catchup.go).
		s.c.requestPull(n.Name, true)
	}
}

func (s *memberState) NotifyLeave(n *memberlist.Node) {
	s.mu.Lock()
	s.alive[n.Name] = false
	s.deadAt[n.Name] = time.Now()
	if n.State == memberlist.StateLeft {
		s.left[n.Name] = true
	}
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
	s.gossipAddr[n.Name] = n.Address()
	s.mu.Unlock()
}

// failed returns the gossip addresses of the members that failed (not left) less
// than maxAge ago.
func (s *memberState) failed(maxAge time.Duration) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, since := range s.deadAt {
		if !s.left[name] && time.Since(since) < maxAge && s.gossipAddr[name] != "" {
			out = append(out, s.gossipAddr[name])
		}
	}
	sort.Strings(out)
	return out
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
		mc.GossipToTheDeadTime = 2 * time.Second
	}
	mc.Name = c.name
	// A node that died and comes back under the same name at another address (a
	// rescheduled pod gets a new IP) takes its name back at once. With memberlist's
	// default (0: never) the others refuse it as a conflict until they forget the
	// dead node, GossipToTheDeadTime later. Names are unique in a Skein cluster, so
	// a different address for a dead name is that node restarted.
	mc.DeadNodeReclaimTime = time.Nanosecond
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
			c.log.Info("joined the cluster", "contacted", n) // each member found is pulled from (NotifyJoin)
			return
		}
		c.log.Debug("join failed, retrying", "seeds", c.cfg.Join, "err", err)
		if !c.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// reconnectTimeout is how long failed members are sought out again before they
// are given up on.
const reconnectTimeout = 24 * time.Hour

// rejoinLoop seeks out failed members. memberlist gossips to a dead node only for
// GossipToTheDeadTime and pushes state only to live ones, so once a partition
// outlasts that, neither side would ever hear of the other again: each side sees
// the other dead for good. A join through any address that answers merges the
// two views; the nodes refute their deaths and are alive on both sides again.
func (c *Cluster) rejoinLoop() {
	interval := 5 * time.Second
	if c.cfg.FastTimeouts {
		interval = 300 * time.Millisecond
	}
	for c.sleep(interval) {
		for _, addr := range c.members.failed(reconnectTimeout) {
			select {
			case <-c.stop:
				return
			default:
			}
			if n, _ := c.ml.Join([]string{addr}); n > 0 { // a failure is the node still being away
				c.log.Info("reached a failed member again", "gossip_addr", addr)
			}
		}
	}
}
