package cluster_test

import (
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// heldFor returns what nd holds for node.
func heldFor(nd *clustertest.Node, node string) cluster.HeldStatus {
	for _, h := range nd.Cluster.Status().Held {
		if h.Node == node {
			return h
		}
	}
	return cluster.HeldStatus{Node: node}
}

// memberState returns node's gossip state as nd sees it.
func memberState(nd *clustertest.Node, node string) string {
	for _, m := range nd.Cluster.Status().Members {
		if m.Name == node {
			return m.State
		}
	}
	return "unknown"
}

// readInOrder reads numbered publishes (answering each QoS flow) until n distinct
// ones arrived, and fails unless they are 1..n, each once, in order; when they
// stop coming it names the missing ones.
func readInOrder(t *testing.T, c *nodetest.Client, prefix string, n int) {
	t.Helper()
	var seq []int
	seen := received{}
	for len(seen) < n {
		p, err := c.RecvWithin(clustertest.Timeout)
		if err != nil {
			t.Fatalf("got %d of %d messages, then %v; missing %v", len(seen), n, err, seen.missing(n))
		}
		switch p := p.(type) {
		case *proto.Publish:
			k := number(t, prefix, p.Payload)
			seen[k]++
			seq = append(seq, k)
			switch p.QoS {
			case 1:
				c.Send(&proto.Puback{PacketID: p.PacketID})
			case 2:
				c.Send(&proto.Pubrec{PacketID: p.PacketID})
			}
		case *proto.Pubrel:
			c.Send(&proto.Pubcomp{PacketID: p.PacketID})
		default:
			t.Fatalf("subscriber got %s", nodetest.String(p))
		}
	}
	expectNone(t, c, 200*time.Millisecond)
	if d := seen.dups(); len(d) > 0 {
		t.Fatalf("delivered twice: %v", d)
	}
	for i, k := range seq {
		if k != i+1 {
			t.Fatalf("out of order at position %d: got %d (sequence %v)", i, k, seq)
		}
	}
}

// TestHeldOnDiskAcrossRestart (promise 2): with n3 down, the QoS 1 messages
// published on n1 for n3's persistent session are acknowledged once n1 holds them
// on disk; n1 restarts (its spool must survive), more messages are published while
// n3 is still away (n1 no longer even knows n3's address) and once it is back;
// n3's subscriber gets every acknowledged message, once, in order.
func TestHeldOnDiskAcrossRestart(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3, clustertest.Options{Tune: func(cc *cluster.Config, _ *node.Config) {
		cc.DeadNodeGrace = time.Minute // n1 and n3 both restart within it
	}})
	s3, _ := resume(t, nodes[2].Addr, proto.V311, "s3")
	s3.Subscribe(1, 1, "h/#")
	clustertest.WaitRoute(t, nodes, "h/#", "n3", "", true)
	s3.Disconnect()
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")

	const live, held1, held2, after = 20, 150, 50, 20
	const total = live + held1 + held2 + after
	publishNumbered(t, pub, "h/x", "h", 1, 1, live) // accepted by n3 itself
	nodes[2].Kill()
	start := time.Now()
	publishNumbered(t, pub, "h/x", "h", 1, live+1, live+held1)
	t.Logf("%d messages acknowledged in %v with n3 down", held1, time.Since(start))
	if h := heldFor(nodes[0], "n3"); h.Messages != held1 || h.Spooled != held1 {
		t.Fatalf("n1 holds %+v for n3, want %d messages", h, held1)
	}
	pub.Disconnect()

	nodes[0].Restart(nodes) // a graceful stop: only what is on disk remains
	clustertest.WaitLeader(t, clustertest.Running(nodes))
	if h := heldFor(nodes[0], "n3"); h.Messages != held1 {
		t.Fatalf("after its restart n1 holds %+v for n3, want %d messages", h, held1)
	}
	clustertest.WaitRoute(t, clustertest.Running(nodes), "h/#", "n3", "", true)
	pub = nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	publishNumbered(t, pub, "h/x", "h", 1, live+held1+1, live+held1+held2)
	if h := heldFor(nodes[0], "n3"); h.Messages != held1+held2 {
		t.Fatalf("n1 holds %+v for n3, want %d messages", h, held1+held2)
	}

	nodes[2].Restart(nodes)
	clustertest.WaitMember(t, nodes, "n3", "alive")
	// Behind what is held: per-publisher order holds across the hand-over.
	publishNumbered(t, pub, "h/x", "h", 1, live+held1+held2+1, total)
	s3, ack := resume(t, nodes[2].Addr, proto.V311, "s3")
	if !ack.SessionPresent {
		t.Fatal("n3 lost the persistent session")
	}
	readInOrder(t, s3, "h", total)
	clustertest.Eventually(t, "n1's spool for n3 drained", func() bool { return heldFor(nodes[0], "n3").Messages == 0 })
}

// TestForwardTimeout: n3 stays alive in gossip but its peer port refuses
// connections, or swallows every byte; a QoS 1/2 publisher on n1 still gets its
// acknowledgements, within about the forward timeout, from n1's spool; once the
// port works again n3's subscriber gets every message, once, in order.
func TestForwardTimeout(t *testing.T) {
	skipShort(t)
	const timeout = time.Second
	for _, tc := range []struct {
		name string
		qos  byte
		cut  func(*clustertest.Node)
	}{
		{"refused", 1, (*clustertest.Node).CutPeer},
		{"stalled", 2, (*clustertest.Node).StallPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := clustertest.Start(t, 3, clustertest.Options{Tune: func(cc *cluster.Config, _ *node.Config) {
				cc.ForwardTimeout = timeout
			}})
			s3, _ := resume(t, nodes[2].Addr, proto.V5, "s3")
			s3.Subscribe(1, tc.qos, "ft/#")
			clustertest.WaitRoute(t, nodes, "ft/#", "n3", "", true)
			pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
			publishNumbered(t, pub, "ft/x", "f", tc.qos, 1, 1) // the stream to n3 is up

			const n = 60
			tc.cut(nodes[2])
			var slowest time.Duration
			start := time.Now()
			for i := 2; i <= n; i++ {
				t0 := time.Now()
				publishNumbered(t, pub, "ft/x", "f", tc.qos, i, i)
				slowest = max(slowest, time.Since(t0))
			}
			t.Logf("%d messages acknowledged in %v, slowest %v", n-1, time.Since(start), slowest)
			// The first waits for the timeout; the others go straight to the spool.
			if limit := timeout + 2*time.Second; slowest > limit {
				t.Fatalf("a publish took %v, more than %v", slowest, limit)
			}
			if s := memberState(nodes[0], "n3"); s != "alive" {
				t.Fatalf("n3 is %s to n1: the test needs it alive in gossip", s)
			}
			if h := heldFor(nodes[0], "n3"); h.Timeouts == 0 || h.Spooled == 0 {
				t.Fatalf("n1's figures for n3: %+v, want a timeout and spooled messages", h)
			}
			nodes[2].HealPeer()
			readInOrder(t, s3, "f", n)
			clustertest.Eventually(t, "n1's spool for n3 drained", func() bool { return heldFor(nodes[0], "n3").Messages == 0 })
			// Back to streaming: a new message is acknowledged by n3 itself.
			publishNumbered(t, pub, "ft/x", "f", tc.qos, n+1, n+1)
			if h := heldFor(nodes[0], "n3"); h.Spooled != uint64(n-1) {
				t.Fatalf("spooled %d, want %d: the message after the drain went to the spool", h.Spooled, n-1)
			}
		})
	}
}

// TestHeldBound: what is held for a node that is down is bounded; past the bound
// the oldest messages are dropped and counted, and the node gets the newest ones
// when it returns.
func TestHeldBound(t *testing.T) {
	skipShort(t)
	const bound, n = 10, 30
	nodes := clustertest.Start(t, 3, clustertest.Options{Tune: func(cc *cluster.Config, _ *node.Config) {
		cc.Spool.MaxMessages = bound
		cc.DeadNodeGrace = time.Minute
	}})
	s3, _ := resume(t, nodes[2].Addr, proto.V311, "s3")
	s3.Subscribe(1, 1, "b/#")
	clustertest.WaitRoute(t, nodes, "b/#", "n3", "", true)
	s3.Disconnect()
	nodes[2].Kill()
	clustertest.WaitMember(t, nodes, "n3", "dead")
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub")
	publishNumbered(t, pub, "b/x", "b", 1, 1, n)
	h := heldFor(nodes[0], "n3")
	if h.Messages != bound || h.Dropped != n-bound || h.Spooled != n {
		t.Fatalf("n1 holds %+v for n3, want %d held, %d dropped, %d spooled", h, bound, n-bound, n)
	}
	nodes[2].Restart(nodes)
	s3, _ = resume(t, nodes[2].Addr, proto.V311, "s3")
	got := received{}
	var first int
	consume(t, s3, func() bool { return len(got) >= bound }, func(p *proto.Publish) {
		k := number(t, "b", p.Payload)
		if first == 0 {
			first = k
		}
		got[k]++
	}, nil)
	expectNone(t, s3, 300*time.Millisecond)
	if first != n-bound+1 || len(got) != bound || got.dups() != nil {
		t.Fatalf("got %v from %d, want the newest %d (%d..%d) once", got, first, bound, n-bound+1, n)
	}
}

// TestHeldPurged: what is held for a dead node is deleted, on every node holding
// some (the leader and the others), once the grace period purges its routes: when
// the node returns later, none of it is delivered.
func TestHeldPurged(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	s3, _ := resume(t, nodes[2].Addr, proto.V311, "s3")
	s3.Subscribe(1, 1, "p/#")
	clustertest.WaitRoute(t, nodes, "p/#", "n3", "", true)
	s3.Disconnect()
	nodes[2].Kill()
	clustertest.WaitMember(t, nodes, "n3", "dead")
	holders := clustertest.Running(nodes) // one of them is the leader
	for _, nd := range holders {
		pub := nodetest.Connect(t, nd.Addr, proto.V5, "pub-"+nd.Name)
		publishNumbered(t, pub, "p/x", "p", 1, 1, 5)
		if h := heldFor(nd, "n3"); h.Messages != 5 {
			t.Fatalf("%s holds %+v for n3, want 5 messages", nd.Name, h)
		}
	}
	clustertest.Eventually(t, "n3's routes purged and what is held for it deleted", func() bool {
		for _, nd := range holders {
			if hasRoute(nd, "p/#", "n3") || heldFor(nd, "n3").Messages != 0 {
				return false
			}
		}
		return true
	})
	for _, nd := range holders {
		if h := heldFor(nd, "n3"); h.Purged != 5 {
			t.Fatalf("%s: %+v, want 5 purged", nd.Name, h)
		}
	}
	nodes[2].Restart(nodes)
	clustertest.WaitMember(t, nodes, "n3", "alive")
	s3, ack := resume(t, nodes[2].Addr, proto.V311, "s3")
	if !ack.SessionPresent {
		t.Fatal("n3 lost the persistent session")
	}
	clustertest.WaitRoute(t, nodes, "p/#", "n3", "", true) // the session's route is back
	expectNone(t, s3, time.Second)
	// The route works again, for new messages.
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V5, "pub-again")
	pub.Publish(&proto.Publish{Topic: "p/x", QoS: 1, PacketID: 1, Payload: []byte("new")})
	s3.ExpectPublish("p/x", "new")
}
