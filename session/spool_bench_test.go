package session_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/skein-mq/skein/session"
)

// BenchmarkSpoolAppend appends 256-byte records for one peer from writers
// goroutines, each waiting for its record to be on disk before the next, as the
// publishers of messages held for an unreachable node wait for their PUBACK.
// writes/batch is the group commit: how many appends one fsync carried.
func BenchmarkSpoolAppend(b *testing.B) {
	for _, writers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			st, err := session.OpenStore(filepath.Join(b.TempDir(), "skein.db"), session.StoreOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			sp, err := session.OpenSpool(st, session.SpoolConfig{MaxMessages: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 256)
			batches0, writes0 := st.CommitStats()
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						_, t := sp.Append("n3", data)
						if err := st.Wait(context.Background(), t); err != nil {
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
