package session_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// BenchmarkStoreGroupCommit runs writers goroutines, each writing to its own
// persistent session and waiting for the write to be on disk, as connections wait
// before acknowledging. writes/batch is the group commit at work: how many writes
// one transaction (one fsync) carried.
func BenchmarkStoreGroupCommit(b *testing.B) {
	for _, writers := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			st, err := session.OpenStore(filepath.Join(b.TempDir(), "skein.db"), session.StoreOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			sessions := make([]*session.Session, writers)
			for i := range sessions {
				s := session.New(fmt.Sprintf("c%d", i), session.DefaultConfig())
				s.SetExpiry(60)
				s.Persist(st)
				sessions[i] = s
			}
			if err := st.Wait(context.Background(), sessions[writers-1].Ticket()); err != nil {
				b.Fatal(err)
			}
			sub := session.Subscription{Subscription: proto.Subscription{Filter: "bench/filter", QoS: 1}}
			batches0, writes0 := st.CommitStats()
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, s := range sessions {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						s.Subscribe(sub) // one write: the subscription record
						if err := st.Wait(context.Background(), s.Ticket()); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			batches1, writes1 := st.CommitStats()
			b.ReportMetric(float64(writes1-writes0)/float64(max(batches1-batches0, 1)), "writes/batch")
		})
	}
}

// benchOutbox accepts every push and remembers the last packet id.
type benchOutbox struct{ last uint16 }

func (o *benchOutbox) Push(out session.Outgoing) bool {
	o.last = out.PacketID
	return true
}

// BenchmarkDeliverPersistent is the cost a persistent session adds to a QoS 1
// delivery (DeliverDurable, then the subscriber's PUBACK): "memory" is a session
// without a store; "persistent" writes the delivery and its deletion through, which
// on the delivery path is only queueing the writes (the group commit runs alongside,
// and the final drain is not timed); "persistent-wait" also waits for each delivery
// to be durable, as a publisher's PUBACK does when it is the only one publishing.
func BenchmarkDeliverPersistent(b *testing.B) {
	now := time.Now()
	msg := &session.Message{Topic: "bench/topic", Payload: make([]byte, 64), QoS: 1}
	for _, mode := range []string{"memory", "persistent", "persistent-wait"} {
		b.Run(mode, func(b *testing.B) {
			s := session.New("c", session.Config{MaxInflight: 100, MaxQueued: 1000})
			var st *session.Store
			if mode != "memory" {
				var err error
				st, err = session.OpenStore(filepath.Join(b.TempDir(), "skein.db"), session.StoreOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				s.SetExpiry(60)
				s.Persist(st)
			}
			out := &benchOutbox{}
			s.Attach(out, 0, now)
			d := session.Delivery{Msg: msg, QoS: 1}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				r, ticket := s.DeliverDurable(d, now)
				if r != session.NotDropped {
					b.Fatalf("DeliverDurable: %v", r)
				}
				if mode == "persistent-wait" {
					if err := st.Wait(ctx, ticket); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Puback(out.last, now); err != nil {
					b.Fatal(err)
				}
			}
			if st != nil {
				// Outside the timed loop: b.Loop stops the clock when it returns
				// false. The writes it queued must be durable all the same.
				if err := st.Wait(ctx, s.Ticket()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
