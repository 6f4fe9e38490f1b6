package node_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// itGoOffline connects id with a persistent session, subscribes it to filter at qos and
// disconnects it, returning once the broker holds the session offline. n is the
// number of other clients connected meanwhile.
func itGoOffline(t *testing.T, b *nodetest.Broker, v proto.Version, id, filter string, qos byte, n int64) {
	t.Helper()
	c, ack := itConnect(t, b.Addr, v, itPersistent(v, id, true, 60))
	if ack.SessionPresent {
		t.Fatalf("first connection of %s: session present 1", id)
	}
	c.Subscribe(1, qos, filter)
	c.Disconnect()
	itSettled(t, b, n)
}

// TestOfflineQueue: a persistent session (3.1.1 clean session 0, 5.0 session expiry
// above 0) keeps the QoS 1 and 2 messages that match its subscriptions while its
// client is away [MQTT-3.1.2-5] and delivers them in order [MQTT-4.6.0-6] after
// a CONNACK with session present 1 [MQTT-3.2.2-2]. QoS 0 messages are not queued
// (the default; allowed by [MQTT-3.1.2-5]).
func TestOfflineQueue(t *testing.T) {
	t.Parallel()
	for _, v := range itVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			itSettled(t, b, 1)
			itGoOffline(t, b, v, "sub", "off/#", 2, 1)

			msgs := []struct {
				payload string
				qos     byte
			}{{"1", 1}, {"2", 2}, {"zero", 0}, {"3", 1}, {"4", 2}, {"5", 1}}
			for i, m := range msgs {
				pub.Publish(&proto.Publish{Topic: "off/t", QoS: m.qos, PacketID: uint16(i + 1), Payload: []byte(m.payload)})
			}
			if n := b.Stats.Dropped[session.DropOffline].Load(); n != 1 {
				t.Errorf("Dropped[offline] = %d, want 1 (the QoS 0 message)", n)
			}

			sub, ack := itConnect(t, b.Addr, v, itPersistent(v, "sub", false, 60))
			if !ack.SessionPresent {
				t.Fatalf("reconnect: session present 0, want 1")
			}
			got := itCollect(t, sub, 5)
			if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(itPayloads(got), want) {
				t.Fatalf("delivered %q, want %q", itPayloads(got), want)
			}
			for i, want := range []byte{1, 2, 1, 2, 1} {
				if got[i].QoS != want || got[i].Dup {
					t.Errorf("message %s: QoS %d dup %v, want QoS %d dup false", got[i].Payload, got[i].QoS, got[i].Dup, want)
				}
			}
			sub.ExpectNothing(itQuiet)
		})
	}
}

// TestOfflineQueueBound: the queue of an offline session holds at most
// Session.MaxQueued messages; past it the newest message is dropped, or with
// DropOldest the oldest, and each drop is counted in Stats.Dropped[DropQueueFull].
func TestOfflineQueueBound(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		dropOldest bool
		want       []string
	}{
		{"drop newest", false, []string{"0", "1", "2", "3", "4"}},
		{"drop oldest", true, []string{"15", "16", "17", "18", "19"}},
	}
	for _, v := range itVersions {
		for _, tc := range cases {
			t.Run(v.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				cfg := node.DefaultConfig()
				cfg.Session.MaxQueued = 5
				cfg.Session.MaxInflight = 2
				cfg.Session.DropOldest = tc.dropOldest
				b := nodetest.Start(t, cfg)
				pub := nodetest.Connect(t, b.Addr, v, "pub")
				itSettled(t, b, 1)
				itGoOffline(t, b, v, "sub", "q/t", 1, 1)
				for i := range 20 {
					pub.Publish(&proto.Publish{Topic: "q/t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte(strconv.Itoa(i))})
				}
				if n := b.Stats.Dropped[session.DropQueueFull].Load(); n != 15 {
					t.Errorf("Stats.Dropped[DropQueueFull] = %d, want 15", n)
				}
				sub, ack := itConnect(t, b.Addr, v, itPersistent(v, "sub", false, 60))
				if !ack.SessionPresent {
					t.Fatalf("reconnect: session present 0, want 1")
				}
				got := itCollect(t, sub, len(tc.want))
				if !slices.Equal(itPayloads(got), tc.want) {
					t.Fatalf("delivered %q, want %q", itPayloads(got), tc.want)
				}
				sub.ExpectNothing(itQuiet)
			})
		}
	}
}

// TestSessionLifetime: whether a session survives its connection, seen from the
// session present flag of the next CONNECT with clean start 0 [MQTT-3.2.2-2]
// [MQTT-3.2.2-3], the broker's SessionCount, and whether a message published
// meanwhile is delivered.
func TestSessionLifetime(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		v    proto.Version
		cp   *proto.Connect
		// wait is how long the session should outlive the connection: 0 means it
		// ends at the disconnect, -1 that it is still there when the client returns
		// at once.
		wait        time.Duration
		wantPresent bool
	}{
		// [MQTT-3.1.2-6] clean session 1: the session ends with the connection.
		{"3.1.1 clean session 1", proto.V311, &proto.Connect{ClientID: "s", CleanStart: true}, 0, false},
		{"3.1.1 clean session 0", proto.V311, itPersistent(proto.V311, "s", false, 0), -1, true},
		// 5.0: no Session Expiry Interval means 0, the session ends at the disconnect
		// [MQTT-3.1.2-23].
		{"5.0 expiry absent", proto.V5, &proto.Connect{ClientID: "s", CleanStart: true}, 0, false},
		{"5.0 expiry 0", proto.V5, itPersistent(proto.V5, "s", true, 0), 0, false},
		{"5.0 expiry 1s, back after it", proto.V5, itPersistent(proto.V5, "s", true, 1), time.Second, false},
		{"5.0 expiry 60s, back at once", proto.V5, itPersistent(proto.V5, "s", true, 60), -1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			c, _ := itConnect(t, b.Addr, tc.v, tc.cp)
			c.Subscribe(1, 1, "life/t")
			c.Disconnect()
			gone := time.Now()
			itSettled(t, b, 0)
			switch {
			case tc.wait == 0:
				if n := b.SessionCount(); n != 0 {
					t.Fatalf("SessionCount = %d right after the disconnect, want 0", n)
				}
			case tc.wait > 0:
				if n := b.SessionCount(); n != 1 {
					t.Fatalf("SessionCount = %d right after the disconnect, want 1", n)
				}
				nodetest.Eventually(t, "the session to expire", func() bool { return b.SessionCount() == 0 })
				if d := time.Since(gone); d < tc.wait {
					t.Fatalf("session ended %v after the disconnect, before its expiry %v", d, tc.wait)
				}
				if n := b.SubscriptionCount(); n != 0 {
					t.Fatalf("SubscriptionCount = %d after the session expired, want 0", n)
				}
			}
			pub := nodetest.Connect(t, b.Addr, tc.v, "pub")
			pub.Publish(&proto.Publish{Topic: "life/t", QoS: 1, PacketID: 1, Payload: []byte("m")})
			back := &proto.Connect{ClientID: "s", KeepAlive: 60}
			if tc.v == proto.V5 {
				back.Props.SessionExpiry = 60
				back.Props.Set(proto.PropSessionExpiry)
			}
			c2, ack := itConnect(t, b.Addr, tc.v, back)
			if ack.SessionPresent != tc.wantPresent {
				t.Fatalf("session present %v, want %v", ack.SessionPresent, tc.wantPresent)
			}
			if tc.wantPresent {
				c2.ExpectPublish("life/t", "m")
			}
			c2.ExpectNothing(itQuiet)
		})
	}
}

// TestDropTooLarge (5.0): a message larger than the Maximum Packet Size the client
// announced is not sent to it [MQTT-3.1.2-24] [MQTT-3.1.2-25]; it is dropped for that
// client alone, counted in Stats.Dropped[DropTooLarge], and the messages after it still
// come.
func TestDropTooLarge(t *testing.T) {
	t.Parallel()
	if !itInChildProcess(t) {
		return
	}
	b := nodetest.Start(t, node.DefaultConfig())
	cp := &proto.Connect{ClientID: "small", CleanStart: true, KeepAlive: 60}
	cp.Props.MaximumPacketSize = 128
	cp.Props.Set(proto.PropMaximumPacketSize)
	small, _ := itConnect(t, b.Addr, proto.V5, cp)
	small.Subscribe(1, 1, "big/#")
	large := nodetest.Connect(t, b.Addr, proto.V5, "large")
	large.Subscribe(1, 1, "big/#")

	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	big := string(make([]byte, 1024))
	for i, m := range []struct{ topic, payload string }{{"big/1", "s"}, {"big/2", big}, {"big/3", "a"}} {
		pub.Publish(&proto.Publish{Topic: m.topic, QoS: 1, PacketID: uint16(i + 1), Payload: []byte(m.payload)})
	}
	if got := itPayloads(itCollect(t, small, 2)); !slices.Equal(got, []string{"s", "a"}) {
		t.Fatalf("client with a 128-byte limit got %q, want [s a]", got)
	}
	small.ExpectNothing(itQuiet)
	if got := itPayloads(itCollect(t, large, 3)); !slices.Equal(got, []string{"s", big, "a"}) {
		t.Fatalf("client without a limit got %d messages, want all 3", len(got))
	}
	// A variable index: Stats.Dropped must have a counter for every DropReason.
	reason := session.DropTooLarge
	if int(reason) >= len(b.Stats.Dropped) {
		t.Fatalf("Stats.Dropped has %d counters, none for DropTooLarge (%d)", len(b.Stats.Dropped), reason)
	}
	if n := b.Stats.Dropped[reason].Load(); n != 1 {
		t.Fatalf("Stats.Dropped[DropTooLarge] = %d, want 1", n)
	}
}

// itInChildProcess runs the calling test again in a child process and reports whether
// this is that child, which then runs the test's body. It isolates a test whose
// failure mode is a panic on a broker goroutine: such a panic would end the whole test
// binary, hiding the results of every other test in the package.
func itInChildProcess(t *testing.T) bool {
	t.Helper()
	const env = "SKEIN_NODE_CHILD_TEST"
	if os.Getenv(env) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a child process: %v\n%s", t.Name(), err, out)
	}
	return false
}
