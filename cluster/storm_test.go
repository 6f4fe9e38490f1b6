package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// subscribeStorm subscribes c to n distinct filters ("storm/<prefix>/<i>/+"), perPacket
// per SUBSCRIBE, all packets sent before the first SUBACK is read.
func subscribeStorm(t testing.TB, c *nodetest.Client, prefix string, n, perPacket int) {
	t.Helper()
	packets := 0
	for i := 0; i < n; i += perPacket {
		s := &proto.Subscribe{PacketID: uint16(packets%65000 + 1)}
		for j := i; j < min(i+perPacket, n); j++ {
			s.Subscriptions = append(s.Subscriptions, proto.Subscription{Filter: fmt.Sprintf("storm/%s/%d/+", prefix, j), QoS: 1})
		}
		c.Send(s)
		packets++
	}
	for range packets {
		ack := nodetest.Expect[*proto.Suback](c)
		for _, code := range ack.ReasonCodes {
			if code != 1 {
				t.Fatalf("SUBACK code %v", code)
			}
		}
	}
}

// TestSubscribeStorm: 100 000 distinct filters subscribed on one node reach every
// replica in far fewer Raft entries than filters (route changes are batched), and
// route messages afterwards.
func TestSubscribeStorm(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	const n = 100_000
	before := nodes[0].Cluster.Status().CommitIndex
	start := time.Now()
	c := nodetest.Connect(t, nodes[1].Addr, proto.V5, "storm")
	subscribeStorm(t, c, "a", n, 200)
	clustertest.Eventually(t, "every filter routed on every replica", func() bool {
		for _, nd := range nodes {
			if nd.Cluster.Table().Len() != n {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	clustertest.Eventually(t, "the commit index everywhere", func() bool {
		return nodes[0].Cluster.Status().CommitIndex == nodes[1].Cluster.Status().CommitIndex
	})
	entries := nodes[0].Cluster.Status().CommitIndex - before
	t.Logf("%d filters committed in %d raft entries in %v (%.0f route changes/s)", n, entries, elapsed, n/elapsed.Seconds())
	if entries == 0 || entries > n/100 {
		t.Fatalf("%d filters took %d raft entries, want at most %d", n, entries, n/100)
	}
	pub := nodetest.Connect(t, nodes[2].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: fmt.Sprintf("storm/a/%d/x", n-1), QoS: 1, PacketID: 1, Payload: []byte("last")})
	c.ExpectPublish(fmt.Sprintf("storm/a/%d/x", n-1), "last")
}
