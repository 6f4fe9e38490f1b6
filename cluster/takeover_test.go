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

// TestTakeoverMovesQueuedSession: a persistent session subscribed on n1 goes
// offline; what is published meanwhile on n2 queues for it; the client comes back
// on n3 with clean start 0 and gets session present 1 and every queued message,
// QoS 2 ones exactly once, including the QoS 2 message whose PUBREC it had sent on
// n1 (it gets the PUBREL, not the message again). Afterwards its route is n3's.
func TestTakeoverMovesQueuedSession(t *testing.T) {
	skipShort(t)
	for _, v := range []proto.Version{proto.V311, proto.V5} {
		t.Run(v.String(), func(t *testing.T) {
			nodes := clustertest.Start(t, 3)
			id := "mover-" + v.String()
			old, _ := resume(t, nodes[0].Addr, v, id)
			old.Subscribe(1, 2, "tk/#")
			clustertest.WaitRoute(t, nodes, "tk/#", "n1", "", true)
			pub := nodetest.Connect(t, nodes[1].Addr, proto.V5, "pub")

			// One QoS 2 message half done on n1: PUBREC sent, no PUBCOMP yet.
			pub.Publish(&proto.Publish{Topic: "tk/half", QoS: 2, PacketID: 1, Payload: []byte("m0")})
			half := nodetest.Expect[*proto.Publish](old)
			old.Send(&proto.Pubrec{PacketID: half.PacketID})
			nodetest.Expect[*proto.Pubrel](old)
			old.Disconnect()
			nodetest.Eventually(t, "n1 sees the client gone", func() bool { return nodes[0].Broker.Stats.Connected.Load() == 0 })

			const n = 20
			for i := 1; i <= n; i++ {
				qos := byte(1 + i%2)
				if code := pub.Publish(&proto.Publish{Topic: fmt.Sprintf("tk/%d", i), QoS: qos, PacketID: uint16(i + 1), Payload: []byte(fmt.Sprintf("m%d", i))}); code != proto.Success {
					t.Fatalf("publish %d: %v (the offline session on n1 matches)", i, code)
				}
			}

			c, ack := resume(t, nodes[2].Addr, v, id)
			if !ack.SessionPresent {
				t.Fatal("session present 0 after a takeover from n1")
			}
			// The half-done QoS 2 flow resumes with PUBREL [MQTT-4.4.0-1].
			got := received{}
			sawRel := false
			consume(t, c, func() bool { return len(got) >= n && sawRel }, func(p *proto.Publish) {
				k := number(t, "m", p.Payload)
				if k == 0 {
					t.Fatalf("the QoS 2 message whose PUBREC was sent came again: %s", nodetest.String(p))
				}
				if want := byte(1 + k%2); p.QoS != want {
					t.Fatalf("message %d at QoS %d, want %d", k, p.QoS, want)
				}
				got[k]++
			}, func(id uint16) {
				if id == half.PacketID {
					sawRel = true
				}
			})
			if m := got.missing(n); len(m) > 0 {
				t.Fatalf("lost %v", m)
			}
			for _, k := range got.dups() {
				if k%2 == 1 {
					t.Fatalf("QoS 2 message %d delivered %d times", k, got[k])
				}
			}
			expectNone(t, c, 200*time.Millisecond)
			clustertest.WaitRoute(t, nodes, "tk/#", "n3", "", true)
			clustertest.WaitRoute(t, nodes, "tk/#", "n1", "", false)
			if s := nodes[0].Broker.SessionCount(); s != 0 {
				t.Fatalf("n1 still holds %d sessions", s)
			}
			pub.Publish(&proto.Publish{Topic: "tk/after", QoS: 2, PacketID: 100, Payload: []byte("after")})
			c.ExpectPublish("tk/after", "after")
		})
	}
}

// TestTakeoverLiveConnection: a CONNECT on n2 with the client id of a live
// connection on n1 closes that one (5.0: DISCONNECT 0x8E Session taken over) and
// serves the new one; a clean start 1 there gets session present 0.
func TestTakeoverLiveConnection(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	old := nodetest.Connect(t, nodes[0].Addr, proto.V5, "live")
	old.Subscribe(1, 1, "lv/#")
	clustertest.WaitRoute(t, nodes, "lv/#", "n1", "", true)

	c := nodetest.Dial(t, nodes[1].Addr, proto.V5)
	ack := c.Connect(&proto.Connect{ClientID: "live", CleanStart: true, KeepAlive: 60})
	if ack.ReasonCode != 0 || ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want accepted without session", ack)
	}
	pkts := old.ExpectClosed()
	if len(pkts) != 1 {
		t.Fatalf("old connection got %d packets before closing, want one DISCONNECT", len(pkts))
	}
	if d, ok := pkts[0].(*proto.Disconnect); !ok || d.ReasonCode != proto.SessionTakenOver {
		t.Fatalf("old connection got %s, want DISCONNECT 0x8E", nodetest.String(pkts[0]))
	}
	// The clean session on n1 ended with its connection: so did its route.
	clustertest.WaitRoute(t, nodes, "lv/#", "n1", "", false)
	c.Subscribe(1, 1, "lv/#")
	clustertest.WaitRoute(t, nodes, "lv/#", "n2", "", true)
	pub := nodetest.Connect(t, nodes[2].Addr, proto.V311, "pub")
	pub.Publish(&proto.Publish{Topic: "lv/1", QoS: 1, PacketID: 1, Payload: []byte("new")})
	c.ExpectPublish("lv/1", "new")
	if n := nodes[0].Broker.Stats.Connected.Load(); n != 0 {
		t.Fatalf("n1 still counts %d connected clients", n)
	}
}

// TestTakeoverWhilePublishing: a persistent subscriber moves from n1 to n3 while
// a publisher on n2 keeps publishing; every message the publisher got a PUBACK
// (PUBREC) for reaches the subscriber, on one connection or the other (promise 2),
// and at QoS 2 exactly once (promise 3). The node that gave the session up relays
// what still reaches it until the route table has moved; n3 drops the copies that
// come both ways.
func TestTakeoverWhilePublishing(t *testing.T) {
	skipShort(t)
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			nodes := clustertest.Start(t, 3)
			old, _ := resume(t, nodes[0].Addr, proto.V5, "flow")
			old.Subscribe(1, qos, "fl/#")
			clustertest.WaitRoute(t, nodes, "fl/#", "n1", "", true)
			pub := nodetest.Connect(t, nodes[1].Addr, proto.V5, "pub")

			sub := &qosReceiver{got: received{}, unreleased: map[uint16]bool{}}
			stop := make(chan struct{})
			oldDone := sub.readUntilClosed(old, stop)
			const before, total = 50, 150
			publishNumbered(t, pub, "fl/x", "f", qos, 1, before)
			// CONNECT on n3 without waiting for its CONNACK: the takeover runs while
			// the publisher goes on.
			c := sendResume(t, nodes[2].Addr, "flow")
			publishNumbered(t, pub, "fl/x", "f", qos, before+1, total)
			ack := nodetest.Expect[*proto.Connack](c)
			if ack.ReasonCode != 0 || !ack.SessionPresent {
				t.Fatalf("CONNACK %+v, want accepted with session present", ack)
			}
			close(stop)
			<-oldDone
			// Whatever the old connection did not get must come on the new one.
			for len(sub.got.missing(total)) > 0 || len(sub.unreleased) > 0 {
				p, err := c.RecvWithin(clustertest.Timeout)
				if err != nil {
					t.Fatalf("acknowledged messages lost across the takeover: %v (%v)", sub.got.missing(total), err)
				}
				if reply := sub.handle(p); reply != nil {
					c.Send(reply)
				}
			}
			if qos == 2 {
				expectNone(t, c, 300*time.Millisecond)
				if d := sub.got.dups(); len(d) > 0 {
					t.Fatalf("QoS 2 messages delivered more than once across the takeover: %v", d)
				}
			}
			if n := nodes[0].Broker.Stats.SessionsHandedOver.Load(); n != 1 {
				t.Fatalf("n1 handed %d sessions over, want 1", n)
			}
		})
	}
}

// TestTakeoverToUnreachableNode: a persistent QoS 2 subscriber moves from n1 to n3
// while n3's peer port is cut off (gossip and n3's own calls go through, so the
// takeover itself works): what n1 relays after the session, and what n2 forwards
// to n3 directly, is held on disk by the sending nodes with its relay intact, and
// reaches the subscriber once the port is back, each message exactly once.
//
// With the publisher on n1 itself, its QoS 2 PUBRECs wait for the relays without
// holding up n1's store (a relay waits outside the QoS 2 publish's store group).
func TestTakeoverToUnreachableNode(t *testing.T) {
	skipShort(t)
	for _, pubOn := range []int{1, 0} {
		t.Run(fmt.Sprintf("publisher on n%d", pubOn+1), func(t *testing.T) {
			takeoverToUnreachableNode(t, pubOn)
		})
	}
}

func takeoverToUnreachableNode(t *testing.T, pubOn int) {
	nodes := clustertest.Start(t, 3, clustertest.Options{Tune: func(cc *cluster.Config, _ *node.Config) {
		cc.ForwardTimeout = time.Second
	}})
	old, _ := resume(t, nodes[0].Addr, proto.V5, "far")
	old.Subscribe(1, 2, "far/#")
	clustertest.WaitRoute(t, nodes, "far/#", "n1", "", true)
	pub := nodetest.Connect(t, nodes[pubOn].Addr, proto.V5, "pub")
	sub := &qosReceiver{got: received{}, unreleased: map[uint16]bool{}}
	stop := make(chan struct{})
	oldDone := sub.readUntilClosed(old, stop)
	const before, total = 20, 80
	publishNumbered(t, pub, "far/x", "f", 2, 1, before)

	nodes[2].CutPeer()
	c := sendResume(t, nodes[2].Addr, "far")
	publishNumbered(t, pub, "far/x", "f", 2, before+1, total)
	ack := nodetest.Expect[*proto.Connack](c)
	if ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want accepted with session present", ack)
	}
	close(stop)
	<-oldDone
	clustertest.Eventually(t, "n1 relayed after the session", func() bool {
		return nodes[0].Broker.Stats.MessagesRelayed.Load() > 0
	})
	nodes[2].HealPeer()
	for len(sub.got.missing(total)) > 0 || len(sub.unreleased) > 0 {
		p, err := c.RecvWithin(clustertest.Timeout)
		if err != nil {
			t.Fatalf("acknowledged messages lost: %v (%v)", sub.got.missing(total), err)
		}
		if reply := sub.handle(p); reply != nil {
			c.Send(reply)
		}
	}
	expectNone(t, c, 300*time.Millisecond)
	if d := sub.got.dups(); len(d) > 0 {
		t.Fatalf("QoS 2 messages delivered more than once: %v", d)
	}
}

// sendResume sends a 5.0 CONNECT resuming id's session and returns without
// waiting for the CONNACK, so a takeover runs while the test goes on.
func sendResume(t *testing.T, addr, id string) *nodetest.Client {
	t.Helper()
	c := nodetest.Dial(t, addr, proto.V5)
	cp := &proto.Connect{ClientID: id, KeepAlive: 60, Version: proto.V5}
	cp.Props.SessionExpiry = 3600
	cp.Props.Set(proto.PropSessionExpiry)
	c.Send(cp)
	return c
}

// qosReceiver is a subscriber's side of QoS 1 and 2 across its connections: a QoS 2
// message counts once, when first received, and a resend of a packet id not yet
// released is the same message [MQTT-4.3.3-9]. Not safe for concurrent use: the
// test uses it from one goroutine at a time.
type qosReceiver struct {
	got        received
	unreleased map[uint16]bool
}

// readUntilClosed reads and answers on c, in a goroutine, until c is closed (the
// takeover closes it) or stop is closed; the channel is closed when it returns. No
// t.Fatal there: another goroutine. Write errors are the closed connection: the
// session resends on the new one.
func (r *qosReceiver) readUntilClosed(c *nodetest.Client, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			p, err := c.RecvWithin(clustertest.Timeout)
			if err != nil {
				return
			}
			if reply := r.handle(p); reply != nil {
				b, _ := reply.Append(nil, proto.V5)
				_, _ = c.Conn.Write(b)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	return done
}

// handle records p and returns the packet to answer it with, if any.
func (r *qosReceiver) handle(p proto.Packet) proto.Packet {
	switch p := p.(type) {
	case *proto.Publish:
		var k int
		_, _ = fmt.Sscanf(string(p.Payload), "f%d", &k) // a bad payload counts as 0, never expected
		switch p.QoS {
		case 1:
			r.got[k]++
			return &proto.Puback{PacketID: p.PacketID}
		case 2:
			if !r.unreleased[p.PacketID] {
				r.got[k]++
				r.unreleased[p.PacketID] = true
			}
			return &proto.Pubrec{PacketID: p.PacketID}
		}
	case *proto.Pubrel:
		delete(r.unreleased, p.PacketID)
		return &proto.Pubcomp{PacketID: p.PacketID}
	}
	return nil
}
