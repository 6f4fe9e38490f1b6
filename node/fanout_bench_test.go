package node_test

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// benchStall ends the wait for the last deliveries after a benchmark's loop once no
// delivery came for this long, so that lost messages end the benchmark instead of
// hanging it.
const benchStall = time.Second

// fanoutWindow is how many messages BenchmarkFanout lets the publisher run ahead.
const fanoutWindow = 1024

// benchWaitDeliveries waits until n reaches want, or stops growing for benchStall.
func benchWaitDeliveries(n *atomic.Int64, want int64) {
	last, progress := n.Load(), time.Now()
	for last < want && time.Since(progress) < benchStall {
		time.Sleep(100 * time.Microsecond)
		if now := n.Load(); now != last {
			last, progress = now, time.Now()
		}
	}
}

// benchBroker starts a broker that logs nothing.
func benchBroker(b *testing.B) *nodetest.Broker {
	cfg := node.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return nodetest.Start(b, cfg)
}

// BenchmarkFanout publishes 64-byte QoS 0 messages on loopback from one client to 100
// subscribers of bench/t. One op is one publish; the time includes waiting, after the
// loop, for the last message to reach every subscriber. deliveries/s counts the
// PUBLISH packets the subscribers read; lost/op reports deliveries that never came
// (dropped/op: those the broker counted as dropped).
func BenchmarkFanout(b *testing.B) {
	const subscribers = 100
	br := benchBroker(b)
	var delivered atomic.Int64
	var readers sync.WaitGroup
	subs := make([]*nodetest.Client, subscribers)
	for i := range subs {
		c := nodetest.Connect(b, br.Addr, proto.V311, "sub-"+strconv.Itoa(i))
		c.Subscribe(1, 0, "bench/t")
		// Nothing else is in flight to c, so its buffered reader is empty and the raw
		// socket can be read from here on.
		_ = c.Conn.SetReadDeadline(time.Time{}) // no deadline; closing the socket ends the reader
		subs[i] = c
		readers.Add(1)
		go func() {
			defer readers.Done()
			benchCountPublishes(c.Conn, &delivered)
		}()
	}
	pub := nodetest.Connect(b, br.Addr, proto.V311, "pub")
	msg, err := (&proto.Publish{Topic: "bench/t", Payload: make([]byte, 64)}).Append(nil, proto.V311)
	if err != nil {
		b.Fatal(err)
	}

	b.ReportAllocs()
	sent := int64(0)
	for b.Loop() {
		// Keep at most fanoutWindow messages between the publisher and the slowest
		// reading: otherwise socket buffers absorb the first rounds of b.Loop, its
		// iteration estimate overshoots, and the run takes many times -benchtime.
		for (sent-fanoutWindow)*subscribers > delivered.Load() {
			time.Sleep(50 * time.Microsecond)
		}
		pub.SendRaw(msg)
		sent++
	}
	// Count the time to deliver what was published, not only to send it.
	b.StartTimer()
	want := int64(b.N) * subscribers
	benchWaitDeliveries(&delivered, want)
	b.StopTimer()

	got := delivered.Load()
	var dropped int64
	for i := range br.Stats.Dropped {
		dropped += br.Stats.Dropped[i].Load()
	}
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(want-got)/float64(b.N), "lost/op")
	b.ReportMetric(float64(dropped)/float64(b.N), "dropped/op")
	for _, c := range subs {
		c.Conn.Close()
	}
	readers.Wait()
}

// BenchmarkPublishQoS1 is a closed loop of QoS 1 publishes from one client to one
// QoS 1 subscriber: each op sends a PUBLISH and waits for its PUBACK, while the
// subscriber acknowledges what it receives.
func BenchmarkPublishQoS1(b *testing.B) {
	br := benchBroker(b)
	sub := nodetest.Connect(b, br.Addr, proto.V311, "sub")
	sub.Subscribe(1, 1, "bench/q1")
	var delivered atomic.Int64
	reader := make(chan struct{})
	go func() {
		defer close(reader)
		for {
			p, err := sub.RecvWithin(time.Hour) // ends when the socket is closed
			if err != nil {
				return
			}
			pub, ok := p.(*proto.Publish)
			if !ok {
				return
			}
			delivered.Add(1)
			// A QoS 1 PUBLISH has a non-zero packet id, so its PUBACK always encodes.
			ack, _ := (&proto.Puback{PacketID: pub.PacketID}).Append(nil, proto.V311)
			if _, err := sub.Conn.Write(ack); err != nil {
				return
			}
		}
	}()
	pub := nodetest.Connect(b, br.Addr, proto.V311, "pub")
	p := &proto.Publish{Topic: "bench/q1", QoS: 1, Payload: make([]byte, 64)}
	var buf []byte
	id := uint16(0)

	b.ReportAllocs()
	for b.Loop() {
		id++
		if id == 0 {
			id = 1
		}
		p.PacketID = id
		var err error
		if buf, err = p.Append(buf[:0], proto.V311); err != nil {
			b.Fatal(err)
		}
		pub.SendRaw(buf)
		ack, err := pub.RecvWithin(nodetest.Timeout)
		if err != nil {
			b.Fatalf("waiting for PUBACK %d: %v", id, err)
		}
		if a, ok := ack.(*proto.Puback); !ok || a.PacketID != id {
			b.Fatalf("got %s, want PUBACK %d", nodetest.String(ack), id)
		}
	}
	benchWaitDeliveries(&delivered, int64(b.N))
	b.ReportMetric(float64(int64(b.N)-delivered.Load())/float64(b.N), "lost/op")
	sub.Conn.Close()
	<-reader
}

// benchCountPublishes reads MQTT packets from nc until a read fails, adding one to n for
// each PUBLISH. It parses only fixed headers and reuses one buffer, so the reading
// side adds no allocations to the benchmark's count.
func benchCountPublishes(nc net.Conn, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	var (
		skip    int  // bytes of the current packet's body still to skip
		inLen   bool // reading the remaining length
		length  int
		shift   uint
		publish int64 // PUBLISH packets seen in this read, added at once
	)
	for {
		k, err := nc.Read(buf)
		publish = 0
		for i := 0; i < k; {
			switch {
			case skip > 0:
				d := min(skip, k-i)
				skip -= d
				i += d
			case !inLen:
				if proto.PacketType(buf[i]>>4) == proto.PUBLISH {
					publish++
				}
				inLen, length, shift = true, 0, 0
				i++
			default:
				c := buf[i]
				i++
				length |= int(c&0x7f) << shift
				shift += 7
				if c&0x80 == 0 {
					inLen, skip = false, length
				}
			}
		}
		if publish > 0 {
			n.Add(publish)
		}
		if err != nil {
			return
		}
	}
}
