package cluster_test

import (
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
// gone on that node too once it is back.
func TestRetainedClearWhileDown(t *testing.T) {
	skipShort(t)
	t.Skip("known bug, not fixed: retained writes carry no stamp (session.Message.Stamp " +
		"is never set and the stores ignore it) and a clear deletes without a tombstone, " +
		"so a node catching up cannot tell a cleared topic from one it alone has")
	nodes := clustertest.Start(t, 3)
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "r/gone", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("cleared later")})
	expectRetained(t, nodes[2], "s1", "r/#", map[string]string{"r/gone": "cleared later"})
	clustertest.WaitRoute(t, nodes, "r/#", "n3", "", false)
	nodes[2].Kill()
	clustertest.WaitMember(t, nodes, "n3", "dead")
	pub.Publish(&proto.Publish{Topic: "r/gone", QoS: 1, PacketID: 2, Retain: true})
	nodes[2].Restart(nodes)
	clustertest.WaitMember(t, nodes, "n3", "alive")
	expectRetained(t, nodes[2], "s2", "r/#", map[string]string{})
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
