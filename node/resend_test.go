package node_test

import (
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// itResumeV5 connects a 5.0 client resuming (or, clean, starting) session id, with
// a session expiry and a Receive Maximum (0: none).
func itResumeV5(t *testing.T, addr, id string, clean bool, receiveMax uint16) *nodetest.Client {
	t.Helper()
	c := nodetest.Dial(t, addr, proto.V5)
	cp := &proto.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	cp.Props.SessionExpiry = 3600
	cp.Props.Set(proto.PropSessionExpiry)
	if receiveMax > 0 {
		cp.Props.ReceiveMaximum = receiveMax
		cp.Props.Set(proto.PropReceiveMaximum)
	}
	if ack := c.Connect(cp); ack.ReasonCode != proto.Success {
		t.Fatalf("CONNECT %q: %v", id, ack.ReasonCode)
	}
	return c
}

// TestResendKeepsNewReceiveMaximum: a client that had 10 QoS 1 messages
// unacknowledged comes back with Receive Maximum 2: the broker resends 2, and the
// next ones as it acknowledges, in order [MQTT-3.3.4-9] [MQTT-4.4.0-1]. It used to
// resend all 10 at once.
func TestResendKeepsNewReceiveMaximum(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	sub := itResumeV5(t, b.Addr, "sub", true, 10)
	sub.Subscribe(1, 1, "r")
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	for i := range 10 {
		pub.Publish(&proto.Publish{Topic: "r", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte('0' + i)}})
	}
	for range 10 {
		nodetest.Expect[*proto.Publish](sub) // not acknowledged
	}
	sub.Conn.Close()
	lcAwaitConnected(t, b, 1)

	sub = itResumeV5(t, b.Addr, "sub", false, 2)
	var held []*proto.Publish
	for i := range 10 {
		for len(held) < 2 && i+len(held) < 10 {
			held = append(held, nodetest.Expect[*proto.Publish](sub))
		}
		sub.ExpectNothing(lcQuiet) // no third one while two are unacknowledged
		p := held[0]
		if want := byte('0' + i); !p.Dup || len(p.Payload) != 1 || p.Payload[0] != want {
			t.Fatalf("resend %d: %s, want payload %q with DUP", i, nodetest.String(p), want)
		}
		sub.Send(&proto.Puback{PacketID: p.PacketID})
		held = held[1:]
	}
}

// TestResendPastWriteQueue: a session with more messages inflight than the
// connection's write queue takes (MaxInflight 40, MaxWriteQueue 16) resends them all
// on a new connection. The pushes the write queue refused used to be dropped from
// the resend while the messages kept their window slots, so 25 of 40 never came.
func TestResendPastWriteQueue(t *testing.T) {
	t.Parallel()
	cfg := node.DefaultConfig()
	cfg.MaxWriteQueue = 16
	cfg.Session.MaxInflight = 40
	b := nodetest.Start(t, cfg)
	sub := itResumeV5(t, b.Addr, "sub", true, 0)
	sub.Subscribe(1, 1, "r")
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	for i := range 40 {
		pub.Publish(&proto.Publish{Topic: "r", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("m")})
	}
	for range 40 {
		nodetest.Expect[*proto.Publish](sub)
	}
	sub.Conn.Close()
	lcAwaitConnected(t, b, 1)

	sub = itResumeV5(t, b.Addr, "sub", false, 0)
	for i := range 40 {
		p, err := sub.RecvWithin(2 * time.Second)
		if err != nil {
			t.Fatalf("%d of 40 messages resent: %v", i, err)
		}
		pp, ok := p.(*proto.Publish)
		if !ok {
			t.Fatalf("got %s", nodetest.String(p))
		}
		sub.Send(&proto.Puback{PacketID: pp.PacketID})
	}
}
