// Package clustertest runs whole Skein nodes (broker, store and cluster member) in
// one test process, on 127.0.0.1 with real gossip, Raft and gRPC sockets, each with
// its own data directory.
package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/route"
	"github.com/skein-mq/skein/session"
)

// Timeout bounds every wait of this package.
const Timeout = 20 * time.Second

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
}

// Options tune a test cluster.
type Options struct {
	// Tune, when set, adjusts each node's configuration before it starts.
	Tune func(*cluster.Config, *node.Config)
}

// Start runs n nodes that bootstrap together (bootstrap-expect n) and waits until
// they agree on a leader. They are stopped when the test ends.
func Start(t testing.TB, n int, opts ...Options) []*Node {
	t.Helper()
	var tune func(*cluster.Config, *node.Config)
	if len(opts) > 0 {
		tune = opts[0].Tune
	}
	nodes := make([]*Node, n)
	var seeds []string
	for i := range nodes {
		nd := &Node{t: t, Name: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(), expect: n, join: append([]string(nil), seeds...), tune: tune}
		nd.start()
		if i == 0 {
			seeds = []string{nd.Cluster.GossipAddr()}
		}
		nodes[i] = nd
	}
	WaitLeader(t, nodes)
	return nodes
}

// Add starts one more node joining the cluster of nodes (not bootstrapping).
func Add(t testing.TB, nodes []*Node, name string) *Node {
	t.Helper()
	nd := &Node{t: t, Name: name, DataDir: t.TempDir(), join: []string{nodes[0].Cluster.GossipAddr()}, tune: nodes[0].tune}
	nd.start()
	return nd
}

func (nd *Node) start() {
	t := nd.t
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t, nd.Name}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cc := cluster.DefaultConfig()
	cc.NodeName = nd.Name
	cc.GossipAddr = "127.0.0.1:0"
	cc.PeerAddr = "127.0.0.1:0"
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
	nd.Broker, nd.Cluster, nd.Store, nd.mqttLn, nd.Addr = b, cl, store, ln, ln.Addr().String()
	nd.served = make(chan struct{})
	go func() {
		defer close(nd.served)
		_ = b.Serve(ln) // ErrClosed at shutdown
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

// Restart stops the node and starts it again on the same data directory and MQTT
// port, joining the others.
func (nd *Node) Restart(others []*Node) {
	nd.t.Helper()
	nd.Stop()
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
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type testWriter struct {
	t    testing.TB
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // t.Log panics once the test is over
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func routeKey(node, group string) route.Key { return route.Key{Node: node, Group: group} }
