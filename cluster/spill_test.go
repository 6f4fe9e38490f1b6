package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// TestSpilledBatchesAllArrive: n3's peer port stalls while n1 forwards it more than
// one spool batch's worth (512) of QoS 1 messages; the forward timeout moves them
// to n1's spool and n1 acknowledges them all. When n3 is reachable again (healed,
// or killed and restarted with its data dir) every one of them arrives. The first
// spool batch's id, above the ids of the memory batches it held, used to make the
// later spool batches' records look applied: 1600 to 2450 of 3000 were lost.
func TestSpilledBatchesAllArrive(t *testing.T) {
	skipShort(t)
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			nodes := clustertest.Start(t, 3, clustertest.Options{Tune: func(cc *cluster.Config, nc *node.Config) {
				cc.ForwardTimeout = 2 * time.Second
				cc.DeadNodeGrace = 2 * time.Minute
				nc.Session.MaxQueued = 100000
			}})
			s3, _ := resume(t, nodes[2].Addr, proto.V311, "s3")
			s3.Subscribe(1, 1, "spill/#")
			clustertest.WaitRoute(t, nodes, "spill/#", "n3", "", true)
			s3.Disconnect()
			pub := nodetest.Connect(t, nodes[0].Addr, proto.V311, "pub")
			publishNumbered(t, pub, "spill/x", "o", 1, 1, 1) // the stream is up

			const n = 3000
			nodes[2].StallPeer()
			for i := 2; i <= n; i++ {
				pub.Send(&proto.Publish{Topic: "spill/x", QoS: 1, PacketID: uint16(i), Payload: fmt.Appendf(nil, "o%d", i)})
			}
			for i := 2; i <= n; i++ {
				nodetest.Expect[*proto.Puback](pub)
			}
			if h := heldFor(nodes[0], "n3"); h.Timeouts == 0 {
				t.Fatalf("no forward timeout, nothing spilled: %+v", h)
			}
			if restart {
				nodes[2].Kill()
				nodes[2].HealPeer()
				nodes[2].Restart(nodes)
				clustertest.WaitMember(t, nodes, "n3", "alive")
			} else {
				nodes[2].HealPeer()
			}
			clustertest.Eventually(t, "n1's spool for n3 drained", func() bool { return heldFor(nodes[0], "n3").Messages == 0 })
			s3, _ = resume(t, nodes[2].Addr, proto.V311, "s3")
			got := received{}
			for len(got) < n {
				p, err := s3.RecvWithin(3 * time.Second)
				if err != nil {
					miss := got.missing(n)
					t.Fatalf("%d of %d acknowledged messages never arrived (first %v): %v", len(miss), n, miss[:min(10, len(miss))], err)
				}
				if p, ok := p.(*proto.Publish); ok {
					got[number(t, "o", p.Payload)]++
					s3.Send(&proto.Puback{PacketID: p.PacketID})
				}
			}
		})
	}
}

// TestCloseWithStalledPeer: a node whose forward stream and Raft heartbeats to a
// stalled peer are blocked stops at once. Closing the peer did not end the stream,
// so the node waited for gRPC's keepalive to fail the transport (about 20 s); and
// the leader's Raft shutdown waited for a heartbeat blocked in a read on the
// stalled peer's socket until Raft's 10 s network timeout.
func TestCloseWithStalledPeer(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3, clustertest.Options{Tune: func(cc *cluster.Config, nc *node.Config) {
		cc.ForwardTimeout = 30 * time.Second // nothing moves to the spool meanwhile
	}})
	leader := clustertest.Leader(t, nodes)
	stalled := nodes[0]
	if stalled == leader {
		stalled = nodes[1]
	}
	sub, _ := resume(t, stalled.Addr, proto.V311, "sub")
	sub.Subscribe(1, 0, "stall/#")
	clustertest.WaitRoute(t, nodes, "stall/#", stalled.Name, "", true)
	pub := nodetest.Connect(t, leader.Addr, proto.V311, "pub")
	stalled.StallPeer()
	payload := make([]byte, 1000)
	for i := 1; i <= 2000; i++ {
		pub.Send(&proto.Publish{Topic: "stall/x", Payload: append(fmt.Appendf(nil, "%d", i), payload...)})
	}
	pub.Send(&proto.Pingreq{}) // answered once the publishes before it were routed
	nodetest.Expect[*proto.Pingresp](pub)
	time.Sleep(300 * time.Millisecond) // a Raft heartbeat to the stalled node is now waiting on its socket
	start := time.Now()
	leader.Stop()
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("the leader %s took %v to stop: a stream or heartbeat blocked on the stalled peer was not ended", leader.Name, d)
	}
}
