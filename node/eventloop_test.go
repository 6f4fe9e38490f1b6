package node_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
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

// The tests in this file hold the reading side of a connection to the edge cases of
// a byte stream: packets cut anywhere, many per read, larger than a read buffer,
// half-closed sockets, clients that stop reading, and shutdown with idle
// connections. Each runs with the event loop and with a goroutine per connection.

// itPaths runs f once with the event loop and once with a goroutine per connection.
func itPaths(t *testing.T, f func(t *testing.T, cfg node.Config)) {
	t.Helper()
	for _, loop := range []bool{true, false} {
		name := "event loop"
		if !loop {
			name = "goroutine per connection"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := node.DefaultConfig()
			cfg.EventLoop = loop
			f(t, cfg)
		})
	}
}

// itEncode encodes packets back to back, as one write would carry them.
func itEncode(t *testing.T, v proto.Version, pkts ...proto.Packet) []byte {
	t.Helper()
	var b []byte
	for _, p := range pkts {
		var err error
		if b, err = p.Append(b, v); err != nil {
			t.Fatalf("encode %s: %v", p.Type(), err)
		}
	}
	return b
}

// itSendRead writes chunk and waits until the broker has read it all, so the next
// chunk reaches it in a read of its own.
func itSendRead(t *testing.T, b *nodetest.Broker, c *nodetest.Client, chunk []byte) {
	t.Helper()
	want := b.Stats.BytesReceived.Load() + int64(len(chunk))
	c.SendRaw(chunk)
	deadline := time.Now().Add(nodetest.Timeout)
	for b.Stats.BytesReceived.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the broker read %d of the %d bytes sent", b.Stats.BytesReceived.Load()-want+int64(len(chunk)), len(chunk))
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// TestPacketSplitAcrossTinyWrites: CONNECT, a PUBLISH with a two-byte remaining
// length and a PINGREQ arrive one byte per read, the fixed headers cut too, and are
// handled as if they came whole.
func TestPacketSplitAcrossTinyWrites(t *testing.T) {
	itPaths(t, func(t *testing.T, cfg node.Config) {
		b := nodetest.Start(t, cfg)
		sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
		sub.Subscribe(1, 1, "tiny/t")
		payload := bytes.Repeat([]byte("p"), 200) // remaining length over 127
		stream := itEncode(t, proto.V5,
			&proto.Connect{Version: proto.V5, ClientID: "tiny", CleanStart: true, KeepAlive: 60},
			&proto.Publish{Topic: "tiny/t", QoS: 1, PacketID: 1, Payload: payload},
			&proto.Pingreq{})
		c := nodetest.Dial(t, b.Addr, proto.V5)
		for i := range stream {
			itSendRead(t, b, c, stream[i:i+1])
		}
		nodetest.Expect[*proto.Connack](c)
		if ack := nodetest.Expect[*proto.Puback](c); ack.PacketID != 1 {
			t.Fatalf("PUBACK for %d, want 1", ack.PacketID)
		}
		nodetest.Expect[*proto.Pingresp](c)
		sub.ExpectPublish("tiny/t", string(payload))
	})
}

// TestManyPacketsInOneWrite: CONNECT and 1000 PUBLISHes in one write of about 50
// KiB, more than a read buffer holds, so packets are cut at the ends of reads:
// every one is handled, in order. (1000 fit the subscriber's inflight window and
// queue, so none is dropped before it reads.)
func TestManyPacketsInOneWrite(t *testing.T) {
	itPaths(t, func(t *testing.T, cfg node.Config) {
		const n = 1000
		b := nodetest.Start(t, cfg)
		sub := nodetest.Connect(t, b.Addr, proto.V311, "sub")
		sub.Subscribe(1, 1, "many/t")
		pkts := []proto.Packet{&proto.Connect{Version: proto.V311, ClientID: "many", CleanStart: true, KeepAlive: 60}}
		for i := range n {
			pkts = append(pkts, &proto.Publish{Topic: "many/t", QoS: 1, PacketID: uint16(i + 1), Payload: fmt.Appendf(nil, "%040d", i)})
		}
		pkts = append(pkts, &proto.Pingreq{})
		c := nodetest.Dial(t, b.Addr, proto.V311)
		c.SendRaw(itEncode(t, proto.V311, pkts...))
		nodetest.Expect[*proto.Connack](c)
		for i := range n {
			if ack := nodetest.Expect[*proto.Puback](c); ack.PacketID != uint16(i+1) {
				t.Fatalf("PUBACK %d is for %d", i+1, ack.PacketID)
			}
		}
		nodetest.Expect[*proto.Pingresp](c)
		for i := range n {
			p := nodetest.Expect[*proto.Publish](sub)
			if string(p.Payload) != fmt.Sprintf("%040d", i) {
				t.Fatalf("message %d is %q", i, p.Payload)
			}
			sub.Ack(p)
		}
	})
}

// TestPacketLargerThanReadBuffer: a 200 KiB PUBLISH sent slowly, in chunks each read
// before the next is sent, arrives whole; one announcing more than MaxPacketSize is
// refused on its fixed header, before any of its body.
func TestPacketLargerThanReadBuffer(t *testing.T) {
	itPaths(t, func(t *testing.T, cfg node.Config) {
		cfg.MaxPacketSize = 256 << 10
		b := nodetest.Start(t, cfg)
		sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
		sub.Subscribe(1, 0, "large/t")
		payload := make([]byte, 200<<10)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
		raw := itEncode(t, proto.V5, &proto.Publish{Topic: "large/t", Payload: payload}, &proto.Pingreq{})
		for off := 0; off < len(raw); off += 25 << 10 {
			itSendRead(t, b, pub, raw[off:min(off+25<<10, len(raw))])
		}
		nodetest.Expect[*proto.Pingresp](pub)
		if got := nodetest.Expect[*proto.Publish](sub); !bytes.Equal(got.Payload, payload) {
			t.Fatalf("payload of %d bytes differs from the %d sent", len(got.Payload), len(payload))
		}

		// 300 KiB announced: closed with 0x95 on the fixed header alone.
		big := nodetest.Connect(t, b.Addr, proto.V5, "big")
		big.SendRaw(proto.AppendVarint([]byte{0x30}, 300<<10))
		itClosedWith(t, big, proto.PacketTooLarge)
	})
}

// TestHalfClose: a client that shuts down its sending side still gets what it asked
// for before: the PUBACK of its last PUBLISH, then the end of the stream. Without
// DISCONNECT first its will is published; after DISCONNECT it is not.
func TestHalfClose(t *testing.T) {
	itPaths(t, func(t *testing.T, cfg node.Config) {
		b := nodetest.Start(t, cfg)
		sub := nodetest.Connect(t, b.Addr, proto.V311, "sub")
		sub.Subscribe(1, 1, "half/#")
		for _, disconnect := range []bool{false, true} {
			id := "half-" + strconv.FormatBool(disconnect)
			pkts := []proto.Packet{
				&proto.Connect{Version: proto.V311, ClientID: id, CleanStart: true, KeepAlive: 60,
					Will: &proto.Will{Topic: "half/will", Payload: []byte(id), QoS: 1}},
				&proto.Publish{Topic: "half/t", QoS: 1, PacketID: 1, Payload: []byte(id)},
			}
			if disconnect {
				pkts = append(pkts, &proto.Disconnect{})
			}
			c := nodetest.Dial(t, b.Addr, proto.V311)
			c.SendRaw(itEncode(t, proto.V311, pkts...))
			if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
			got := c.ExpectClosed()
			if len(got) != 2 || got[0].Type() != proto.CONNACK || got[1].Type() != proto.PUBACK {
				t.Fatalf("disconnect %v: got %v before the close, want CONNACK and PUBACK", disconnect, got)
			}
			p := nodetest.Expect[*proto.Publish](sub)
			sub.Ack(p)
			if p.Topic != "half/t" || string(p.Payload) != id {
				t.Fatalf("got %s %q, want half/t %q", p.Topic, p.Payload, id)
			}
			if !disconnect {
				w := nodetest.Expect[*proto.Publish](sub)
				sub.Ack(w)
				if w.Topic != "half/will" || string(w.Payload) != id {
					t.Fatalf("got %s %q, want the will", w.Topic, w.Payload)
				}
			}
		}
		sub.ExpectNothing(itQuiet) // no will after DISCONNECT
	})
}

// TestStalledReader: a subscriber that never reads fills its socket and then its
// write queue; its QoS 0 messages are dropped and counted, the publisher and another
// subscriber go on, and after WriteTimeout of writes that cannot go out the broker
// closes it as a slow consumer.
func TestStalledReader(t *testing.T) {
	itPaths(t, func(t *testing.T, cfg node.Config) {
		const n = 100
		cfg.MaxWriteQueue = 16
		cfg.WriteTimeout = time.Second
		b := nodetest.Start(t, cfg)
		slow := nodetest.Connect(t, b.Addr, proto.V311, "slow")
		slow.Subscribe(1, 0, "stall/t")
		itShrinkReadBuffer(t, slow)
		fast := nodetest.Connect(t, b.Addr, proto.V311, "fast")
		fast.Subscribe(1, 1, "stall/t")
		received := make(chan int, 1)
		go func() { received <- itReadAndAck(fast, n) }()
		pub := nodetest.Connect(t, b.Addr, proto.V311, "pub")
		payload := make([]byte, 64<<10)
		for i := range n {
			pub.Publish(&proto.Publish{Topic: "stall/t", QoS: 1, PacketID: uint16(i + 1), Payload: payload})
		}
		if got := <-received; got != n {
			t.Fatalf("the reading subscriber got %d messages, want %d", got, n)
		}
		if b.Stats.Dropped[session.DropOutbox].Load() == 0 {
			t.Fatalf("nothing dropped for the stalled subscriber: its write queue never filled")
		}
		slowClosed := slices.Index(node.CloseReasons(), "slow_consumer")
		nodetest.Eventually(t, "the stalled subscriber to be closed", func() bool {
			return b.Stats.Closed[slowClosed].Load() == 1 && b.Stats.Connected.Load() == 2
		})
	})
}

// TestShutdownWithIdleConnections: Shutdown ends every idle connection, connected
// or not: 5.0 clients get DISCONNECT 0x8B first, all get the end of the stream, and
// Shutdown returns once they are gone (TestMain then finds no goroutine left).
func TestShutdownWithIdleConnections(t *testing.T) {
	itPaths(t, func(t *testing.T, cfg node.Config) {
		b := nodetest.Start(t, cfg)
		var clients []*nodetest.Client
		for i := range 100 {
			v := itVersions[i%2]
			clients = append(clients, nodetest.Connect(t, b.Addr, v, "idle"+strconv.Itoa(i)))
		}
		for range 20 {
			clients = append(clients, nodetest.Dial(t, b.Addr, proto.V311)) // no CONNECT
		}
		nodetest.Eventually(t, "every socket accepted", func() bool { return b.Stats.ConnectionsTotal.Load() == 120 })
		ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		for _, c := range clients {
			itClosedWith(t, c, proto.ServerShuttingDown)
		}
		if n := b.Stats.Connected.Load(); n != 0 {
			t.Fatalf("Connected = %d after Shutdown", n)
		}
	})
}

// TestEventLoopIdleConnectionsHaveNoGoroutine: with the event loop, 200 connected
// idle clients cost no goroutine each (a goroutine per connection would be 200).
func TestEventLoopIdleConnectionsHaveNoGoroutine(t *testing.T) {
	if !node.DefaultConfig().EventLoop || os.Getenv("SKEIN_TEST_EVENT_LOOP") == "0" {
		t.Skip("no event loop")
	}
	cfg := node.DefaultConfig()
	b := nodetest.Start(t, cfg)
	before := runtime.NumGoroutine()
	for i := range 200 {
		nodetest.Connect(t, b.Addr, proto.V311, "g"+strconv.Itoa(i))
	}
	// The CONNACKs' writers and the reads' goroutines end once the clients are idle.
	deadline := time.Now().Add(nodetest.Timeout)
	for runtime.NumGoroutine() > before+20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with 200 idle connections, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientThatNeverReadsItsReplies: a client that sends PINGREQs without ever
// reading fills the broker's side of the socket with PINGRESPs; the broker neither
// blocks anyone else nor keeps it: it is closed as a slow consumer (write timeout
// or write queue overflow), and its writes then fail.
func TestClientThatNeverReadsItsReplies(t *testing.T) {
	itPaths(t, func(t *testing.T, cfg node.Config) {
		cfg.MaxWriteQueue = 16
		cfg.WriteTimeout = time.Second
		b := nodetest.Start(t, cfg)
		c := nodetest.Connect(t, b.Addr, proto.V311, "deaf")
		itShrinkReadBuffer(t, c)
		pings := bytes.Repeat(itEncode(t, proto.V311, &proto.Pingreq{}), 4096)
		wrote := make(chan error, 1)
		go func() {
			for {
				_ = c.Conn.SetWriteDeadline(time.Now().Add(nodetest.Timeout))
				if _, err := c.Conn.Write(pings); err != nil {
					wrote <- err
					return
				}
			}
		}()
		other := nodetest.Connect(t, b.Addr, proto.V311, "other")
		other.Send(&proto.Pingreq{})
		nodetest.Expect[*proto.Pingresp](other) // served meanwhile
		slowClosed := slices.Index(node.CloseReasons(), "slow_consumer")
		nodetest.Eventually(t, "the client to be closed as a slow consumer", func() bool {
			return b.Stats.Closed[slowClosed].Load() == 1
		})
		if err := <-wrote; err == nil {
			t.Fatalf("writes to a closed connection kept succeeding")
		}
	})
}
