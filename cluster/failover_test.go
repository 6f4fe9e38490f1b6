package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// TestKillNodeWhileQoS1Flows: numbered QoS 1 messages flow from n1 to persistent
// subscribers on n2 and n3; n3 is killed in the middle. The publisher keeps
// getting PUBACKs, n2's subscriber gets every message, and n3's, back after a
// restart within the grace period, gets every message too: those it had accepted
// from its disk, the others held for it by n1 (promise 2).
func TestKillNodeWhileQoS1Flows(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	s2, _ := resume(t, nodes[1].Addr, proto.V5, "s2")
	s2.Subscribe(1, 1, "k/#")
	s3, _ := resume(t, nodes[2].Addr, proto.V311, "s3")
	s3.Subscribe(1, 1, "k/#")
	clustertest.WaitRoute(t, nodes, "k/#", "n2", "", true)
	clustertest.WaitRoute(t, nodes, "k/#", "n3", "", true)
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")

	const n, killAt = 300, 100
	publishNumbered(t, pub, "k/x", "k", 1, 1, killAt)
	nodes[2].Kill()
	start := time.Now()
	publishNumbered(t, pub, "k/x", "k", 1, killAt+1, n)
	t.Logf("%d messages acknowledged in %v after the kill", n-killAt, time.Since(start))

	got := received{}
	readNumbered(t, s2, "k", n, got)
	if m := got.missing(n); len(m) > 0 {
		t.Fatalf("n2's subscriber lost %v", m)
	}

	nodes[2].Restart(nodes)
	s3, ack := resume(t, nodes[2].Addr, proto.V311, "s3")
	if !ack.SessionPresent {
		t.Fatal("n3 lost the persistent session")
	}
	got3 := received{}
	readNumbered(t, s3, "k", n, got3)
	if m := got3.missing(n); len(m) > 0 {
		t.Fatalf("n3's subscriber lost %v", m)
	}
}

// TestAckMeansAccepted: once the publisher on n1 has its PUBACK (QoS 1) or PUBREC
// (QoS 2), n2 has accepted the message for its persistent subscriber: killing n1
// right after loses nothing (promise 2), and QoS 2 arrives once (promise 3).
func TestAckMeansAccepted(t *testing.T) {
	skipShort(t)
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			nodes := clustertest.Start(t, 3)
			s, _ := resume(t, nodes[1].Addr, proto.V5, "s")
			s.Subscribe(1, qos, "a/#")
			s.Disconnect() // offline: everything must be queued on n2's disk
			clustertest.WaitRoute(t, nodes, "a/#", "n2", "", true)
			pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
			const n = 100
			for i := 1; i <= n; i++ {
				pub.Send(&proto.Publish{Topic: "a/x", QoS: qos, PacketID: uint16(i), Payload: []byte(fmt.Sprintf("a%d", i))})
			}
			// Count the acknowledgements, then kill n1 at once: no PUBREL, the
			// PUBREC is the promise.
			for i := 1; i <= n; i++ {
				p := pub.Recv()
				if qos == 1 {
					if _, ok := p.(*proto.Puback); !ok {
						t.Fatalf("got %s", nodetest.String(p))
					}
				} else if _, ok := p.(*proto.Pubrec); !ok {
					t.Fatalf("got %s", nodetest.String(p))
				}
			}
			nodes[0].Kill()
			s, ack := resume(t, nodes[1].Addr, proto.V5, "s")
			if !ack.SessionPresent {
				t.Fatal("session present 0")
			}
			got := received{}
			readNumbered(t, s, "a", n, got)
			expectNone(t, s, 200*time.Millisecond)
			if m := got.missing(n); len(m) > 0 {
				t.Fatalf("lost %v", m)
			}
			if d := got.dups(); qos == 2 && len(d) > 0 {
				t.Fatalf("QoS 2 duplicates %v", d)
			}
		})
	}
}

// TestLeaderKilled: after the Raft leader is killed the others elect a new one,
// route changes commit again, and messages cross between the survivors.
func TestLeaderKilled(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	old := clustertest.Leader(t, nodes)
	old.Kill()
	live := clustertest.Running(nodes)
	clustertest.Eventually(t, "a new leader", func() bool {
		l := live[0].Cluster.Status().Leader
		return l != "" && l != old.Name && live[1].Cluster.Status().Leader == l
	})
	sub := nodetest.Connect(t, live[0].Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "l/#")
	clustertest.WaitRoute(t, live, "l/#", live[0].Name, "", true)
	pub := nodetest.Connect(t, live[1].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "l/1", QoS: 1, PacketID: 1, Payload: []byte("x")})
	sub.ExpectPublish("l/1", "x")
	sub.Send(&proto.Unsubscribe{PacketID: 2, Filters: []string{"l/#"}})
	nodetest.Expect[*proto.Unsuback](sub)
	clustertest.WaitRoute(t, live, "l/#", live[0].Name, "", false)
}

// TestRestartRejoins: a node stopped and restarted on its data directory rejoins
// (alive everywhere, following the leader), its persistent session's route works
// again, and new route changes from it commit.
func TestRestartRejoins(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	s, _ := resume(t, nodes[2].Addr, proto.V5, "s")
	s.Subscribe(1, 1, "rs/#")
	clustertest.WaitRoute(t, nodes, "rs/#", "n3", "", true)
	s.Disconnect()

	nodes[2].Restart(nodes)
	clustertest.WaitMember(t, nodes, "n3", "alive")
	clustertest.WaitLeader(t, nodes)
	clustertest.WaitRoute(t, nodes, "rs/#", "n3", "", true)
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "rs/1", QoS: 1, PacketID: 1, Payload: []byte("queued")})
	s, ack := resume(t, nodes[2].Addr, proto.V5, "s")
	if !ack.SessionPresent {
		t.Fatal("session present 0 after the restart")
	}
	s.ExpectPublish("rs/1", "queued")
	s.Subscribe(2, 1, "rs2/#")
	clustertest.WaitRoute(t, nodes, "rs2/#", "n3", "", true)
	pub.Publish(&proto.Publish{Topic: "rs2/1", QoS: 1, PacketID: 2, Payload: []byte("new")})
	s.ExpectPublish("rs2/1", "new")
}

// TestKilledNodeRestartsElsewhere: a node killed and restarted on its data
// directory at new gossip and peer addresses (a rescheduled pod) is accepted by
// gossip at once (not only once the others forget the dead node, 15 s here and
// 30 s with the LAN defaults), followed by Raft at its new address, gets the
// messages held for it while it was down, and its routes work.
func TestKilledNodeRestartsElsewhere(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	s, _ := resume(t, nodes[2].Addr, proto.V5, "s")
	s.Subscribe(1, 1, "mv/#")
	clustertest.WaitRoute(t, nodes, "mv/#", "n3", "", true)
	s.Disconnect()
	nodes[2].Kill()
	clustertest.WaitMember(t, nodes, "n3", "dead")
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "mv/held", QoS: 1, PacketID: 1, Payload: []byte("held")})

	nodes[2].Move()
	nodes[2].Restart(nodes)
	// Well within the grace period (3 s), so n3 keeps its place and its routes.
	clustertest.WaitMemberWithin(t, 2*time.Second, nodes, "n3", "alive")
	clustertest.Eventually(t, "every node sees n3 at its new address", func() bool {
		for _, nd := range nodes {
			for _, m := range nd.Cluster.Status().Members {
				if m.Name == "n3" && m.PeerAddr != nodes[2].PeerAddr() {
					return false
				}
			}
		}
		return true
	})
	s, _ = resume(t, nodes[2].Addr, proto.V5, "s")
	s.ExpectPublish("mv/held", "held")
	s.Subscribe(2, 1, "mv2/#")
	// Every replica, n3's own included: Raft reaches it at the new address.
	clustertest.WaitRoute(t, nodes, "mv2/#", "n3", "", true)
	pub.Publish(&proto.Publish{Topic: "mv/1", QoS: 1, PacketID: 2, Payload: []byte("old route")})
	s.ExpectPublish("mv/1", "old route")
	pub.Publish(&proto.Publish{Topic: "mv2/1", QoS: 1, PacketID: 3, Payload: []byte("new route")})
	s.ExpectPublish("mv2/1", "new route")
}

// TestRestartDropsStaleRoutes: the routes of a node's clean sessions end with its
// process, also when the removals never commit (here the node stops right after
// its clients leave). Once it is back the table must not keep them: a stale
// shared-subscription route would make the publishing node pick a node with no
// member and lose the group's messages.
func TestRestartDropsStaleRoutes(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	m2 := nodetest.Connect(t, nodes[1].Addr, proto.V5, "m2")
	m2.Subscribe(1, 1, "$share/g/st/#")
	m3 := nodetest.Connect(t, nodes[2].Addr, proto.V5, "m3")
	m3.Subscribe(1, 1, "$share/g/st/#", "st/plain")
	clustertest.WaitRoute(t, nodes, "st/#", "n3", "g", true)
	clustertest.WaitRoute(t, nodes, "st/plain", "n3", "", true)
	clustertest.WaitRoute(t, nodes, "st/#", "n2", "g", true)

	nodes[2].Restart(nodes) // its clean sessions end; their routes may not
	clustertest.WaitMember(t, nodes, "n3", "alive")
	clustertest.WaitRoute(t, nodes, "st/#", "n3", "g", false)
	clustertest.WaitRoute(t, nodes, "st/plain", "n3", "", false)
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	const n = 10
	publishNumbered(t, pub, "st/x", "s", 1, 1, n)
	got := received{}
	readNumbered(t, m2, "s", n, got)
}
