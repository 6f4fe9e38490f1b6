package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// expectRetained subscribes a new client on nd to filter and expects exactly the
// retained messages want (topic -> payload), each with the retain flag.
func expectRetained(t *testing.T, nd *clustertest.Node, id, filter string, want map[string]string) {
	t.Helper()
	c := nodetest.Connect(t, nd.Addr, proto.V5, id)
	c.Subscribe(1, 1, filter)
	got := map[string]string{}
	for len(got) < len(want) {
		p := nodetest.Expect[*proto.Publish](c)
		if !p.Retain {
			t.Fatalf("%s: %s without the retain flag", nd.Name, nodetest.String(p))
		}
		got[p.Topic] = string(p.Payload)
		c.Ack(p)
	}
	for topic, payload := range want {
		if got[topic] != payload {
			t.Fatalf("%s: retained %q = %q, want %q", nd.Name, topic, got[topic], payload)
		}
	}
	expectNone(t, c, 100*time.Millisecond)
	c.Disconnect()
}

// TestRetainedAcrossNodes: a retained message published on n1 is there for a new
// subscriber on n3 once the publisher has its PUBACK, and so is its clearing
// published on n2 (promise 4).
func TestRetainedAcrossNodes(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "r/1", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("one")})
	pub.Publish(&proto.Publish{Topic: "r/2", QoS: 1, PacketID: 2, Retain: true, Payload: []byte("two")})
	expectRetained(t, nodes[2], "s1", "r/#", map[string]string{"r/1": "one", "r/2": "two"})

	clear := nodetest.Connect(t, nodes[1].Addr, proto.V311, "clear")
	clear.Publish(&proto.Publish{Topic: "r/1", QoS: 1, PacketID: 1, Retain: true})
	for _, nd := range nodes {
		expectRetained(t, nd, "s2-"+nd.Name, "r/#", map[string]string{"r/2": "two"})
	}
}

// TestRetainedAfterRestart: a node killed and restarted on its data directory
// still has the retained message it had, and catches up the one published while
// it was down (with no route to it, so nothing was held for it: the catch-up
// alone must bring it).
func TestRetainedAfterRestart(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "r/old", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("before")})
	expectRetained(t, nodes[2], "s1", "r/#", map[string]string{"r/old": "before"})
	clustertest.WaitRoute(t, nodes, "r/#", "n3", "", false)

	nodes[2].Kill()
	clustertest.WaitMember(t, nodes, "n3", "dead")
	pub.Publish(&proto.Publish{Topic: "r/new", QoS: 1, PacketID: 3, Retain: true, Payload: []byte("while down")})

	nodes[2].Restart(nodes)
	clustertest.WaitMember(t, nodes, "n3", "alive")
	clustertest.Eventually(t, "n3 caught up the retained messages", func() bool {
		return nodes[2].Broker.RetainedCount() == 2
	})
	expectRetained(t, nodes[2], "s2", "r/#", map[string]string{"r/old": "before", "r/new": "while down"})
}

// TestRetainedClearWhileDown: a retained message cleared while a node is down is
// gone on that node too once it is back, and the others, merging the returning
// node's set, do not take it back: the clear's tombstone is newer.
func TestRetainedClearWhileDown(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "r/gone", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("cleared later")})
	expectRetained(t, nodes[2], "s1", "r/#", map[string]string{"r/gone": "cleared later"})
	clustertest.WaitRoute(t, nodes, "r/#", "n3", "", false)
	nodes[2].Kill()
	clustertest.WaitMember(t, nodes, "n3", "dead")
	pub.Publish(&proto.Publish{Topic: "r/gone", QoS: 1, PacketID: 2, Retain: true})
	before := retainedMerges(nodes, "n3")
	nodes[2].Restart(nodes)
	clustertest.WaitMember(t, nodes, "n3", "alive")
	// n3 serves what it had on disk until it has merged a peer's set.
	clustertest.Eventually(t, "n3 merged the clear", func() bool { return nodes[2].Broker.RetainedCount() == 0 })
	// Every node has pulled n3's set (with the stale message) once it has seen n3
	// join and merged; the clear must still hold everywhere.
	waitMerged(t, nodes, "n3", before)
	for _, nd := range nodes {
		if n := nd.Broker.RetainedCount(); n != 0 {
			t.Errorf("%s: %d retained messages after the merge, want 0", nd.Name, n)
		}
		expectRetained(t, nd, "s2-"+nd.Name, "r/#", map[string]string{})
	}
}

// TestRetainedWholeClusterRestart: retained messages survive a restart of every
// node (promise 4).
func TestRetainedWholeClusterRestart(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	pub := nodetest.Connect(t, nodes[1].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "w/r", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("kept")})
	pub.Disconnect()
	for _, nd := range nodes {
		nd.Stop()
	}
	for _, nd := range nodes {
		nd.Restart(nodes)
	}
	clustertest.WaitLeader(t, nodes)
	for _, nd := range nodes {
		expectRetained(t, nd, "s-"+nd.Name, "w/#", map[string]string{"w/r": "kept"})
	}
	// And the restarted cluster still routes.
	sub := nodetest.Connect(t, nodes[2].Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "after/#")
	clustertest.WaitRoute(t, nodes, "after/#", "n3", "", true)
	p2 := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub2")
	p2.Publish(&proto.Publish{Topic: "after/1", QoS: 1, PacketID: 1, Payload: []byte("x")})
	sub.ExpectPublish("after/1", "x")
}

// retainedMerges returns, for each running node other than member, how many times it
// has merged member's retained set.
func retainedMerges(nodes []*clustertest.Node, member string) map[string]uint64 {
	out := map[string]uint64{}
	for _, nd := range clustertest.Running(nodes) {
		for _, m := range nd.Cluster.Status().Members {
			if m.Name == member && nd.Name != member {
				out[nd.Name] = m.RetainedMerges
			}
		}
	}
	return out
}

// waitMerged waits until every running node other than member has merged member's
// retained set since before (from retainedMerges).
func waitMerged(t *testing.T, nodes []*clustertest.Node, member string, before map[string]uint64) {
	t.Helper()
	clustertest.Eventually(t, "every node merged the retained set of "+member, func() bool {
		for _, nd := range clustertest.Running(nodes) {
			if nd.Name == member {
				continue
			}
			if now := retainedMerges([]*clustertest.Node{nd}, member)[nd.Name]; now <= before[nd.Name] {
				return false
			}
		}
		return true
	})
}

// TestAdminDeleteRetainedEverywhere: the admin API's delete on one node clears the
// retained message on every node at once, and is not delivered to anyone (it is
// not a publish).
func TestAdminDeleteRetainedEverywhere(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "ad/x", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("kept")})
	for _, nd := range nodes {
		expectRetained(t, nd, "s-"+nd.Name, "ad/#", map[string]string{"ad/x": "kept"})
	}
	sub := nodetest.Connect(t, nodes[2].Addr, proto.V5, "watcher")
	sub.Subscribe(1, 1, "ad/#")
	sub.ExpectPublish("ad/x", "kept") // the retained message on subscribing
	clustertest.WaitRoute(t, nodes, "ad/#", "n3", "", true)

	ctx, cancel := context.WithTimeout(context.Background(), clustertest.Timeout)
	defer cancel()
	if ok, err := nodes[1].Broker.DeleteRetained(ctx, "ad/x"); !ok || err != nil {
		t.Fatalf("DeleteRetained on n2 = %v, %v", ok, err)
	}
	// Returned once every node accepted the clear: no waiting for a merge.
	for _, nd := range nodes {
		if n := nd.Broker.RetainedCount(); n != 0 {
			t.Fatalf("%s still has %d retained messages", nd.Name, n)
		}
	}
	expectNone(t, sub, 300*time.Millisecond)
	for _, nd := range nodes {
		expectRetained(t, nd, "s2-"+nd.Name, "ad/#", map[string]string{})
	}
}
