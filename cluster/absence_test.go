package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// TestRetainedPartitionLongerThanRetention: a partition outlasts the tombstone
// retention, so the tombstones of what each side cleared meanwhile are gone when it
// heals. A message cleared by the majority must not come back (neither from the
// cut-off node's stale copy, nor on the cut-off node), a message the cut-off node
// set meanwhile must reach everyone, and for the old messages the majority's set
// wins: the cut-off node's clear of one is undone. All three nodes end the same.
func TestRetainedPartitionLongerThanRetention(t *testing.T) {
	skipShort(t)
	const retention = 500 * time.Millisecond
	nodes := clustertest.Start(t, 3, clustertest.Options{Tune: func(cc *cluster.Config, _ *node.Config) {
		cc.TombstoneRetention = retention
	}})
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "l/old", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("cleared by the majority")})
	pub.Publish(&proto.Publish{Topic: "l/x-old", QoS: 1, PacketID: 2, Retain: true, Payload: []byte("cleared by x")})
	pub.Disconnect()
	for _, nd := range nodes {
		clustertest.Eventually(t, nd.Name+" has both messages", func() bool { return nd.Broker.RetainedCount() == 2 })
	}

	x, others := partitionFollower(t, nodes)
	for _, o := range others {
		// x's own writes below must come after it lost the others, as the majority's
		// come after they lost x.
		clustertest.WaitMember(t, []*clustertest.Node{x}, o.Name, "dead")
	}
	pubO := nodetest.Connect(t, others[0].Addr, proto.V5, "pub-other")
	pubO.Publish(&proto.Publish{Topic: "l/old", QoS: 1, PacketID: 1, Retain: true})
	pubX := nodetest.Connect(t, x.Addr, proto.V5, "pub-x")
	pubX.Publish(&proto.Publish{Topic: "l/new", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("from x")})
	pubX.Publish(&proto.Publish{Topic: "l/x-old", QoS: 1, PacketID: 2, Retain: true})
	// The tombstones were written after both sides lost each other: once they are
	// gone, the partition has lasted longer than the retention.
	for _, nd := range nodes {
		clustertest.Eventually(t, nd.Name+" forgot its tombstones", func() bool {
			return !strings.Contains(retainedEntries(t, nd, "l/"), "=@")
		})
	}

	before := retainedMerges(nodes, x.Name)
	beforeX := map[string]uint64{}
	for _, o := range others {
		beforeX[o.Name] = retainedMerges([]*clustertest.Node{x}, o.Name)[x.Name]
	}
	x.Heal()
	clustertest.WaitMember(t, nodes, x.Name, "alive")
	waitMerged(t, nodes, x.Name, before)
	clustertest.Eventually(t, x.Name+" merged the others' sets", func() bool {
		for _, o := range others {
			if retainedMerges([]*clustertest.Node{x}, o.Name)[x.Name] <= beforeX[o.Name] {
				return false
			}
		}
		return true
	})
	want := map[string]string{"l/new": "from x", "l/x-old": "cleared by x"}
	for _, nd := range nodes {
		clustertest.Eventually(t, nd.Name+" holds the merged set", func() bool { return sameRetained(nd, want) })
		expectRetained(t, nd, "s-"+nd.Name, "l/#", want)
	}
}

// sameRetained reports whether nd's retained messages are exactly want.
func sameRetained(nd *clustertest.Node, want map[string]string) bool {
	got := map[string]string{}
	_ = nd.Broker.EachRetained(func(m *session.Message) bool { // the broker's EachRetained does not fail
		if !m.Tombstone() {
			got[m.Topic] = string(m.Payload)
		}
		return true
	})
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}
