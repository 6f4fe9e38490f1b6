// Package clustertest runs whole Skein nodes (broker, store and cluster member) in
// one test process, on loopback with real gossip, Raft and gRPC sockets, each with
// its own data directory. Unless Options.Direct is set, other nodes reach a node
// through small proxies (see net.go), so a test can cut it off (Partition, Heal) or
// stop it without a graceful leave (Kill).
package clustertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/route"
	"github.com/skein-mq/skein/session"
)

// Timeout bounds every wait of this package.
const Timeout = 20 * time.Second

// GossipToTheDeadTime is how long memberlist keeps gossiping to a dead node under
// cluster.Config.FastTimeouts (the LAN default is 30 s): a partition longer than
// that heals only if the nodes seek each other out again.
const GossipToTheDeadTime = 2 * time.Second

// Node is one running node.
type Node struct {
	t       testing.TB
	Name    string
	DataDir string
	Addr    string // MQTT
	Broker  *node.Broker
	Cluster *cluster.Cluster
	Store   *session.Store
	mqttLn  net.Listener
	served  chan struct{}
	join    []string
	expect  int
	stopped bool
	tune    func(*cluster.Config, *node.Config)
	net     *network  // nil with Options.Direct
	ep      *endpoint // this node's addresses and proxies (nil with Direct)
	clients *trackingListener
	logLvl  slog.Level
	logs    io.Writer // the test's log, shared by its nodes
}

// Options tune a test cluster.
type Options struct {
	// Tune, when set, adjusts each node's configuration before it starts.
	Tune func(*cluster.Config, *node.Config)
	// Direct binds the nodes on 127.0.0.1 without proxies (for benchmarks): Kill,
	// Partition and Move are then unavailable.
	Direct bool
	// Quiet logs warnings and errors only (benchmarks).
	Quiet bool
	// StartOrder, when set, starts the nodes in this order (indexes into the
	// result) with StartGap between them, each joining every other node's gossip
	// address, as `--join` listing all of them does: the first nodes' seeds do not
	// answer yet. It needs the proxies (not Direct), whose addresses are known before
	// any node starts.
	StartOrder []int
	StartGap   time.Duration
	// JoinNext, with StartOrder, has node i join only node i+1 (the last joins the
	// first): started in index order, each node's only seed is down when it starts,
	// so it forms the cluster only by retrying.
	JoinNext bool
	// SeedHost, with StartOrder, is the host of the seed addresses: 127.0.0.1
	// unless set (a name such as localhost is resolved when joining).
	SeedHost string
}

// Start runs n nodes that bootstrap together (bootstrap-expect n) and waits until
// they agree on a leader and all see each other alive. They are stopped when the
// test ends.
func Start(t testing.TB, n int, opts ...Options) []*Node {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	var nw *network
	if !o.Direct {
		nw = newNetwork(t)
	}
	lvl := slog.LevelInfo
	if o.Quiet {
		lvl = slog.LevelWarn
	}
	nodes := make([]*Node, n)
	var seeds []string
	// Before any node, so that it stops the logs after every node stopped.
	logs := nodetest.LogWriter(t)
	if o.StartOrder != nil {
		startInOrder(t, nodes, o, nw, lvl, logs)
		return nodes
	}
	for i := range nodes {
		nd := &Node{t: t, Name: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(), expect: n, join: append([]string(nil), seeds...), tune: o.Tune, net: nw, logLvl: lvl, logs: logs}
		if nw != nil {
			nd.ep = nw.newEndpoint()
		}
		nd.start()
		if i == 0 {
			seeds = []string{nd.Cluster.GossipAddr()}
		}
		nodes[i] = nd
	}
	WaitLeader(t, nodes)
	for _, nd := range nodes {
		WaitMember(t, nodes, nd.Name, "alive")
	}
	return nodes
}

// startInOrder is Start with Options.StartOrder.
func startInOrder(t testing.TB, nodes []*Node, o Options, nw *network, lvl slog.Level, logs io.Writer) {
	t.Helper()
	if nw == nil || len(o.StartOrder) != len(nodes) {
		t.Fatalf("clustertest: StartOrder needs the proxies and one index per node")
	}
	for i := range nodes {
		nodes[i] = &Node{t: t, Name: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(), expect: len(nodes), tune: o.Tune, net: nw, ep: nw.newEndpoint(), logLvl: lvl, logs: logs}
	}
	host := o.SeedHost
	if host == "" {
		host = "127.0.0.1"
	}
	for i, nd := range nodes {
		for j, other := range nodes {
			seed := j != i // a node that joins itself counts that as joined
			if o.JoinNext {
				seed = j == (i+1)%len(nodes)
			}
			if seed {
				nd.join = append(nd.join, net.JoinHostPort(host, strconv.Itoa(other.ep.gossipPort)))
			}
		}
	}
	for k, i := range o.StartOrder {
		if k > 0 {
			time.Sleep(o.StartGap)
		}
		nodes[i].start()
	}
	WaitLeader(t, nodes)
	for _, nd := range nodes {
		WaitMember(t, nodes, nd.Name, "alive")
	}
}

// Add starts one more node joining the cluster of nodes (not bootstrapping).
func Add(t testing.TB, nodes []*Node, name string) *Node {
	t.Helper()
	var join []string
	for _, o := range nodes {
		if !o.stopped {
			join = append(join, o.Cluster.GossipAddr())
		}
	}
	nd := &Node{t: t, Name: name, DataDir: t.TempDir(), join: join, tune: nodes[0].tune, net: nodes[0].net, logLvl: nodes[0].logLvl, logs: nodes[0].logs}
	if nd.net != nil {
		nd.ep = nd.net.newEndpoint()
	}
	nd.start()
	return nd
}

func (nd *Node) start() {
	t := nd.t
	t.Helper()
	log := slog.New(slog.NewTextHandler(nd.logs, &slog.HandlerOptions{Level: nd.logLvl}))
	cc := cluster.DefaultConfig()
	cc.NodeName = nd.Name
	cc.GossipAddr = "127.0.0.1:0"
	cc.PeerAddr = "127.0.0.1:0"
	if ep := nd.ep; ep != nil {
		// Bind on the node's own address; advertise the proxies, same ports.
		cc.GossipAddr = fmt.Sprintf("%s:%d", ep.ip, ep.gossipPort)
		cc.PeerAddr = fmt.Sprintf("%s:%d", ep.ip, ep.peerPort)
		cc.AdvertiseAddr = "127.0.0.1"
	}
	cc.Join = nd.join
	cc.BootstrapExpect = nd.expect
	cc.DataDir = nd.DataDir
	cc.FastTimeouts = true
	cc.DeadNodeGrace = 3 * time.Second
	cc.Logger = log
	nc := node.DefaultConfig()
	nc.Logger = log
	nc.SysInterval = 0
	if nd.tune != nil {
		nd.tune(&cc, &nc)
	}
	store, err := session.OpenStore(nd.DataDir+"/skein.db", session.StoreOptions{Logger: log})
	if err != nil {
		t.Fatalf("%s: open store: %v", nd.Name, err)
	}
	cc.Store = store // the node's own: what it holds for unreachable nodes survives Restart
	cl, err := cluster.New(cc)
	if err != nil {
		t.Fatalf("%s: cluster: %v", nd.Name, err)
	}
	nc.Store = store
	nc.Cluster = cl
	b, err := node.New(nc)
	if err != nil {
		t.Fatalf("%s: node: %v", nd.Name, err)
	}
	if err := cl.Start(b); err != nil {
		t.Fatalf("%s: start cluster: %v", nd.Name, err)
	}
	addr := "127.0.0.1:0"
	if nd.Addr != "" {
		addr = nd.Addr // a restart keeps its MQTT port
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s: listen: %v", nd.Name, err)
	}
	nd.clients = &trackingListener{Listener: ln, conns: map[net.Conn]bool{}}
	nd.Broker, nd.Cluster, nd.Store, nd.mqttLn, nd.Addr = b, cl, store, ln, ln.Addr().String()
	nd.served = make(chan struct{})
	go func() {
		defer close(nd.served)
		_ = b.Serve(nd.clients) // ErrClosed at shutdown
	}()
	nd.stopped = false
	t.Cleanup(nd.Stop)
}

// Stop shuts the node down gracefully (it leaves the gossip cluster).
func (nd *Node) Stop() {
	if nd.stopped {
		return
	}
	nd.stopped = true
	nd.shutdown()
}

func (nd *Node) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	_ = nd.Broker.Shutdown(ctx) // connections are closed hard on timeout
	<-nd.served
	if err := nd.Cluster.Close(); err != nil {
		nd.t.Logf("%s: close cluster: %v", nd.Name, err)
	}
	if err := nd.Store.Close(); err != nil {
		nd.t.Errorf("%s: close store: %v", nd.Name, err)
	}
}

// Kill stops the node the way a crash or a pulled cable would: its network is cut
// first (no gossip leave reaches anyone, peer connections are reset), its MQTT
// clients' sockets are closed without DISCONNECT, then it is shut down. Its data
// directory stays for Restart.
func (nd *Node) Kill() {
	nd.t.Helper()
	nd.needNet("Kill")
	if nd.stopped {
		return
	}
	nd.stopped = true
	nd.net.cut(nd.ep)
	nd.clients.closeAll()
	nd.shutdown()
	nd.net.releaseGossip(nd.ep)
}

// Partition cuts the node off from the others (see net.go for what that blocks);
// it keeps running and serving its MQTT clients. Heal reconnects it.
func (nd *Node) Partition() {
	nd.t.Helper()
	nd.needNet("Partition")
	nd.net.cut(nd.ep)
}

// Heal ends a Partition.
func (nd *Node) Heal() {
	nd.t.Helper()
	nd.needNet("Heal")
	nd.net.heal(nd.ep)
}

// CutPeer cuts the node's peer port (gRPC and Raft) off while its gossip flows:
// gossip sees it alive, but connections to the port are refused and open ones
// reset. Its own calls out still go through (see net.go). HealPeer ends it.
func (nd *Node) CutPeer() {
	nd.t.Helper()
	nd.needNet("CutPeer")
	nd.net.cutPeer(nd.ep)
}

// StallPeer makes the node's peer port swallow traffic, in both directions, on
// open connections and new ones, without failing them: a stalled network, which
// only a timeout notices. Gossip flows. HealPeer lets the held bytes go on.
func (nd *Node) StallPeer() {
	nd.t.Helper()
	nd.needNet("StallPeer")
	nd.net.stallPeer(nd.ep)
}

// HealPeer ends CutPeer and StallPeer.
func (nd *Node) HealPeer() {
	nd.t.Helper()
	nd.needNet("HealPeer")
	nd.net.healPeer(nd.ep)
}

// Move gives a stopped node new gossip and peer addresses for its next Restart,
// as a pod rescheduled elsewhere gets a new IP.
func (nd *Node) Move() {
	nd.t.Helper()
	nd.needNet("Move")
	if !nd.stopped {
		nd.t.Fatalf("%s: Move needs a stopped node", nd.Name)
	}
	nd.net.heal(nd.ep)
	nd.ep.close()
	nd.ep = nd.net.newEndpoint()
}

// PeerAddr returns the peer (gRPC and Raft) address the node advertises.
func (nd *Node) PeerAddr() string {
	if nd.ep != nil {
		return fmt.Sprintf("127.0.0.1:%d", nd.ep.peerPort)
	}
	return ""
}

func (nd *Node) needNet(what string) {
	if nd.net == nil {
		nd.t.Fatalf("%s: %s needs the proxied network (not Options.Direct)", nd.Name, what)
	}
}

// Restart stops the node (if running) and starts it again on the same data
// directory and MQTT port, joining the others.
func (nd *Node) Restart(others []*Node) {
	nd.t.Helper()
	nd.Stop()
	if nd.net != nil {
		nd.net.heal(nd.ep)
	}
	nd.join = nil
	for _, o := range others {
		if o != nd && !o.stopped {
			nd.join = append(nd.join, o.Cluster.GossipAddr())
		}
	}
	nd.start()
}

// Stopped reports whether the node is stopped.
func (nd *Node) Stopped() bool { return nd.stopped }

// WaitLeader waits until every running node sees the same leader.
func WaitLeader(t testing.TB, nodes []*Node) string {
	t.Helper()
	var leader string
	Eventually(t, "a leader all nodes agree on", func() bool {
		leader = ""
		for _, nd := range nodes {
			if nd.stopped {
				continue
			}
			l := nd.Cluster.Status().Leader
			if l == "" || (leader != "" && l != leader) {
				return false
			}
			leader = l
		}
		return leader != ""
	})
	return leader
}

// WaitRoute waits until every running node's route table has the route
// (filter -> node, group).
func WaitRoute(t testing.TB, nodes []*Node, filter, node, group string, present bool) {
	t.Helper()
	Eventually(t, fmt.Sprintf("route %s -> %s/%s present=%v everywhere", filter, node, group, present), func() bool {
		for _, nd := range nodes {
			if nd.stopped {
				continue
			}
			if nd.Cluster.Table().Has(filter, routeKey(node, group)) != present {
				return false
			}
		}
		return true
	})
}

// Eventually polls cond until it holds or Timeout passes.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, Timeout, what, cond)
}

// EventuallyWithin polls cond until it holds or d passes.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Running returns the nodes not stopped.
func Running(nodes []*Node) []*Node {
	var out []*Node
	for _, nd := range nodes {
		if !nd.stopped {
			out = append(out, nd)
		}
	}
	return out
}

// ByName returns the node called name.
func ByName(t testing.TB, nodes []*Node, name string) *Node {
	t.Helper()
	for _, nd := range nodes {
		if nd.Name == name {
			return nd
		}
	}
	t.Fatalf("no node %q", name)
	return nil
}

// Leader waits for an agreed leader among the running nodes and returns it.
func Leader(t testing.TB, nodes []*Node) *Node {
	t.Helper()
	return ByName(t, nodes, WaitLeader(t, nodes))
}

// WaitMember waits until every running node in watchers sees member name in state
// ("alive" or "dead").
func WaitMember(t testing.TB, watchers []*Node, name, state string) {
	t.Helper()
	WaitMemberWithin(t, Timeout, watchers, name, state)
}

// WaitMemberWithin is WaitMember with its own deadline.
func WaitMemberWithin(t testing.TB, d time.Duration, watchers []*Node, name, state string) {
	t.Helper()
	EventuallyWithin(t, d, fmt.Sprintf("%s %s everywhere", name, state), func() bool {
		for _, nd := range watchers {
			if nd.stopped || nd.Name == name {
				continue
			}
			found := false
			for _, m := range nd.Cluster.Status().Members {
				if m.Name == name {
					found = m.State == state
				}
			}
			if !found {
				return false
			}
		}
		return true
	})
}

// Suffrage returns name's suffrage ("voter", "nonvoter" or "none") as nd sees it.
func Suffrage(nd *Node, name string) string {
	for _, m := range nd.Cluster.Status().Members {
		if m.Name == name {
			return m.Suffrage
		}
	}
	return "none"
}

// trackingListener remembers the MQTT connections it accepted, for Kill.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex // guards conns
	conns map[net.Conn]bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns[c] = true
		l.mu.Unlock()
	}
	return c, err
}

// closeAll closes the listener and resets every connection it accepted.
func (l *trackingListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // best effort: the close happens either way
		}
		c.Close()
	}
}

func routeKey(node, group string) route.Key { return route.Key{Node: node, Group: group} }
