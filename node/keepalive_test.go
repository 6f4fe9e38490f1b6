package node_test

import (
	"testing"
	"time"

	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// The keepalive tests wait for real timeouts of a second or more, so their subtests
// run in parallel, each with its own broker, and cover 3.1.1 and 5.0 only: MQTT 3.1
// keepalive works as in 3.1.1 (1.5 x the interval, PINGREQ/PINGRESP, will on
// timeout).

func TestKeepAliveSilentClientClosed(t *testing.T) {
	// [MQTT-3.1.2-24] no packet within one and a half keepalive periods: the server
	// closes the connection, a 5.0 client getting DISCONNECT 0x8D (Keep Alive
	// timeout) first [MQTT-4.13.2-1].
	for _, v := range lcModern {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			c := nodetest.Dial(t, b.Addr, v)
			cp := lcClean("silent")
			cp.KeepAlive = 1
			if ack := c.Connect(cp); ack.ReasonCode != proto.Success {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			start := time.Now()
			lcClosedFor(t, c, v, proto.KeepAliveTimeout)
			// 1.5 x 1s; the bounds leave room for a loaded machine.
			if d := time.Since(start); d < time.Second || d > 5*time.Second {
				t.Fatalf("closed after %v, want about 1.5s (1s..5s)", d)
			}
		})
	}
}

func TestKeepAlivePingKeepsConnection(t *testing.T) {
	// A client that sends PINGREQ every half keepalive stays connected well past
	// 1.5 x keepalive, and every PINGREQ gets a PINGRESP [MQTT-3.12.4-1].
	for _, v := range lcModern {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			c := nodetest.Dial(t, b.Addr, v)
			cp := lcClean("pinger")
			cp.KeepAlive = 1
			if ack := c.Connect(cp); ack.ReasonCode != proto.Success {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			start := time.Now()
			for i := 0; time.Since(start) < 3200*time.Millisecond; i++ {
				lcPing(t, c)
				// Nothing else arrives between pings: no DISCONNECT, no close.
				c.ExpectNothing(500 * time.Millisecond)
			}
			lcPing(t, c)
		})
	}
}

func TestKeepAliveZeroNeverTimesOut(t *testing.T) {
	// [MQTT-3.1.2-10] (3.1.1 §3.1.2.10, 5.0 §3.1.2.10) keep alive 0 turns the
	// mechanism off: the server never closes a silent client, and in particular not
	// after ConnectTimeout (300ms here).
	for _, v := range lcModern {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			c := nodetest.Dial(t, b.Addr, v)
			cp := lcClean("forever")
			cp.KeepAlive = 0
			if ack := c.Connect(cp); ack.ReasonCode != proto.Success {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			c.ExpectNothing(2 * time.Second)
			lcPing(t, c)
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	// A socket that does not complete a CONNECT within ConnectTimeout is closed,
	// without any answer (MQTT 3.1.1 §3.1.4: "a reasonable amount of time").
	connect, err := (&proto.Connect{Version: proto.V311, ClientID: "slow", CleanStart: true, KeepAlive: 60}).Append(nil, proto.V311)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"nothing sent", nil},
		{"first byte only", connect[:1]},
		{"fixed header only", connect[:2]},
		{"half a CONNECT", connect[:len(connect)/2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := lcConfig()
			b := nodetest.Start(t, cfg)
			start := time.Now()
			c := nodetest.Dial(t, b.Addr, proto.V311)
			if len(tc.send) > 0 {
				c.SendRaw(tc.send)
			}
			lcClosedSilently(t, c)
			if d := time.Since(start); d < cfg.ConnectTimeout || d > 3*time.Second {
				t.Fatalf("closed after %v, want ConnectTimeout %v (up to 3s)", d, cfg.ConnectTimeout)
			}
		})
	}
}

func TestKeepAliveWillPublished(t *testing.T) {
	// A keepalive timeout is an abnormal end: the will is published
	// (3.1.1 §3.1.2.5 "fails to communicate within the Keep Alive time",
	// [MQTT-3.1.2-8]; 5.0 §3.1.2.5, will delay 0).
	for _, v := range lcModern {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			watch := nodetest.Connect(t, b.Addr, v, "watch")
			watch.Subscribe(1, 1, "will/#")

			c := nodetest.Dial(t, b.Addr, v)
			cp := lcClean("dying")
			cp.KeepAlive = 1
			cp.Will = &proto.Will{Topic: "will/dying", Payload: []byte("gone"), QoS: 1}
			if ack := c.Connect(cp); ack.ReasonCode != proto.Success {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			start := time.Now()
			// The will is not published while the client is within its keepalive.
			watch.ExpectNothing(800 * time.Millisecond)
			got := watch.ExpectPublish("will/dying", "gone")
			if d := time.Since(start); d < time.Second {
				t.Fatalf("will published after %v, before the keepalive ran out", d)
			}
			if got.QoS != 1 {
				t.Fatalf("will delivered at qos %d, want 1", got.QoS)
			}
			lcClosedFor(t, c, v, proto.KeepAliveTimeout)
		})
	}
}
