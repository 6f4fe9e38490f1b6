package node_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

func TestQoSBothDirections(t *testing.T) {
	// The publisher's flow uses its own packet id: PUBACK [MQTT-4.3.2-4] or
	// PUBREC/PUBCOMP [MQTT-4.3.3-8] [MQTT-4.3.3-11] carry it. The subscriber gets
	// min(published, granted) QoS [MQTT-3.8.4-6] with a non-zero packet id of the
	// broker's for QoS > 0 [MQTT-2.3.1-1] and none for QoS 0 [MQTT-2.3.1-5].
	for _, v := range lcVersions {
		for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
			for subQoS := byte(0); subQoS <= 2; subQoS++ {
				t.Run(fmt.Sprintf("%s/pub%d/sub%d", v, pubQoS, subQoS), func(t *testing.T) {
					t.Parallel()
					b := nodetest.Start(t, lcConfig())
					sub := nodetest.Connect(t, b.Addr, v, "sub")
					sub.Subscribe(1, subQoS, "q/+")
					pub := nodetest.Connect(t, b.Addr, v, "pub")
					const pubID = 0x1234
					p := &proto.Publish{Topic: "q/x", QoS: pubQoS, Payload: []byte("m")}
					if pubQoS > 0 {
						p.PacketID = pubID
					}
					// Publish fails unless the acks carry pubID.
					if code := pub.Publish(p); code != proto.Success {
						t.Fatalf("publisher ack %v, want success", code)
					}
					got := nodetest.Expect[*proto.Publish](sub)
					want := min(pubQoS, subQoS)
					if got.QoS != want || got.Topic != "q/x" || string(got.Payload) != "m" || got.Dup {
						t.Fatalf("subscriber got %s, want q/x \"m\" qos %d without dup", nodetest.String(got), want)
					}
					if (got.PacketID != 0) != (want > 0) {
						t.Fatalf("subscriber got packet id %d at qos %d", got.PacketID, want)
					}
					sub.Ack(got) // checks the PUBREL's packet id for QoS 2
					// Once acknowledged, the message is not sent again.
					sub.ExpectNothing(lcQuiet / 4)
				})
			}
		}
	}
}

func TestQoSCrossVersion(t *testing.T) {
	// A 5.0 publisher reaches a 3.1 subscriber at QoS 1 and a 3.1 publisher reaches a
	// 5.0 subscriber at QoS 2: each side speaks its own version.
	for _, tc := range []struct {
		name         string
		pubV, subV   proto.Version
		qos          byte
		wantPubAckV5 bool
	}{
		{"5.0 to 3.1 qos 1", proto.V5, proto.V31, 1, true},
		{"3.1 to 5.0 qos 2", proto.V31, proto.V5, 2, false},
		{"3.1.1 to 3.1 qos 1", proto.V311, proto.V31, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			sub := nodetest.Connect(t, b.Addr, tc.subV, "sub")
			sub.Subscribe(1, tc.qos, "x/#")
			pub := nodetest.Connect(t, b.Addr, tc.pubV, "pub")
			pub.Publish(&proto.Publish{Topic: "x/y", QoS: tc.qos, PacketID: 9, Payload: []byte("hello")})
			got := sub.ExpectPublish("x/y", "hello")
			if got.QoS != tc.qos || got.PacketID == 0 {
				t.Fatalf("subscriber got qos %d id %d, want qos %d with an id", got.QoS, got.PacketID, tc.qos)
			}
			sub.ExpectNothing(lcQuiet)
		})
	}
}

func TestQoSNoMatchingSubscribers50(t *testing.T) {
	// 5.0 §3.4.2.1 / §3.5.2.1: PUBACK and PUBREC say 0x10 (No matching subscribers)
	// when nobody received the message, 0x00 otherwise. 3.x acks carry no code.
	for _, tc := range []struct {
		name       string
		v          proto.Version
		qos        byte
		subscribed bool
		want       proto.ReasonCode
	}{
		{"5.0 qos 1 nobody", proto.V5, 1, false, proto.NoMatchingSubscribers},
		{"5.0 qos 2 nobody", proto.V5, 2, false, proto.NoMatchingSubscribers},
		{"5.0 qos 1 subscribed", proto.V5, 1, true, proto.Success},
		{"5.0 qos 2 subscribed", proto.V5, 2, true, proto.Success},
		{"3.1.1 qos 1 nobody", proto.V311, 1, false, proto.Success},
		{"3.1.1 qos 2 nobody", proto.V311, 2, false, proto.Success},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			if tc.subscribed {
				sub := nodetest.Connect(t, b.Addr, tc.v, "sub")
				sub.Subscribe(1, tc.qos, "n/+")
			}
			pub := nodetest.Connect(t, b.Addr, tc.v, "pub")
			code := pub.Publish(&proto.Publish{Topic: "n/a", QoS: tc.qos, PacketID: 3, Payload: []byte("x")})
			if code != tc.want {
				t.Fatalf("publisher ack code %v, want %v", code, tc.want)
			}
		})
	}
}

func TestQoSInflightWindow(t *testing.T) {
	// The outgoing window (cfg.Session.MaxInflight, or a 5.0 client's Receive Maximum
	// if lower [MQTT-3.3.4-7]) bounds unacknowledged QoS 1 messages; each PUBACK lets
	// the next queued one out, in order [MQTT-4.6.0-6].
	for _, tc := range []struct {
		name        string
		v           proto.Version
		maxInflight int
		receiveMax  uint16 // 5.0 CONNECT Receive Maximum, 0: not sent
		window      int
	}{
		{"3.1 max inflight 2", proto.V31, 2, 0, 2},
		{"3.1.1 max inflight 2", proto.V311, 2, 0, 2},
		{"5.0 max inflight 2", proto.V5, 2, 0, 2},
		{"5.0 receive maximum 1", proto.V5, 100, 1, 1},
		{"5.0 receive maximum above max inflight", proto.V5, 2, 10, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := lcConfig()
			cfg.Session.MaxInflight = tc.maxInflight
			b := nodetest.Start(t, cfg)
			cp := lcClean("sub")
			if tc.receiveMax > 0 {
				cp.Props.ReceiveMaximum = tc.receiveMax
				cp.Props.Set(proto.PropReceiveMaximum)
			}
			sub, _ := lcAccepted(t, b.Addr, tc.v, cp)
			sub.Subscribe(1, 1, "w")
			pub := nodetest.Connect(t, b.Addr, tc.v, "pub")
			const n = 5
			for i := range n {
				pub.Publish(&proto.Publish{Topic: "w", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("m" + strconv.Itoa(i))})
			}
			// The first window's worth arrives, with distinct ids, and no more.
			var unacked []*proto.Publish
			ids := map[uint16]bool{}
			for i := range tc.window {
				p := nodetest.Expect[*proto.Publish](sub)
				if want := "m" + strconv.Itoa(i); string(p.Payload) != want || p.QoS != 1 {
					t.Fatalf("got %s, want %q at qos 1", nodetest.String(p), want)
				}
				if ids[p.PacketID] {
					t.Fatalf("packet id %d used twice while inflight", p.PacketID)
				}
				ids[p.PacketID] = true
				unacked = append(unacked, p)
			}
			sub.ExpectNothing(lcQuiet)
			// Each PUBACK releases exactly the next message.
			for next := tc.window; len(unacked) > 0; {
				sub.Ack(unacked[0])
				unacked = unacked[1:]
				if next == n {
					continue
				}
				p := nodetest.Expect[*proto.Publish](sub)
				if want := "m" + strconv.Itoa(next); string(p.Payload) != want {
					t.Fatalf("after a PUBACK got %s, want %q", nodetest.String(p), want)
				}
				next++
				unacked = append(unacked, p)
				sub.ExpectNothing(lcQuiet / 4)
			}
			sub.ExpectNothing(lcQuiet)
		})
	}
}

func TestQoSRedeliveryOnReconnect(t *testing.T) {
	// [MQTT-4.4.0-1] on reconnect with the session kept, unacknowledged PUBLISH
	// packets are sent again with DUP=1 [MQTT-3.3.1-1] and their original packet
	// ids, before the messages queued while the client was away.
	for _, v := range lcVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			sub, _ := lcAccepted(t, b.Addr, v, lcResumable(v, "sub"))
			sub.Subscribe(1, 1, "r/#")

			pub.Publish(&proto.Publish{Topic: "r/1", QoS: 1, PacketID: 1, Payload: []byte("first")})
			first := nodetest.Expect[*proto.Publish](sub)
			if string(first.Payload) != "first" || first.Dup {
				t.Fatalf("got %s, want \"first\" without dup", nodetest.String(first))
			}
			sub.Conn.Close() // no PUBACK, no DISCONNECT
			lcAwaitConnected(t, b, 1)
			pub.Publish(&proto.Publish{Topic: "r/2", QoS: 1, PacketID: 2, Payload: []byte("second")})

			sub, _ = lcAccepted(t, b.Addr, v, lcResumable(v, "sub"))
			again := nodetest.Expect[*proto.Publish](sub)
			if string(again.Payload) != "first" || !again.Dup || again.PacketID != first.PacketID || again.QoS != 1 {
				t.Fatalf("resent %s, want \"first\" qos 1 with dup and packet id %d", nodetest.String(again), first.PacketID)
			}
			queued := nodetest.Expect[*proto.Publish](sub)
			if string(queued.Payload) != "second" || queued.Dup || queued.PacketID == again.PacketID {
				t.Fatalf("then got %s, want \"second\" without dup and with a new packet id", nodetest.String(queued))
			}
			sub.Ack(again)
			sub.Ack(queued)
			sub.ExpectNothing(lcQuiet)
		})
	}
}

func TestQoS2PubrelResentOnReconnect(t *testing.T) {
	// [MQTT-4.4.0-1] a QoS 2 message the client acknowledged with PUBREC is
	// delivered: on reconnect only its PUBREL is sent again, never the PUBLISH
	// [MQTT-4.3.3-4] (3.1.1; 5.0 [MQTT-4.3.3-5]).
	for _, v := range lcVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			sub, _ := lcAccepted(t, b.Addr, v, lcResumable(v, "sub"))
			sub.Subscribe(1, 2, "e/#")

			pub.Publish(&proto.Publish{Topic: "e/1", QoS: 2, PacketID: 1, Payload: []byte("once")})
			p := nodetest.Expect[*proto.Publish](sub)
			if p.QoS != 2 {
				t.Fatalf("got %s, want qos 2", nodetest.String(p))
			}
			sub.Send(&proto.Pubrec{PacketID: p.PacketID})
			if rel := nodetest.Expect[*proto.Pubrel](sub); rel.PacketID != p.PacketID {
				t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p.PacketID)
			}
			sub.Conn.Close() // no PUBCOMP
			lcAwaitConnected(t, b, 1)

			sub, _ = lcAccepted(t, b.Addr, v, lcResumable(v, "sub"))
			rel := nodetest.Expect[*proto.Pubrel](sub)
			if rel.PacketID != p.PacketID {
				t.Fatalf("resent PUBREL for %d, want %d", rel.PacketID, p.PacketID)
			}
			sub.Send(&proto.Pubcomp{PacketID: p.PacketID})
			sub.ExpectNothing(lcQuiet)
			// The exchange is over and the session still delivers.
			pub.Publish(&proto.Publish{Topic: "e/2", QoS: 2, PacketID: 2, Payload: []byte("next")})
			sub.ExpectPublish("e/2", "next")
			sub.ExpectNothing(lcQuiet)
		})
	}
}

func TestQoS2ExactlyOnceFromPublisher(t *testing.T) {
	// [MQTT-4.3.3-9] (3.1.1; 5.0 [MQTT-4.3.3-10]) until the PUBREL, a PUBLISH with a
	// packet id the broker already holds is a retransmission: it is acknowledged
	// again with PUBREC but not delivered again. After PUBREL/PUBCOMP the id is free
	// and a new PUBLISH with it is a new message.
	for _, v := range lcVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			sub := nodetest.Connect(t, b.Addr, v, "sub")
			sub.Subscribe(1, 2, "x2")
			pub := nodetest.Connect(t, b.Addr, v, "pub")

			p := &proto.Publish{Topic: "x2", QoS: 2, PacketID: 5, Payload: []byte("one")}
			pub.Send(p)
			if rec := nodetest.Expect[*proto.Pubrec](pub); rec.PacketID != 5 {
				t.Fatalf("PUBREC for %d, want 5", rec.PacketID)
			}
			dup := *p
			dup.Dup = true
			pub.Send(&dup)
			if rec := nodetest.Expect[*proto.Pubrec](pub); rec.PacketID != 5 || rec.ReasonCode.IsError() {
				t.Fatalf("PUBREC for the retransmission: id %d code %v, want 5 success", rec.PacketID, rec.ReasonCode)
			}
			sub.ExpectPublish("x2", "one")
			sub.ExpectNothing(lcQuiet)

			pub.Send(&proto.Pubrel{PacketID: 5})
			if comp := nodetest.Expect[*proto.Pubcomp](pub); comp.PacketID != 5 || comp.ReasonCode != proto.Success {
				t.Fatalf("PUBCOMP id %d code %v, want 5 success", comp.PacketID, comp.ReasonCode)
			}
			pub.Publish(&proto.Publish{Topic: "x2", QoS: 2, PacketID: 5, Payload: []byte("two")})
			sub.ExpectPublish("x2", "two")
			sub.ExpectNothing(lcQuiet)
		})
	}
}

func TestQoS2UnknownPubrel(t *testing.T) {
	// [MQTT-4.3.3-11] PUBREL is answered with PUBCOMP even for a packet id the broker
	// does not hold; 5.0 says 0x92 (Packet Identifier not found) in it.
	for _, v := range lcVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			c := nodetest.Connect(t, b.Addr, v, "c")
			c.Send(&proto.Pubrel{PacketID: 42})
			comp := nodetest.Expect[*proto.Pubcomp](c)
			want := proto.Success
			if v == proto.V5 {
				want = proto.PacketIdentifierNotFound
			}
			if comp.PacketID != 42 || comp.ReasonCode != want {
				t.Fatalf("PUBCOMP id %d code %v, want 42 %v", comp.PacketID, comp.ReasonCode, want)
			}
			lcPing(t, c) // not a reason to close
		})
	}
}

func TestQoSOrderPerPublisher(t *testing.T) {
	// [MQTT-4.6.0-2] [MQTT-4.6.0-3] [MQTT-4.6.0-6] messages from one publisher on one
	// topic reach a subscriber in the order sent, and their acks come in order.
	const n = 200
	for _, v := range lcVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			sub := nodetest.Connect(t, b.Addr, v, "sub")
			sub.Subscribe(1, 1, "seq")
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			// Send everything first, so many messages are in flight at once.
			for i := 1; i <= n; i++ {
				pub.Send(&proto.Publish{Topic: "seq", QoS: 1, PacketID: uint16(i), Payload: []byte(strconv.Itoa(i))})
			}
			for i := 1; i <= n; i++ {
				if ack := nodetest.Expect[*proto.Puback](pub); ack.PacketID != uint16(i) {
					t.Fatalf("PUBACK %d is for packet id %d", i, ack.PacketID)
				}
			}
			for i := 1; i <= n; i++ {
				sub.ExpectPublish("seq", strconv.Itoa(i))
			}
			sub.ExpectNothing(lcQuiet)
		})
	}
}
