package cluster_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// grpc-go and memberlist leave short-lived goroutines finishing after Close.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// TestCrossNodePubSub: a subscriber on n3 receives what is published on n1, at each
// QoS, once its route reached n1 (promise 1 of DESIGN.md).
func TestCrossNodePubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: skipped with -short")
	}
	nodes := clustertest.Start(t, 3)
	for qos := byte(0); qos <= 2; qos++ {
		t.Run("qos"+string('0'+qos), func(t *testing.T) {
			topic := "x/" + string('0'+qos)
			sub := nodetest.Connect(t, nodes[2].Addr, proto.V5, "sub"+topic)
			sub.Subscribe(1, qos, "x/+")
			clustertest.WaitRoute(t, nodes, "x/+", "n3", "", true)
			pub := nodetest.Connect(t, nodes[0].Addr, proto.V311, "pub"+topic)
			if code := pub.Publish(&proto.Publish{Topic: topic, QoS: qos, PacketID: 1, Payload: []byte("hello")}); qos > 0 && code != 0 {
				t.Fatalf("ack code %v", code)
			}
			got := sub.ExpectPublish(topic, "hello")
			if got.QoS != qos {
				t.Fatalf("delivered at qos %d, want %d", got.QoS, qos)
			}
			sub.Disconnect()
			clustertest.WaitRoute(t, nodes, "x/+", "n3", "", false)
		})
	}
}

// TestCrossNodeWildcards: '+' and '#' routes carry messages across nodes, each to
// the nodes whose filters match and to no other, and a topic matched by two
// filters of one node is sent there once.
func TestCrossNodeWildcards(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	plus := nodetest.Connect(t, nodes[1].Addr, proto.V5, "plus")
	plus.Subscribe(1, 1, "w/+/x")
	hash := nodetest.Connect(t, nodes[2].Addr, proto.V311, "hash")
	hash.Subscribe(1, 1, "w/#", "w/a/+")
	all := nodetest.Connect(t, nodes[2].Addr, proto.V5, "all")
	all.Subscribe(1, 0, "#")
	for _, r := range []struct{ filter, node string }{{"w/+/x", "n2"}, {"w/#", "n3"}, {"w/a/+", "n3"}, {"#", "n3"}} {
		clustertest.WaitRoute(t, nodes, r.filter, r.node, "", true)
	}
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	for _, m := range []struct {
		topic                 string
		toPlus, toHash, toAll bool
	}{
		{"w/a/x", true, true, true},
		{"w/b/x", true, true, true},
		{"w/b", false, true, true},
		{"w", false, true, true}, // '#' matches its parent level too
		{"w/a/x/y", false, true, true},
		{"other", false, false, true},
		{"$SYS/x", false, false, false}, // [MQTT-4.7.2-1] no wildcard-first match of $ topics
	} {
		code := pub.Publish(&proto.Publish{Topic: m.topic, QoS: 1, PacketID: 7, Payload: []byte(m.topic)})
		if want := m.toPlus || m.toHash || m.toAll; want != (code == proto.Success) {
			t.Fatalf("publish %q: PUBACK %v", m.topic, code)
		}
		for _, s := range []struct {
			c    *nodetest.Client
			want bool
		}{{plus, m.toPlus}, {hash, m.toHash}, {all, m.toAll}} {
			if s.want {
				s.c.ExpectPublish(m.topic, m.topic)
			}
		}
	}
	// Nothing more: in particular hash got "w/a/x" once although two of its
	// filters match it.
	for _, c := range []*nodetest.Client{plus, hash, all} {
		c.ExpectNothing(100 * time.Millisecond)
	}
}

// TestUnsubscribeRemovesRoute: a node's route stays while it has a subscriber of
// the filter and leaves every replica with the last one; after that no message
// for that filter goes to the node.
func TestUnsubscribeRemovesRoute(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	a := nodetest.Connect(t, nodes[2].Addr, proto.V5, "a")
	a.Subscribe(1, 1, "u/1", "u/#")
	b := nodetest.Connect(t, nodes[2].Addr, proto.V311, "b")
	b.Subscribe(1, 1, "u/1")
	other := nodetest.Connect(t, nodes[1].Addr, proto.V5, "other")
	other.Subscribe(1, 1, "u/#")
	clustertest.WaitRoute(t, nodes, "u/1", "n3", "", true)
	clustertest.WaitRoute(t, nodes, "u/#", "n3", "", true)
	clustertest.WaitRoute(t, nodes, "u/#", "n2", "", true)

	a.Send(&proto.Unsubscribe{PacketID: 2, Filters: []string{"u/1"}})
	nodetest.Expect[*proto.Unsuback](a)
	// b still subscribes u/1 on n3: the route must stay. Wait until the u/#
	// removal below has committed everywhere, which comes after.
	a.Send(&proto.Unsubscribe{PacketID: 3, Filters: []string{"u/#"}})
	nodetest.Expect[*proto.Unsuback](a)
	clustertest.WaitRoute(t, nodes, "u/#", "n3", "", false)
	for _, nd := range nodes {
		if !hasRoute(nd, "u/1", "n3") {
			t.Fatalf("%s lost the route u/1 -> n3 while b still subscribes", nd.Name)
		}
	}
	b.Send(&proto.Unsubscribe{PacketID: 2, Filters: []string{"u/1"}})
	nodetest.Expect[*proto.Unsuback](b)
	clustertest.WaitRoute(t, nodes, "u/1", "n3", "", false)
	for _, nd := range nodes {
		if n := nd.Cluster.Table().NodeCounts()["n3"]; n != 0 {
			t.Fatalf("%s still has %d routes of n3", nd.Name, n)
		}
		if n := nd.Cluster.Table().Len(); n != 1 {
			t.Fatalf("%s has %d routes, want 1 (u/# -> n2)", nd.Name, n)
		}
	}
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "u/1", QoS: 1, PacketID: 1, Payload: []byte("after")})
	other.ExpectPublish("u/1", "after")
	a.ExpectNothing(100 * time.Millisecond)
	b.ExpectNothing(10 * time.Millisecond)
	// The forward counters agree: n1 sent n3 nothing after the routes left.
	for _, m := range nodes[0].Cluster.Status().Members {
		if m.Name == "n3" && m.Forwarded != 0 {
			t.Fatalf("n1 forwarded %d messages to n3", m.Forwarded)
		}
	}
}
