package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// The edges of a session hand-over: the node it leaves is shutting down, the new
// node's import is slow, the session moves on again.

// TestTakeoverFromClosingNode: a rolling restart. n1's broker shuts down (its
// clients get DISCONNECT 0x8B and reconnect elsewhere) while its cluster member
// still answers; a persistent session with acknowledged QoS 1 messages queued on
// n1 is resumed on n3 meanwhile. It moves with its messages: the closing node had
// discarded it, from disk too.
func TestTakeoverFromClosingNode(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	old, _ := resume(t, nodes[0].Addr, proto.V5, "rolling")
	old.Subscribe(1, 1, "rolling/#")
	clustertest.WaitRoute(t, nodes, "rolling/#", "n1", "", true)
	old.Disconnect()
	nodetest.Eventually(t, "n1 sees the client gone", func() bool { return nodes[0].Broker.Stats.Connected.Load() == 0 })
	pub := nodetest.Connect(t, nodes[1].Addr, proto.V5, "pub")
	const n = 5
	for i := 1; i <= n; i++ {
		if code := pub.Publish(&proto.Publish{Topic: "rolling/x", QoS: 1, PacketID: uint16(i), Payload: fmt.Appendf(nil, "m%d", i)}); code != proto.Success {
			t.Fatalf("publish %d: %v", i, code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nodes[0].Broker.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c, ack := resume(t, nodes[2].Addr, proto.V5, "rolling")
	if !ack.SessionPresent {
		t.Fatalf("session present 0: the closing node discarded a session with %d acknowledged QoS 1 messages", n)
	}
	got := received{}
	for len(got) < n {
		p := nodetest.Expect[*proto.Publish](c)
		got[number(t, "m", p.Payload)]++
		c.Send(&proto.Puback{PacketID: p.PacketID})
	}
}

// TestRelayWhileImportIsSlow: the new node's import of a session waits (its
// takeover asks a stalled third node too) longer than the old node's forward
// timeout, while messages for the session reach the old node and are relayed. The
// relays are parked until the import ends and then delivered: they used to wait in
// the stream, which the old node gave up on, and were dropped, and marked applied
// so that the spooled copies were skipped too.
func TestRelayWhileImportIsSlow(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3, clustertest.Options{Tune: func(cc *cluster.Config, nc *node.Config) {
		cc.ForwardTimeout = time.Second
		nc.ConnectTimeout = 4 * time.Second
	}})
	a, b, stalled := nodes[0], nodes[1], nodes[2]
	old, _ := resume(t, a.Addr, proto.V5, "slow-import")
	old.Subscribe(1, 1, "slow/#")
	clustertest.WaitRoute(t, nodes, "slow/#", a.Name, "", true)
	old.Disconnect()
	nodetest.Eventually(t, "a sees the client gone", func() bool { return a.Broker.Stats.Connected.Load() == 0 })
	pub := nodetest.Connect(t, a.Addr, proto.V5, "pub")

	stalled.StallPeer()
	c := sendResume(t, b.Addr, "slow-import")
	clustertest.Eventually(t, "a handed the session over", func() bool { return a.Broker.Stats.SessionsHandedOver.Load() == 1 })
	const n = 5
	for i := 1; i <= n; i++ {
		if code := pub.Publish(&proto.Publish{Topic: "slow/x", QoS: 1, PacketID: uint16(i), Payload: fmt.Appendf(nil, "m%d", i)}); code != proto.Success {
			t.Fatalf("publish %d: %v", i, code)
		}
	}
	if ack := nodetest.Expect[*proto.Connack](c); !ack.SessionPresent {
		t.Fatalf("CONNACK %+v: session not moved", ack)
	}
	stalled.HealPeer()
	got := received{}
	for len(got) < n {
		p, err := c.RecvWithin(10 * time.Second)
		if err != nil {
			t.Fatalf("acknowledged messages lost: got %v, missing %v (%v)", got, got.missing(n), err)
		}
		if pp, ok := p.(*proto.Publish); ok {
			got[number(t, "m", pp.Payload)]++
			c.Send(&proto.Puback{PacketID: pp.PacketID})
		}
	}
}

// TestRelayAfterSecondMove: a session moves from n1 to n2 and on to n3 while n1
// may still relay to n2. A relay reaching n2 after the second move goes on to n3,
// where the client is: n2 looked for the session among its own, found it gone,
// and dropped the message as if the session had ended.
func TestRelayAfterSecondMove(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	first, _ := resume(t, nodes[0].Addr, proto.V5, "hops")
	first.Subscribe(1, 1, "hops/#")
	clustertest.WaitRoute(t, nodes, "hops/#", "n1", "", true)
	first.Disconnect()
	second, ack := resume(t, nodes[1].Addr, proto.V5, "hops")
	if !ack.SessionPresent {
		t.Fatal("the session did not move to n2")
	}
	_ = second
	third, ack := resume(t, nodes[2].Addr, proto.V5, "hops")
	if !ack.SessionPresent {
		t.Fatal("the session did not move on to n3")
	}
	// What n1 relays to n2 now, as the cluster would hand it to n2's broker.
	m := session.NewMessage(&proto.Publish{Topic: "hops/x", QoS: 1, Payload: []byte("late relay")}, "pub", time.Now())
	m.ID = session.MessageID{Origin: 7, Seq: 1}
	_, wait := nodes[1].Broker.DeliverRelayed(context.Background(), "hops", session.Delivery{Msg: m, QoS: 1})
	if wait == nil {
		t.Fatal("n2 did not relay the message on to n3")
	}
	if err := <-wait; err != nil {
		t.Fatalf("relay to n3: %v", err)
	}
	p := nodetest.Expect[*proto.Publish](third)
	if string(p.Payload) != "late relay" {
		t.Fatalf("n3's client got %q", p.Payload)
	}
}
