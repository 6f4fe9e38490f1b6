package node_test

import (
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// itWillConnect returns a clean-session CONNECT for id carrying a will on will/<id>.
func itWillConnect(id string, qos byte, retain bool) *proto.Connect {
	return &proto.Connect{ClientID: id, CleanStart: true, KeepAlive: 60,
		Will: &proto.Will{Topic: "will/" + id, Payload: []byte("gone " + id), QoS: qos, Retain: retain}}
}

// TestWillOnAbnormalDisconnect: the will is published when the connection ends
// without a DISCONNECT that discards it [MQTT-3.1.2-8], and not after a normal
// DISCONNECT [MQTT-3.1.2-10] [MQTT-3.14.4-3].
func TestWillOnAbnormalDisconnect(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		versions []proto.Version
		end      func(c *nodetest.Client)
		wantWill bool
	}{
		{"socket closed without DISCONNECT", itVersions, func(c *nodetest.Client) {
			c.Conn.Close()
		}, true},
		{"protocol error after CONNECT", itVersions, func(c *nodetest.Client) {
			c.SendRaw([]byte{0x00, 0x00}) // reserved packet type 0 (section 2.2.1)
			c.ExpectClosed()
		}, true},
		{"normal DISCONNECT", itVersions, func(c *nodetest.Client) {
			c.Disconnect()
		}, false},
		// 5.0: 0x04 Disconnect with Will Message asks for the will to be published.
		{"DISCONNECT 0x04", []proto.Version{proto.V5}, func(c *nodetest.Client) {
			c.Send(&proto.Disconnect{ReasonCode: proto.DisconnectWithWill})
			c.ExpectClosed()
		}, true},
		// 5.0: only a DISCONNECT with 0x00 deletes the will [MQTT-3.1.2-10]; section
		// 3.1.2.5 lists "the Client closes the Network Connection without first
		// sending a DISCONNECT packet with a Reason Code 0x00" among the cases that
		// publish it.
		{"DISCONNECT 0x80", []proto.Version{proto.V5}, func(c *nodetest.Client) {
			c.Send(&proto.Disconnect{ReasonCode: proto.UnspecifiedError})
			c.ExpectClosed()
		}, true},
	}
	for _, tc := range cases {
		for _, v := range tc.versions {
			t.Run(v.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				b := nodetest.Start(t, node.DefaultConfig())
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				sub.Subscribe(1, 1, "will/#")
				c, _ := itConnect(t, b.Addr, v, itWillConnect("w", 1, false))
				itSettled(t, b, 2)
				tc.end(c)
				if !tc.wantWill {
					itSettled(t, b, 1) // the will would be published by now
					sub.ExpectNothing(itQuiet)
					return
				}
				got := sub.ExpectPublish("will/w", "gone w")
				if got.QoS != 1 || got.Retain {
					t.Fatalf("will delivered at QoS %d retain %v, want QoS 1 retain false", got.QoS, got.Retain)
				}
			})
		}
	}
}

// TestWillRetain: a will with Will Retain set is published as a retained message
// [MQTT-3.1.2-17], so a client subscribing later gets it with RETAIN 1; without Will
// Retain it is not retained [MQTT-3.1.2-16].
func TestWillRetain(t *testing.T) {
	t.Parallel()
	for _, v := range itVersions {
		for _, retain := range []bool{true, false} {
			name := v.String() + "/will retain 0"
			if retain {
				name = v.String() + "/will retain 1"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := nodetest.Start(t, node.DefaultConfig())
				early := nodetest.Connect(t, b.Addr, v, "early")
				early.Subscribe(1, 1, "will/#")
				c, _ := itConnect(t, b.Addr, v, itWillConnect("w", 1, retain))
				c.Conn.Close()
				// Once the live subscriber has it, the will went through the retained store.
				if got := early.ExpectPublish("will/w", "gone w"); got.Retain {
					t.Errorf("will delivered to an existing subscription with RETAIN 1 [MQTT-3.3.1-9]")
				}
				want := 0
				if retain {
					want = 1
				}
				if n := b.RetainedCount(); n != want {
					t.Fatalf("RetainedCount = %d, want %d", n, want)
				}
				late := nodetest.Connect(t, b.Addr, v, "late")
				late.Subscribe(1, 1, "will/#")
				if !retain {
					late.ExpectNothing(itQuiet)
					return
				}
				if got := late.ExpectPublish("will/w", "gone w"); !got.Retain {
					t.Fatalf("retained will sent to a new subscription with RETAIN 0 [MQTT-3.3.1-8]")
				}
			})
		}
	}
}

// TestWillQoS: the will is published at its Will QoS (section 3.1.2.6) and delivered
// at the lower of that and the subscription's QoS [MQTT-3.8.4-6].
func TestWillQoS(t *testing.T) {
	t.Parallel()
	cases := []struct {
		will, sub, want byte
	}{
		{1, 2, 1},
		{2, 1, 1},
		{0, 2, 0},
		{2, 2, 2},
	}
	for _, v := range itVersions {
		for _, tc := range cases {
			name := v.String() + "/will qos " + string('0'+tc.will) + " sub qos " + string('0'+tc.sub)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := nodetest.Start(t, node.DefaultConfig())
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				sub.Subscribe(1, tc.sub, "will/#")
				c, _ := itConnect(t, b.Addr, v, itWillConnect("w", tc.will, false))
				c.Conn.Close()
				got := itCollect(t, sub, 1)[0]
				if got.Topic != "will/w" || got.QoS != tc.want {
					t.Fatalf("got %s at QoS %d, want will/w at QoS %d", got.Topic, got.QoS, tc.want)
				}
			})
		}
	}
}

// TestWillDelay (5.0): with a Will Delay Interval the will waits; it is published when
// the delay passes or the session ends, whichever comes first, and not at all if the
// client reconnects to the session within the delay [MQTT-3.1.3-9] (5.0 section
// 3.1.3.2.2).
func TestWillDelay(t *testing.T) {
	t.Parallel()
	const delay = time.Second
	cases := []struct {
		name   string
		expiry uint32
		// after runs once the client's socket is closed (nil: nothing).
		after func(t *testing.T, b *nodetest.Broker)
		// min and max bound when the will arrives, from the close; max 0: never.
		min, max time.Duration
	}{
		{"published after the delay", 10, nil, delay, 5 * delay},
		{"reconnect within the delay cancels it", 10, func(t *testing.T, b *nodetest.Broker) {
			_, ack := itConnect(t, b.Addr, proto.V5, itPersistent(proto.V5, "w", false, 10))
			if !ack.SessionPresent {
				t.Fatalf("reconnect within the session expiry: session present 0, want 1")
			}
		}, 0, 0},
		// A clean start ends the old session at once, and with it the wait.
		{"clean start reconnect publishes it at once", 10, func(t *testing.T, b *nodetest.Broker) {
			itConnect(t, b.Addr, proto.V5, &proto.Connect{ClientID: "w", CleanStart: true})
		}, 0, delay / 2},
		// The session ends before the delay: the will goes out then.
		{"session expiry shorter than the delay", 1, nil, delay, 4 * delay},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
			sub.Subscribe(1, 1, "will/#")
			cp := itPersistent(proto.V5, "w", true, tc.expiry)
			cp.Will = &proto.Will{Topic: "will/w", Payload: []byte("gone w"), QoS: 1}
			willDelay := uint32(delay / time.Second)
			if tc.expiry == 1 {
				willDelay = 5
			}
			cp.Will.Props.WillDelay = willDelay
			cp.Will.Props.Set(proto.PropWillDelay)
			c, _ := itConnect(t, b.Addr, proto.V5, cp)
			itSettled(t, b, 2)
			closed := time.Now()
			c.Conn.Close()
			if tc.after != nil {
				itSettled(t, b, 1) // the broker saw the close: the will is waiting
				tc.after(t, b)
			}
			if tc.max == 0 {
				sub.ExpectNothing(2 * delay)
				return
			}
			sub.ExpectPublish("will/w", "gone w")
			if d := time.Since(closed); d < tc.min || d > tc.max {
				t.Fatalf("will published %v after the close, want between %v and %v", d, tc.min, tc.max)
			}
		})
	}
}
