package cluster_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// The partitions here are the harness's (clustertest net.go): nothing reaches the
// cut-off node and its gossip reaches nobody; only Raft and gRPC calls it makes
// itself still get out, which does not let it commit anything as it knows no leader.

// partitionFollower cuts off a node that is not the leader and waits until both
// sides see the cut: the others see it dead, it sees no leader.
func partitionFollower(t *testing.T, nodes []*clustertest.Node) (cut *clustertest.Node, others []*clustertest.Node) {
	t.Helper()
	leader := clustertest.Leader(t, nodes)
	for _, nd := range nodes {
		if nd != leader && cut == nil {
			cut = nd
		} else {
			others = append(others, nd)
		}
	}
	cut.Partition()
	clustertest.WaitMember(t, others, cut.Name, "dead")
	clustertest.Eventually(t, cut.Name+" without a leader", func() bool { return cut.Cluster.Status().Leader == "" })
	return cut, others
}

// servesLocally checks that a cut-off node still serves its own clients: connect,
// subscribe (SUBACK), publish and receive at QoS 1.
func servesLocally(t *testing.T, nd *clustertest.Node, id string) {
	t.Helper()
	sub := nodetest.Connect(t, nd.Addr, proto.V5, id+"-sub")
	sub.Subscribe(1, 1, "local/"+id)
	pub := nodetest.Connect(t, nd.Addr, proto.V311, id+"-pub")
	pub.Publish(&proto.Publish{Topic: "local/" + id, QoS: 1, PacketID: 1, Payload: []byte("still here")})
	sub.ExpectPublish("local/"+id, "still here")
	sub.Disconnect()
	pub.Disconnect()
}

// TestPartitionHeals: a follower cut off for less than the dead-node grace keeps
// serving its clients; a subscribe made on it meanwhile commits once the partition
// heals (promise 5), and messages cross again both ways, including those the
// others held for it.
func TestPartitionHeals(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	leader := clustertest.Leader(t, nodes)
	var x *clustertest.Node
	for _, nd := range nodes {
		if nd != leader {
			x = nd
			break
		}
	}
	a, _ := resume(t, x.Addr, proto.V5, "a")
	a.Subscribe(1, 1, "pa/#")
	b := nodetest.Connect(t, leader.Addr, proto.V5, "b")
	b.Subscribe(1, 1, "pb/#")
	clustertest.WaitRoute(t, nodes, "pa/#", x.Name, "", true)
	clustertest.WaitRoute(t, nodes, "pb/#", leader.Name, "", true)

	start := time.Now()
	x, others := partitionFollower(t, nodes)
	servesLocally(t, x, "during")
	late := nodetest.Connect(t, x.Addr, proto.V5, "late")
	late.Subscribe(1, 1, "pnew/#")
	pubOther := nodetest.Connect(t, others[0].Addr, proto.V5, "pub-other")
	pubOther.Publish(&proto.Publish{Topic: "pa/held", QoS: 1, PacketID: 1, Payload: []byte("held")})
	if st := x.Cluster.Status(); st.PendingRouteChanges == 0 {
		t.Fatalf("%s: no pending route change for the subscribe made while cut off", x.Name)
	}
	for _, o := range others {
		if hasRoute(o, "pnew/#", x.Name) {
			t.Fatalf("%s has a route committed by a node without quorum", o.Name)
		}
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("the partition took %v to set up, too close to the 3 s grace", d)
	}

	x.Heal()
	clustertest.WaitMember(t, nodes, x.Name, "alive")
	clustertest.WaitLeader(t, nodes)
	clustertest.WaitRoute(t, nodes, "pnew/#", x.Name, "", true)
	clustertest.WaitRoute(t, nodes, "pa/#", x.Name, "", true)
	a.ExpectPublish("pa/held", "held")
	pubOther.Publish(&proto.Publish{Topic: "pnew/1", QoS: 1, PacketID: 2, Payload: []byte("across")})
	late.ExpectPublish("pnew/1", "across")
	pubOther.Publish(&proto.Publish{Topic: "pa/1", QoS: 1, PacketID: 3, Payload: []byte("across")})
	a.ExpectPublish("pa/1", "across")
	pubX := nodetest.Connect(t, x.Addr, proto.V5, "pub-x")
	pubX.Publish(&proto.Publish{Topic: "pb/1", QoS: 1, PacketID: 1, Payload: []byte("back")})
	b.ExpectPublish("pb/1", "back")
}

// TestLongPartitionHeals: a follower cut off past the dead-node grace, and past the
// time gossip keeps talking to dead nodes, has its routes purged by the leader.
// When the partition heals it must rejoin by itself, its subscriptions from before
// and during the partition must route again, and retained messages set on either
// side meanwhile must be on both.
func TestLongPartitionHeals(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	leader := clustertest.Leader(t, nodes)
	var x *clustertest.Node
	for _, nd := range nodes {
		if nd != leader {
			x = nd
			break
		}
	}
	a := nodetest.Connect(t, x.Addr, proto.V5, "a")
	a.Subscribe(1, 1, "pa/#", "$share/g/ps/#")
	clustertest.WaitRoute(t, nodes, "pa/#", x.Name, "", true)
	clustertest.WaitRoute(t, nodes, "ps/#", x.Name, "g", true)

	x, others := partitionFollower(t, nodes)
	late := nodetest.Connect(t, x.Addr, proto.V5, "late")
	late.Subscribe(1, 1, "pnew/#")
	pubX := nodetest.Connect(t, x.Addr, proto.V5, "pub-x")
	pubX.Publish(&proto.Publish{Topic: "ret/x", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("from x")})
	pubOther := nodetest.Connect(t, others[0].Addr, proto.V5, "pub-other")
	pubOther.Publish(&proto.Publish{Topic: "ret/o", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("from others")})
	// The leader purges the cut-off node's routes after the grace (3 s).
	clustertest.Eventually(t, "the routes of "+x.Name+" purged", func() bool {
		for _, o := range others {
			if o.Cluster.Table().NodeCounts()[x.Name] != 0 {
				return false
			}
		}
		return true
	})
	servesLocally(t, x, "during")
	// Stay cut off past the time memberlist gossips to dead nodes.
	deadline := time.Now().Add(clustertest.GossipToTheDeadTime + time.Second)
	clustertest.Eventually(t, "a long partition", func() bool { return time.Now().After(deadline) })

	x.Heal()
	clustertest.WaitMember(t, nodes, x.Name, "alive")
	clustertest.WaitLeader(t, nodes)
	clustertest.WaitRoute(t, nodes, "pnew/#", x.Name, "", true)
	clustertest.WaitRoute(t, nodes, "pa/#", x.Name, "", true)
	clustertest.WaitRoute(t, nodes, "ps/#", x.Name, "g", true)
	pubOther.Publish(&proto.Publish{Topic: "pa/1", QoS: 1, PacketID: 2, Payload: []byte("across")})
	a.ExpectPublish("pa/1", "across")
	pubOther.Publish(&proto.Publish{Topic: "ps/1", QoS: 1, PacketID: 3, Payload: []byte("shared")})
	a.ExpectPublish("ps/1", "shared")
	pubOther.Publish(&proto.Publish{Topic: "pnew/1", QoS: 1, PacketID: 4, Payload: []byte("across")})
	late.ExpectPublish("pnew/1", "across")
	// The retained sets merge both ways: every node has what either side retained
	// meanwhile.
	both := map[string]string{"ret/x": "from x", "ret/o": "from others"}
	for _, nd := range nodes {
		clustertest.Eventually(t, nd.Name+" has both retained messages", func() bool { return nd.Broker.RetainedCount() == 2 })
		expectRetained(t, nd, "r-"+nd.Name, "ret/#", both)
	}
}

// TestRetainedSetDuringPartition: a retained message published on a cut-off node
// reaches the others once the partition heals.
func TestRetainedSetDuringPartition(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	x, others := partitionFollower(t, nodes)
	pubX := nodetest.Connect(t, x.Addr, proto.V5, "pub-x")
	pubX.Publish(&proto.Publish{Topic: "ret/x", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("from x")})
	x.Heal()
	clustertest.WaitMember(t, nodes, x.Name, "alive")
	for _, o := range others {
		clustertest.Eventually(t, o.Name+" has the retained message", func() bool { return o.Broker.RetainedCount() == 1 })
	}
}

// TestRetainedConcurrentWritesConverge: topics written on both sides of a partition
// hold, once it heals, the latest write (by stamp) on all three nodes, whichever side
// made it: a newer set or clear on the cut-off node replaces the majority's, and a
// newer set or clear on the majority replaces the cut-off node's.
func TestRetainedConcurrentWritesConverge(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	x, others := partitionFollower(t, nodes)
	pubX := nodetest.Connect(t, x.Addr, proto.V5, "pub-x")
	pubO := nodetest.Connect(t, others[0].Addr, proto.V5, "pub-other")
	id := uint16(0)
	retain := func(c *nodetest.Client, topic, payload string) {
		t.Helper()
		id++
		// The PUBACK comes after the store: the next write, on either side, is later.
		c.Publish(&proto.Publish{Topic: topic, QoS: 1, PacketID: id, Retain: true, Payload: []byte(payload)})
	}
	retain(pubO, "c/x-last", "from others")
	retain(pubX, "c/o-last", "from x")
	retain(pubX, "c/x-last", "from x")
	retain(pubO, "c/o-last", "from others")
	retain(pubX, "c/o-cleared", "from x")
	retain(pubO, "c/o-cleared", "")
	retain(pubO, "c/x-cleared", "from others")
	retain(pubX, "c/x-cleared", "")
	want := map[string]string{"c/x-last": "from x", "c/o-last": "from others"}

	x.Heal()
	clustertest.WaitMember(t, nodes, x.Name, "alive")
	clustertest.Eventually(t, "the same retained messages and tombstones everywhere", func() bool {
		var first string
		for _, nd := range nodes {
			got := retainedEntries(t, nd, "c/")
			if strings.Count(got, ";") != 3 || first != "" && got != first {
				return false
			}
			first = got
		}
		return true
	})
	// The entries agree; they must also be the latest writes.
	for _, nd := range nodes {
		if n := nd.Broker.RetainedCount(); n != len(want) {
			t.Errorf("%s: %d retained messages, want %d", nd.Name, n, len(want))
		}
		expectRetained(t, nd, "s-"+nd.Name, "c/#", want)
	}
	t.Logf("converged on %s", retainedEntries(t, nodes[0], "c/"))
}

// retainedEntries describes nd's retained messages and tombstones under prefix,
// sorted, with their stamps: "topic=payload@stamp;...".
func retainedEntries(t *testing.T, nd *clustertest.Node, prefix string) string {
	t.Helper()
	var out []string
	err := nd.Broker.EachRetained(func(m *session.Message) bool {
		if strings.HasPrefix(m.Topic, prefix) {
			out = append(out, fmt.Sprintf("%s=%s@%d", m.Topic, m.Payload, m.Stamp))
		}
		return true
	})
	if err != nil {
		t.Fatalf("%s: EachRetained: %v", nd.Name, err)
	}
	slices.Sort(out)
	return strings.Join(out, ";")
}
