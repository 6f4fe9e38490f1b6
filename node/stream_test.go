package node_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// itStream writes chunk to c over and over for d, and returns the first write
// error: a client that keeps its socket to the broker full.
func itStream(c *nodetest.Client, chunk []byte, d time.Duration) error {
	for start := time.Now(); time.Since(start) < d; {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Conn.Write(chunk); err != nil {
			return err
		}
	}
	return c.Conn.SetWriteDeadline(time.Time{})
}

// TestStreamingClientKeepsItsKeepalive: a client that publishes without a pause for
// longer than 1.5 times its keepalive is active all along and stays connected. The
// event loop read such a stream in one round that never ended, and moved the
// deadline only at the end of a round: the client was closed for keepalive after
// 1.5 s.
func TestStreamingClientKeepsItsKeepalive(t *testing.T) {
	t.Parallel()
	itPaths(t, func(t *testing.T, cfg node.Config) {
		b := nodetest.Start(t, cfg)
		c := nodetest.Dial(t, b.Addr, proto.V5)
		if ack := c.Connect(&proto.Connect{ClientID: "stream", CleanStart: true, KeepAlive: 1}); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
		var pkts []proto.Packet
		for i := range 20000 {
			pkts = append(pkts, &proto.Publish{Topic: "stream/t", Payload: fmt.Appendf(nil, "%060d", i)})
		}
		if err := itStream(c, itEncode(t, proto.V5, pkts...), 2500*time.Millisecond); err != nil {
			p, rerr := c.RecvWithin(time.Second)
			t.Fatalf("the streaming client was closed: write: %v; the broker sent %v (%v)", err, nodetest.String(p), rerr)
		}
		c.Send(&proto.Pingreq{})
		nodetest.Expect[*proto.Pingresp](c)
	})
}

// TestStreamingQoS1ClientGetsItsAcks: a 3.1.1 client (no receive maximum) that
// streams QoS 1 messages and reads its PUBACKs gets them while it streams, and is
// not closed as a slow consumer. The event loop held a round's replies until the
// round ended, and a stream's round did not end: the held PUBACKs passed the write
// queue's bound and the client was closed within 0.1 s.
func TestStreamingQoS1ClientGetsItsAcks(t *testing.T) {
	t.Parallel()
	itPaths(t, func(t *testing.T, cfg node.Config) {
		b := nodetest.Start(t, cfg)
		c := nodetest.Dial(t, b.Addr, proto.V311)
		if ack := c.Connect(&proto.Connect{ClientID: "stream", CleanStart: true, KeepAlive: 60}); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
		var pkts []proto.Packet
		for i := range 5000 {
			pkts = append(pkts, &proto.Publish{Topic: "stream/t", QoS: 1, PacketID: uint16(i + 1), Payload: fmt.Appendf(nil, "%060d", i)})
		}
		written := make(chan error, 1)
		go func() { written <- itStream(c, itEncode(t, proto.V311, pkts...), 1500*time.Millisecond) }()
		acks := 0
		for {
			p, err := c.RecvWithin(2 * time.Second)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break // the stream ended and its acks are all read
			}
			if err != nil {
				t.Fatalf("after %d PUBACKs: %v", acks, err)
			}
			if _, ok := p.(*proto.Puback); !ok {
				t.Fatalf("after %d PUBACKs the broker sent %s", acks, nodetest.String(p))
			}
			acks++
		}
		if err := <-written; err != nil {
			t.Fatalf("the streaming client was closed after %d PUBACKs: %v", acks, err)
		}
		if acks%5000 != 0 || acks == 0 {
			t.Fatalf("%d PUBACKs for whole chunks of 5000 QoS 1 messages", acks)
		}
	})
}
