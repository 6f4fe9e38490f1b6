package node

import (
	"sync/atomic"
	"time"

	"github.com/skein-mq/skein/session"
)

// Stats are the broker's counters, read by $SYS and metrics. All fields are updated
// atomically and may be read at any time.
type Stats struct {
	ConnectionsTotal atomic.Int64 // accepted sockets
	ConnectsTotal    atomic.Int64 // CONNECTs accepted with CONNACK 0
	Refused          atomic.Int64 // sockets closed at once: max connections reached
	SessionsExpired  atomic.Int64 // sessions ended by their expiry interval
	// SessionsHandedOver counts persistent sessions moved to another node, and
	// MessagesRelayed the deliveries passed on after them.
	SessionsHandedOver atomic.Int64
	MessagesRelayed    atomic.Int64
	PacketsReceived    atomic.Int64 // control packets of any type from clients
	PacketsSent        atomic.Int64 // control packets of any type to clients
	Connected          atomic.Int64 // clients past CONNACK, now
	MaxConnected       atomic.Int64 // highest Connected seen
	MessagesReceived   atomic.Int64 // PUBLISH packets from clients
	MessagesSent       atomic.Int64 // PUBLISH packets to clients
	BytesReceived      atomic.Int64
	BytesSent          atomic.Int64
	PublishedReceived  [3]atomic.Int64 // PUBLISH from clients, by QoS
	// Dropped counts messages not delivered to a subscriber, by session.DropReason.
	Dropped [session.NumDropReasons]atomic.Int64
	// Closed counts connection closes by closeReason.
	Closed [numCloseReasons]atomic.Int64
	// DeliveryLatency is the time from receiving a PUBLISH to writing it to a
	// subscriber's socket.
	DeliveryLatency Histogram
}

// LatencyBuckets are the upper bounds, in seconds, of DeliveryLatency's buckets.
var LatencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram counts observations in LatencyBuckets without locks; the last counter
// is the +Inf bucket. Counts are per bucket, not cumulative.
type Histogram struct {
	counts [len(LatencyBuckets) + 1]atomic.Int64
	sumNS  atomic.Int64
}

// Observe records one duration in seconds.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNS.Add(int64(d))
}

// Snapshot returns the per-bucket counts (the last is +Inf) and the sum of the
// observations.
func (h *Histogram) Snapshot() (counts []uint64, sum time.Duration) {
	counts = make([]uint64, len(h.counts))
	for i := range h.counts {
		counts[i] = uint64(h.counts[i].Load())
	}
	return counts, time.Duration(h.sumNS.Load())
}

func (s *Stats) drop(r session.DropReason) {
	if r != session.NotDropped {
		s.Dropped[r].Add(1)
	}
}

func (s *Stats) connected() {
	n := s.Connected.Add(1)
	for {
		m := s.MaxConnected.Load()
		if n <= m || s.MaxConnected.CompareAndSwap(m, n) {
			return
		}
	}
}
