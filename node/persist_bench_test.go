package node_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// BenchmarkPersistentQoS1 measures QoS 1 publishing to a persistent subscriber
// (3.1.1, clean session 0) over loopback, with the session store on disk and without
// it (sessions in memory only): 8 publishers, each waiting for its PUBACK before the
// next message, as many devices do. With the store, a PUBACK waits for the fsync of
// the group commit holding the message; the writes/commit figure is the batch size.
func BenchmarkPersistentQoS1(b *testing.B) {
	for _, withStore := range []bool{false, true} {
		name := "memory"
		if withStore {
			name = "bbolt"
		}
		b.Run(name, func(b *testing.B) {
			cfg := node.DefaultConfig()
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			cfg.Session.MaxQueued = 1 << 20
			var store *session.Store
			if withStore {
				var err error
				store, err = session.OpenStore(filepath.Join(b.TempDir(), "skein.db"), session.StoreOptions{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = store.Close() }) // registered first: runs after the broker's shutdown
				cfg.Store = store
			}
			br := nodetest.Start(b, cfg)
			sub := nodetest.Dial(b, br.Addr, proto.V311)
			if ack := sub.Connect(&proto.Connect{ClientID: "psub", KeepAlive: 60}); ack.ReasonCode != 0 {
				b.Fatalf("connect: %v", ack.ReasonCode)
			}
			sub.Subscribe(1, 1, "bench/p/#")
			var delivered atomic.Int64
			go func() {
				for {
					p, err := sub.RecvWithin(nodetest.Timeout)
					if err != nil {
						return
					}
					if pub, ok := p.(*proto.Publish); ok {
						delivered.Add(1)
						ack, _ := (&proto.Puback{PacketID: pub.PacketID}).Append(nil, proto.V311)
						if _, err := sub.Conn.Write(ack); err != nil {
							return
						}
					}
				}
			}()
			const publishers = 8
			pubs := make([]*nodetest.Client, publishers)
			for i := range pubs {
				pubs[i] = nodetest.Connect(b, br.Addr, proto.V311, "ppub"+strconv.Itoa(i))
			}
			var batches0, writes0 int64
			if store != nil {
				batches0, writes0 = store.CommitStats()
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, pc := range pubs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := &proto.Publish{Topic: "bench/p/" + strconv.Itoa(i), QoS: 1, Payload: make([]byte, 64)}
					var buf []byte
					for id := uint16(1); next.Add(1) <= int64(b.N); id = id%65535 + 1 {
						p.PacketID = id
						buf, _ = p.Append(buf[:0], proto.V311) // a valid QoS 1 PUBLISH always encodes
						if _, err := pc.Conn.Write(buf); err != nil {
							return
						}
						if _, err := pc.RecvWithin(nodetest.Timeout); err != nil {
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if store != nil {
				batches, writes := store.CommitStats()
				if batches > batches0 {
					b.ReportMetric(float64(writes-writes0)/float64(batches-batches0), "writes/commit")
				}
			}
			benchWaitDeliveries(&delivered, int64(b.N))
			sub.Conn.Close()
		})
	}
}
