package node_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

func TestTakeoverClosesOldConnection(t *testing.T) {
	// [MQTT-3.1.4-2] (3.1.1; 5.0 [MQTT-3.1.4-3]) a CONNECT with the client id of a
	// live connection takes the id over: the old connection is closed, a 5.0 one
	// after DISCONNECT 0x8E (Session taken over), and the new one is served.
	for _, tc := range []struct {
		name       string
		oldV, newV proto.Version
	}{
		{"3.1", proto.V31, proto.V31},
		{"3.1.1", proto.V311, proto.V311},
		{"5.0", proto.V5, proto.V5},
		{"5.0 taken over by 3.1.1", proto.V5, proto.V311},
		{"3.1.1 taken over by 5.0", proto.V311, proto.V5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			old := nodetest.Connect(t, b.Addr, tc.oldV, "same")
			lcPing(t, old)

			c, ack := lcAccepted(t, b.Addr, tc.newV, lcClean("same"))
			if ack.SessionPresent {
				t.Errorf("clean takeover: session present 1")
			}
			lcClosedFor(t, old, tc.oldV, proto.SessionTakenOver)

			c.Subscribe(1, 1, "t/me")
			pub := nodetest.Connect(t, b.Addr, tc.newV, "pub")
			pub.Publish(&proto.Publish{Topic: "t/me", QoS: 1, PacketID: 1, Payload: []byte("works")})
			c.ExpectPublish("t/me", "works")
			nodetest.Eventually(t, "two connected clients and two sessions", func() bool {
				return b.Stats.Connected.Load() == 2 && b.SessionCount() == 2
			})
		})
	}
}

func TestTakeoverMovesSession(t *testing.T) {
	// With clean 0 on both connections the session moves to the new one: session
	// present 1, its subscriptions keep delivering, and an unacknowledged QoS 1
	// message is sent again with DUP and its packet id [MQTT-4.4.0-1].
	for _, v := range lcVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			old, _ := lcAccepted(t, b.Addr, v, lcResumable(v, "mover"))
			old.Subscribe(1, 1, "mv/#")
			pub.Publish(&proto.Publish{Topic: "mv/1", QoS: 1, PacketID: 1, Payload: []byte("unacked")})
			first := nodetest.Expect[*proto.Publish](old)
			if string(first.Payload) != "unacked" || first.Dup {
				t.Fatalf("got %s, want \"unacked\" without dup", nodetest.String(first))
			}

			c, ack := lcAccepted(t, b.Addr, v, lcResumable(v, "mover"))
			if want := v != proto.V31; ack.SessionPresent != want { // 3.1 has no such flag
				t.Errorf("session present %v, want %v", ack.SessionPresent, want)
			}
			lcClosedFor(t, old, v, proto.SessionTakenOver)
			again := nodetest.Expect[*proto.Publish](c)
			if string(again.Payload) != "unacked" || !again.Dup || again.PacketID != first.PacketID {
				t.Fatalf("new connection got %s, want \"unacked\" with dup and packet id %d", nodetest.String(again), first.PacketID)
			}
			c.Ack(again)
			pub.Publish(&proto.Publish{Topic: "mv/2", QoS: 1, PacketID: 2, Payload: []byte("later")})
			if p := c.ExpectPublish("mv/2", "later"); p.Dup {
				t.Fatalf("new message sent with dup")
			}
			c.ExpectNothing(lcQuiet)
		})
	}
}

func TestTakeoverWill(t *testing.T) {
	// What Skein does with the old connection's will on takeover: the old connection
	// ends without DISCONNECT, so its will is handled as for any abnormal end. With
	// no will delay (every 3.x will, 5.0 delay 0) it is published at once, whether or
	// not the new connection resumes the session; this is 5.0 §3.1.4 ("If the
	// existing Client has a Will Message, that Will Message is published as
	// described in section 3.1.2.5"). Mosquitto differs for 3.1.1: it skips the will
	// when the session is resumed. A 5.0 will with a delay is dropped when the new
	// connection resumes the session before the delay ends [MQTT-3.1.3-9], and
	// published at once when the new connection discards the session (clean start 1),
	// since the session ends then (5.0 §3.1.2.5).
	for _, tc := range []struct {
		name      string
		v         proto.Version
		resume    bool   // both connections clean 0 (5.0: with a session expiry)
		willDelay uint32 // 5.0 only
		published bool
	}{
		{"3.1 clean", proto.V31, false, 0, true},
		{"3.1.1 clean", proto.V311, false, 0, true},
		{"3.1.1 resumed", proto.V311, true, 0, true},
		{"5.0 clean", proto.V5, false, 0, true},
		{"5.0 resumed", proto.V5, true, 0, true},
		{"5.0 delayed will resumed", proto.V5, true, 30, false},
		{"5.0 delayed will, session discarded", proto.V5, false, 30, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			watch := nodetest.Connect(t, b.Addr, tc.v, "watch")
			watch.Subscribe(1, 1, "will/#")

			cp := lcClean("willing")
			if tc.resume || tc.willDelay > 0 {
				// A will delay applies only to a session that outlives its connection.
				cp = lcResumable(tc.v, "willing")
			}
			cp.Will = &proto.Will{Topic: "will/willing", Payload: []byte("bye"), QoS: 1}
			if tc.willDelay > 0 {
				cp.Will.Props.WillDelay = tc.willDelay
				cp.Will.Props.Set(proto.PropWillDelay)
			}
			old, _ := lcAccepted(t, b.Addr, tc.v, cp)
			lcPing(t, old)

			next := lcClean("willing")
			if tc.resume {
				next = lcResumable(tc.v, "willing")
			}
			c, _ := lcAccepted(t, b.Addr, tc.v, next)
			lcClosedFor(t, old, tc.v, proto.SessionTakenOver)
			if tc.published {
				watch.ExpectPublish("will/willing", "bye")
			}
			watch.ExpectNothing(lcQuiet)
			lcPing(t, c)
		})
	}
}

func TestTakeoverConcurrent(t *testing.T) {
	// Ten connections CONNECT with the same client id at once. Each is accepted in
	// turn and taken over by the next, so all ten get CONNACK, exactly one stays
	// connected and serves PINGREQ, the nine others are closed (5.0: after
	// DISCONNECT 0x8E), and no goroutine is left behind.
	const n = 10
	for _, v := range lcModern {
		t.Run(v.String(), func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after the broker stopped
			b := nodetest.Start(t, lcConfig())
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait) // after the sockets are closed (cleanups run last first)

			connect, err := (&proto.Connect{Version: v, ClientID: "herd", CleanStart: true, KeepAlive: 60}).Append(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			type connected struct {
				i   int
				ack *proto.Connack
				err error
			}
			type ended struct {
				i    int
				got  []proto.Packet // packets after CONNACK, before the end
				pong bool           // the connection answered PINGREQ
				err  error          // the read error that ended it otherwise
			}
			acks := make(chan connected, n)
			ends := make(chan ended, n)
			start := make(chan struct{})
			clients := make([]*nodetest.Client, n)
			for i := range clients {
				clients[i] = nodetest.Dial(t, b.Addr, v)
			}
			for i, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					// No t.Fatal here: report to the test goroutine instead.
					if _, err := c.Conn.Write(connect); err != nil {
						acks <- connected{i: i, err: err}
						return
					}
					p, err := c.RecvWithin(5 * time.Second)
					ack, _ := p.(*proto.Connack)
					if err == nil && ack == nil {
						err = fmt.Errorf("first packet %s, want CONNACK", nodetest.String(p))
					}
					acks <- connected{i: i, ack: ack, err: err}
					if err != nil {
						return
					}
					var got []proto.Packet
					for {
						p, err := c.RecvWithin(nodetest.Timeout)
						if err != nil {
							ends <- ended{i: i, got: got, err: err}
							return
						}
						if _, ok := p.(*proto.Pingresp); ok {
							ends <- ended{i: i, got: got, pong: true}
							return
						}
						got = append(got, p)
					}
				}()
			}
			close(start)

			timeout := time.After(nodetest.Timeout)
			for range n {
				select {
				case r := <-acks:
					if r.err != nil {
						t.Fatalf("connection %d: no CONNACK: %v", r.i, r.err)
					}
					if r.ack.ReasonCode != proto.Success {
						t.Fatalf("connection %d refused: %v", r.i, r.ack.ReasonCode)
					}
				case <-timeout:
					t.Fatalf("not every connection got its CONNACK in %v", nodetest.Timeout)
				}
			}
			closed := map[int]bool{}
			for len(closed) < n-1 {
				select {
				case e := <-ends:
					if e.pong {
						t.Fatalf("connection %d answered a PINGREQ nobody sent", e.i)
					}
					if ne, ok := e.err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("connection %d neither closed nor served", e.i)
					}
					if v == proto.V5 {
						d, ok := lcSoleDisconnect(e.got)
						if !ok || d.ReasonCode != proto.SessionTakenOver {
							t.Errorf("connection %d got %s before closing, want DISCONNECT 0x8E", e.i, lcPackets(e.got))
						}
					} else if len(e.got) != 0 {
						t.Errorf("connection %d got %s before closing, want nothing", e.i, lcPackets(e.got))
					}
					closed[e.i] = true
				case <-timeout:
					t.Fatalf("%d of %d taken-over connections closed in %v", len(closed), n-1, nodetest.Timeout)
				}
			}
			survivor := -1
			for i := range n {
				if !closed[i] {
					survivor = i
				}
			}
			if _, err := clients[survivor].Conn.Write([]byte{byte(proto.PINGREQ) << 4, 0}); err != nil {
				t.Fatalf("write PINGREQ to the survivor: %v", err)
			}
			select {
			case e := <-ends:
				if e.i != survivor || !e.pong || len(e.got) != 0 {
					t.Fatalf("connection %d ended with %s, err %v; want PINGRESP on survivor %d", e.i, lcPackets(e.got), e.err, survivor)
				}
			case <-timeout:
				t.Fatalf("survivor %d did not answer PINGREQ", survivor)
			}
			nodetest.Eventually(t, "one connected client and one session", func() bool {
				return b.Stats.Connected.Load() == 1 && b.SessionCount() == 1
			})
		})
	}
}

func lcSoleDisconnect(ps []proto.Packet) (*proto.Disconnect, bool) {
	if len(ps) != 1 {
		return nil, false
	}
	d, ok := ps[0].(*proto.Disconnect)
	return d, ok
}

func TestTakeoverOfBusyConnection(t *testing.T) {
	// [MQTT-3.1.4-2] (5.0 [MQTT-3.1.4-3]) the takeover must not depend on what the
	// old connection is doing: here its reader is busy handling a SUBSCRIBE that
	// brings many retained messages when the new CONNECT arrives. The old connection
	// must still be closed promptly and the new one accepted, not only once the old
	// client happens to send another packet or its keepalive (60s) runs out.
	const retained = 20000
	for _, v := range lcModern {
		t.Run(v.String(), func(t *testing.T) {
			b := nodetest.Start(t, lcConfig())
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			var batch []byte
			for i := range retained {
				p := &proto.Publish{Topic: fmt.Sprintf("r/%d", i), Retain: true, Payload: []byte("x")}
				var err error
				if batch, err = p.Append(batch, v); err != nil {
					t.Fatal(err)
				}
			}
			pub.SendRaw(batch)
			lcPing(t, pub) // the broker handles a connection's packets in order
			if n := b.RetainedCount(); n != retained {
				t.Fatalf("%d retained messages stored, want %d", n, retained)
			}

			old := nodetest.Connect(t, b.Addr, v, "busy")
			old.Subscribe(1, 0, "r/#") // SUBACK comes before the retained messages
			c := nodetest.Dial(t, b.Addr, v)
			start := time.Now()
			c.Send(&proto.Connect{Version: v, ClientID: "busy", CleanStart: true, KeepAlive: 60})
			p, err := c.RecvWithin(3 * time.Second)
			if err != nil {
				t.Fatalf("no CONNACK %v after taking over a busy connection: %v", time.Since(start), err)
			}
			if ack, ok := p.(*proto.Connack); !ok || ack.ReasonCode != proto.Success {
				t.Fatalf("got %s, want an accepting CONNACK", nodetest.String(p))
			}
			lcPing(t, c)
		})
	}
}
