package cluster_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// benchWindow is how many messages a throughput benchmark lets the publisher run
// ahead of the subscriber (and, at QoS 1, of its PUBACKs): below the broker's
// receive maximum (1024) and the subscriber's write queue, so nothing is dropped.
const benchWindow = 512

// benchStall ends the wait for the last deliveries once none came for this long,
// so a lost message ends the benchmark instead of hanging it.
const benchStall = 2 * time.Second

// benchWait waits until n reaches want, or stops growing for benchStall.
func benchWait(n *atomic.Int64, want int64) {
	last, progress := n.Load(), time.Now()
	for last < want && time.Since(progress) < benchStall {
		time.Sleep(100 * time.Microsecond)
		if now := n.Load(); now != last {
			last, progress = now, time.Now()
		}
	}
}

// benchReadPackets reads MQTT packets from r until it fails, calling fn with each
// packet's first byte and body (valid until the next packet). No allocation per
// packet, so the reading side stays out of allocs/op.
func benchReadPackets(r *bufio.Reader, fn func(first byte, body []byte)) {
	buf := make([]byte, 64<<10)
	for {
		first, err := r.ReadByte()
		if err != nil {
			return
		}
		n, shift := 0, uint(0)
		for {
			c, err := r.ReadByte()
			if err != nil {
				return
			}
			n |= int(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				break
			}
		}
		if n > len(buf) {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return
		}
		fn(first, buf[:n])
	}
}

// benchSubscriber counts the PUBLISH packets c receives and acknowledges QoS 1
// ones; it returns when the socket is closed.
func benchSubscriber(c *nodetest.Client, delivered *atomic.Int64, done chan<- struct{}) {
	defer close(done)
	_ = c.Conn.SetReadDeadline(time.Time{}) // none: closing the socket ends the reader
	ack := []byte{byte(proto.PUBACK) << 4, 2, 0, 0}
	benchReadPackets(bufio.NewReaderSize(c.Conn, 64<<10), func(first byte, body []byte) {
		if proto.PacketType(first>>4) != proto.PUBLISH {
			return
		}
		delivered.Add(1)
		if (first>>1)&3 == 1 {
			topicLen := int(binary.BigEndian.Uint16(body))
			copy(ack[2:], body[2+topicLen:4+topicLen]) // the packet id follows the topic
			if _, err := c.Conn.Write(ack); err != nil {
				return
			}
		}
	})
}

// BenchmarkThroughput publishes 64-byte messages from one client on node n1 to one
// subscriber on the same node or on n2 (two nodes, no test proxies), at QoS 0 and
// QoS 1. One op is one publish; the time includes waiting, after the loop, for the
// last message to arrive (and at QoS 1 for its PUBACK). msgs/s counts the messages
// the subscriber read; lost/op those that never came. The QoS 1 publisher keeps up
// to benchWindow messages unacknowledged, as a real client with a receive maximum.
func BenchmarkThroughput(b *testing.B) {
	nodes := clustertest.Start(b, 2, clustertest.Options{Direct: true, Quiet: true})
	for _, qos := range []byte{0, 1} {
		for _, cross := range []bool{false, true} {
			where := "same-node"
			if cross {
				where = "cross-node"
			}
			b.Run(fmt.Sprintf("qos%d/%s", qos, where), func(b *testing.B) {
				benchThroughput(b, nodes, qos, cross)
			})
		}
	}
}

// benchRuns numbers the runs of a sub-benchmark (-count reruns it on the same
// cluster), so each has its own topic, clients and route.
var benchRuns atomic.Int64

// benchThrottle waits while the publisher is window or more ahead of done, and
// fails the benchmark if done makes no progress for benchStall (messages lost).
func benchThrottle(b *testing.B, sent int64, done *atomic.Int64, window int64) {
	last, progress := done.Load(), time.Now()
	for sent-last >= window {
		if time.Since(progress) > benchStall {
			b.Fatalf("no progress for %v: %d sent, %d done", benchStall, sent, last)
		}
		time.Sleep(20 * time.Microsecond)
		if now := done.Load(); now != last {
			last, progress = now, time.Now()
		}
	}
}

func benchThroughput(b *testing.B, nodes []*clustertest.Node, qos byte, cross bool) {
	topic := fmt.Sprintf("bench/%d/%v/%d", qos, cross, benchRuns.Add(1))
	subNode := nodes[0]
	if cross {
		subNode = nodes[1]
	}
	sub := nodetest.Connect(b, subNode.Addr, proto.V311, "sub-"+topic)
	sub.Subscribe(1, qos, topic)
	clustertest.WaitRoute(b, nodes, topic, subNode.Name, "", true)
	var delivered, acked atomic.Int64
	subDone := make(chan struct{})
	go benchSubscriber(sub, &delivered, subDone)

	pub := nodetest.Connect(b, nodes[0].Addr, proto.V311, "pub-"+topic)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		_ = pub.Conn.SetReadDeadline(time.Time{})
		benchReadPackets(bufio.NewReader(pub.Conn), func(first byte, _ []byte) {
			if proto.PacketType(first>>4) == proto.PUBACK {
				acked.Add(1)
			}
		})
	}()
	p := &proto.Publish{Topic: topic, QoS: qos, Payload: make([]byte, 64)}
	var buf []byte
	id := uint16(0)
	sent := int64(0)
	start := time.Now()

	b.ReportAllocs()
	for b.Loop() {
		benchThrottle(b, sent, &delivered, benchWindow)
		if qos > 0 {
			benchThrottle(b, sent, &acked, benchWindow)
		}
		if qos > 0 {
			if id++; id == 0 {
				id = 1
			}
			p.PacketID = id
		}
		var err error
		if buf, err = p.Append(buf[:0], proto.V311); err != nil {
			b.Fatal(err)
		}
		pub.SendRaw(buf)
		sent++
	}
	b.StartTimer()
	benchWait(&delivered, sent)
	if qos > 0 {
		benchWait(&acked, sent)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(delivered.Load())/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(sent-delivered.Load())/float64(sent), "lost/op")
	sub.Conn.Close()
	pub.Conn.Close()
	<-subDone
	<-pubDone
}

// BenchmarkRouteChanges measures the route-change rate: one op is a SUBSCRIBE of a
// new filter on n1 of three nodes (pipelined, as a client subscribing to many
// topics at start-up); the time includes waiting, after the loop, until every
// replica holds every route. routes/s is new filters committed everywhere per
// second; entries/1k-routes the Raft entries they took.
func BenchmarkRouteChanges(b *testing.B) {
	nodes := clustertest.Start(b, 3, clustertest.Options{Direct: true, Quiet: true})
	c := nodetest.Connect(b, nodes[0].Addr, proto.V311, "storm")
	var subacks atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		_ = c.Conn.SetReadDeadline(time.Time{})
		benchReadPackets(bufio.NewReader(c.Conn), func(first byte, _ []byte) {
			if proto.PacketType(first>>4) == proto.SUBACK {
				subacks.Add(1)
			}
		})
	}()
	table := nodes[0].Cluster.Table()
	before := nodes[0].Cluster.Status().CommitIndex
	var buf []byte
	sent := 0
	start := time.Now()

	b.ReportAllocs()
	for b.Loop() {
		// At most 10 000 filters ahead of n1's replica: enough to fill batches.
		for stalled := time.Now(); sent-table.Len() >= 10000; time.Sleep(50 * time.Microsecond) {
			if time.Since(stalled) > clustertest.Timeout {
				b.Fatalf("routes stopped committing: %d subscribed, %d in n1's table", sent, table.Len())
			}
		}
		s := &proto.Subscribe{PacketID: uint16(sent%65000 + 1), Subscriptions: []proto.Subscription{{Filter: fmt.Sprintf("rc/%d/+", sent), QoS: 1}}}
		var err error
		if buf, err = s.Append(buf[:0], proto.V311); err != nil {
			b.Fatal(err)
		}
		c.SendRaw(buf)
		sent++
	}
	b.StartTimer()
	clustertest.Eventually(b, "every route on every replica", func() bool {
		for _, nd := range nodes {
			if nd.Cluster.Table().Len() != sent {
				return false
			}
		}
		return true
	})
	b.StopTimer()
	elapsed := time.Since(start)
	entries := nodes[0].Cluster.Status().CommitIndex - before
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "routes/s")
	b.ReportMetric(float64(entries)*1000/float64(sent), "entries/1k-routes")
	c.Conn.Close()
	<-readDone
}
