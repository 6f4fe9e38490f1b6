package node_test

import (
	"net"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// itRawPublish encodes a PUBLISH by hand, so that a test can send what the encoder
// refuses (a bad topic, packet id 0).
func itRawPublish(v proto.Version, topic []byte, qos byte, id uint16, payload string) []byte {
	var body []byte
	body = append(body, byte(len(topic)>>8), byte(len(topic)))
	body = append(body, topic...)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	if v == proto.V5 {
		body = append(body, 0) // property length
	}
	body = append(body, payload...)
	return append(proto.AppendVarint([]byte{byte(proto.PUBLISH)<<4 | qos<<1}, len(body)), body...)
}

// TestBadInput sends one malformed or forbidden packet on a connection: the broker
// closes that connection (5.0: after a DISCONNECT with the reason [MQTT-4.13.1-1])
// while two other clients connected at the same time keep working.
func TestBadInput(t *testing.T) {
	t.Parallel()
	const maxPacket = 1024
	cases := []struct {
		name string
		// connect says whether the bad client completes CONNECT first.
		connect bool
		send    func(t *testing.T, c *nodetest.Client)
		// code is the DISCONNECT reason a 5.0 client gets; 0: no packet at all.
		code proto.ReasonCode
		// clientCloses is set when the bad client itself closes the socket.
		clientCloses bool
	}{
		{"truncated packet then close", true, func(t *testing.T, c *nodetest.Client) {
			// A PUBLISH announcing 20 bytes of which 5 come before the close.
			c.SendRaw([]byte{0x30, 20, 0, 3, 'a', '/', 'b'})
			c.Conn.Close()
		}, 0, true},
		// The announced size is over MaxPacketSize: refused before the body is read
		// (5.0 section 3.1.2.11.4 for the server's limit).
		{"remaining length over the maximum packet size", true, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw(proto.AppendVarint([]byte{0x30}, 2*maxPacket))
		}, proto.PacketTooLarge, false},
		// The remaining length takes at most 4 bytes (3.1.1 section 2.2.3, 5.0
		// section 1.5.5).
		{"5-byte remaining length", true, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F})
		}, proto.MalformedPacket, false},
		// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
		{"second CONNECT", true, func(t *testing.T, c *nodetest.Client) {
			c.Send(&proto.Connect{ClientID: "bad", CleanStart: true, Version: c.Version})
		}, proto.ProtocolError, false},
		// [MQTT-3.1.0-1] the first packet must be CONNECT; no DISCONNECT before
		// CONNACK.
		{"PUBLISH before CONNECT", false, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw(itRawPublish(c.Version, []byte("ok/t"), 0, 0, "x"))
		}, 0, false},
		// [MQTT-3.3.2-2] no wildcards in a topic name.
		{"wildcard in a topic name", true, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw(itRawPublish(c.Version, []byte("ok/+"), 0, 0, "x"))
		}, proto.TopicNameInvalid, false},
		{"multi-level wildcard in a topic name", true, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw(itRawPublish(c.Version, []byte("ok/#"), 1, 1, "x"))
		}, proto.TopicNameInvalid, false},
		// [MQTT-2.3.1-1] a QoS 1 PUBLISH needs a non-zero packet identifier.
		{"QoS 1 PUBLISH with packet id 0", true, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw(itRawPublish(c.Version, []byte("ok/t"), 1, 0, "x"))
		}, proto.MalformedPacket, false},
		// [MQTT-1.5.4-1] (3.1.1 [MQTT-1.5.3-1]) ill-formed UTF-8 is a malformed packet.
		{"invalid UTF-8 in a topic", true, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw(itRawPublish(c.Version, []byte{'o', 'k', '/', 0xC3, 0x28}, 0, 0, "x"))
		}, proto.MalformedPacket, false},
		// [MQTT-1.5.4-2] (3.1.1 [MQTT-1.5.3-2]) no U+0000 in a string.
		{"U+0000 in a topic", true, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw(itRawPublish(c.Version, []byte{'o', 'k', '/', 0}, 0, 0, "x"))
		}, proto.MalformedPacket, false},
		// Packet type 0 is reserved (section 2.2.1).
		{"reserved packet type 0", true, func(t *testing.T, c *nodetest.Client) {
			c.SendRaw([]byte{0x00, 0x00})
		}, proto.MalformedPacket, false},
		// [MQTT-3.8.1-1] SUBSCRIBE's fixed header flags are 0010.
		{"SUBSCRIBE with flags 0000", true, func(t *testing.T, c *nodetest.Client) {
			b, err := (&proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: "ok/t"}}}).Append(nil, c.Version)
			if err != nil {
				t.Fatalf("encode SUBSCRIBE: %v", err)
			}
			b[0] &^= 0x0F
			c.SendRaw(b)
		}, proto.MalformedPacket, false},
	}
	for _, v := range itVersions {
		for _, tc := range cases {
			t.Run(v.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				cfg := node.DefaultConfig()
				cfg.MaxPacketSize = maxPacket
				b := nodetest.Start(t, cfg)
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				sub.Subscribe(1, 1, "ok/t")
				pub := nodetest.Connect(t, b.Addr, v, "pub")
				bad := nodetest.Dial(t, b.Addr, v)
				if tc.connect {
					if ack := bad.Connect(&proto.Connect{ClientID: "bad", CleanStart: true}); ack.ReasonCode != 0 {
						t.Fatalf("CONNECT refused: %v", ack.ReasonCode)
					}
				}
				tc.send(t, bad)
				switch {
				case tc.clientCloses:
				case tc.code == 0:
					if got := bad.ExpectClosed(); len(got) != 0 {
						t.Fatalf("got %s before the close, want nothing", nodetest.String(got[0]))
					}
				default:
					itClosedWith(t, bad, tc.code)
				}
				itSettled(t, b, 2)
				// The other clients were not disturbed.
				for i := range 3 {
					payload := strconv.Itoa(i)
					pub.Publish(&proto.Publish{Topic: "ok/t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte(payload)})
					sub.ExpectPublish("ok/t", payload)
				}
				// Nothing the bad client sent was delivered.
				sub.ExpectNothing(itQuiet)
			})
		}
	}
}

// TestSlowConsumer: a subscriber that connects and never reads does not slow anyone
// else down. Its write queue is bounded (MaxWriteQueue): once full, its QoS 0
// messages are dropped and counted instead of waited for, the publisher's PUBACKs
// keep coming, another subscriber gets every message, and after WriteTimeout of
// blocked writes the broker closes the slow connection.
func TestSlowConsumer(t *testing.T) {
	const (
		n            = 200
		writeTimeout = 2 * time.Second
	)
	cfg := node.DefaultConfig()
	cfg.MaxWriteQueue = 16
	cfg.WriteTimeout = writeTimeout
	b := nodetest.Start(t, cfg)

	slow := nodetest.Connect(t, b.Addr, proto.V311, "slow")
	slow.Subscribe(1, 0, "s/t")
	itShrinkReadBuffer(t, slow)

	fast := nodetest.Connect(t, b.Addr, proto.V311, "fast")
	fast.Subscribe(1, 1, "s/t")
	received := make(chan int, 1)
	go func() { received <- itReadAndAck(fast, n) }()

	pub := nodetest.Connect(t, b.Addr, proto.V311, "pub")
	payload := make([]byte, 64<<10)
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		pub.Publish(&proto.Publish{Topic: "s/t", QoS: 1, PacketID: uint16(i + 1), Payload: payload})
		slowest = max(slowest, time.Since(start))
	}
	if got := <-received; got != n {
		t.Fatalf("the other subscriber got %d messages, want %d", got, n)
	}
	// Had the publisher waited on the slow subscriber's socket, one PUBACK would have
	// taken about WriteTimeout.
	if slowest > writeTimeout/2 {
		t.Errorf("slowest PUBACK took %v: the publisher waited for the slow subscriber", slowest)
	}
	if d := b.Stats.Dropped[session.DropOutbox].Load(); d == 0 {
		t.Errorf("Dropped[outbox_full] = 0: the slow subscriber's write queue never filled, the test proves nothing")
	}
	slowClosed := slices.Index(node.CloseReasons(), "slow_consumer")
	nodetest.Eventually(t, "the slow consumer to be closed", func() bool {
		return b.Stats.Closed[slowClosed].Load() == 1 && b.Stats.Connected.Load() == 2
	})
}

// TestSlowReaderCatchesUp: a subscriber that stops reading until its write queue
// overflows, then reads again, gets the QoS 1 messages published meanwhile; QoS 1
// is "at least once" (section 4.3.2) and the connection is healthy again. With the
// event loop, the writer waited for the socket to have room and is woken by it.
func TestSlowReaderCatchesUp(t *testing.T) {
	t.Parallel()
	itPaths(t, testSlowReaderCatchesUp)
}

func testSlowReaderCatchesUp(t *testing.T, cfg node.Config) {
	cfg.MaxWriteQueue = 16
	b := nodetest.Start(t, cfg)
	sub := nodetest.Connect(t, b.Addr, proto.V311, "sub")
	sub.Subscribe(1, 0, "mix/q0")
	sub.Subscribe(2, 1, "mix/q1")
	// itShrinkReadBuffer(t, sub)

	// Fill the subscriber's socket and then its write queue with QoS 0 messages,
	// until the broker starts dropping them.
	pub := nodetest.Connect(t, b.Addr, proto.V311, "pub")
	payload := make([]byte, 64<<10)
	for sent := 0; b.Stats.Dropped[session.DropOutbox].Load() == 0; sent += 10 {
		if sent >= 1000 {
			t.Fatalf("published %d MB without filling the subscriber's write queue", sent*len(payload)>>20)
		}
		for range 10 {
			pub.Send(&proto.Publish{Topic: "mix/q0", Payload: payload})
		}
		pub.Send(&proto.Pingreq{}) // handled in order: after PINGRESP the above were routed
		nodetest.Expect[*proto.Pingresp](pub)
	}
	// The write queue is full and nothing is inflight: this QoS 1 message cannot be
	// pushed now.
	pub.Publish(&proto.Publish{Topic: "mix/q1", QoS: 1, PacketID: 1, Payload: []byte("while full")})

	// The subscriber reads again: after the QoS 0 backlog, the QoS 1 message comes,
	// and so does one published once the queue has drained.
	if !itReadUntil(t, sub, "while full", 5*time.Second) {
		t.Fatalf("QoS 1 message published while the write queue was full never delivered after the subscriber caught up")
	}
	pub.Publish(&proto.Publish{Topic: "mix/q1", QoS: 1, PacketID: 2, Payload: []byte("after")})
	if !itReadUntil(t, sub, "after", 5*time.Second) {
		t.Fatalf("QoS 1 message published after the subscriber caught up never delivered")
	}
}

// TestNoGoroutineLeak: 50 clients connect and leave (half with DISCONNECT, half by
// closing the socket); afterwards the broker is back to the goroutines it had before.
func TestNoGoroutineLeak(t *testing.T) {
	b := nodetest.Start(t, node.DefaultConfig())
	before := runtime.NumGoroutine()
	for i := range 50 {
		v := itVersions[i%2]
		c := nodetest.Connect(t, b.Addr, v, "c"+strconv.Itoa(i))
		c.Subscribe(1, 1, "leak/"+strconv.Itoa(i))
		if i%4 < 2 {
			c.Disconnect()
		} else {
			c.Conn.Close()
		}
	}
	// With the event loop a connection has no goroutine until its socket reports
	// the close, so first wait for every connection to be gone.
	nodetest.Eventually(t, "every connection gone", func() bool {
		return b.Stats.Connected.Load() == 0 && b.SessionCount() == 0
	})
	deadline := time.Now().Add(nodetest.Timeout)
	for {
		now := runtime.NumGoroutine()
		if now <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after 50 clients came and went, %d before:\n%s", now, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := b.Stats.Connected.Load(); n != 0 {
		t.Fatalf("Connected = %d, want 0", n)
	}
	if n := b.SessionCount(); n != 0 {
		t.Fatalf("SessionCount = %d, want 0 (clean sessions)", n)
	}
}

// itShrinkReadBuffer makes c's socket receive buffer small, so that a client that does
// not read fills the broker's side quickly.
func itShrinkReadBuffer(t *testing.T, c *nodetest.Client) {
	t.Helper()
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok {
		t.Fatalf("client connection is %T, not TCP", c.Conn)
	}
	if err := tc.SetReadBuffer(4096); err != nil {
		t.Fatalf("set read buffer: %v", err)
	}
}

// itReadAndAck reads up to n PUBLISH packets from c on a goroutine of its own (it must
// not fail the test from there), acknowledging QoS 1 ones, and returns how many came
// before n or an error.
func itReadAndAck(c *nodetest.Client, n int) int {
	got := 0
	for got < n {
		p, err := c.RecvWithin(nodetest.Timeout)
		if err != nil {
			return got
		}
		pub, ok := p.(*proto.Publish)
		if !ok {
			return got
		}
		got++
		if pub.QoS == 1 {
			// A QoS 1 PUBLISH has a non-zero packet id, so its PUBACK always encodes.
			ack, _ := (&proto.Puback{PacketID: pub.PacketID}).Append(nil, c.Version)
			if _, err := c.Conn.Write(ack); err != nil {
				return got
			}
		}
	}
	return got
}

// itReadUntil reads PUBLISH packets from c, acknowledging them, until one with payload
// want arrives (true) or d passes (false).
func itReadUntil(t *testing.T, c *nodetest.Client, want string, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		p, err := c.RecvWithin(left)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false
		}
		if err != nil {
			t.Fatalf("read packet: %v", err)
		}
		pub, ok := p.(*proto.Publish)
		if !ok {
			t.Fatalf("got %s, want PUBLISH", nodetest.String(p))
		}
		c.Ack(pub)
		if string(pub.Payload) == want {
			return true
		}
	}
}
