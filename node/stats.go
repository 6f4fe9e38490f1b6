package node

import (
	"sync/atomic"

	"github.com/skein-mq/skein/session"
)

// Stats are the broker's counters, read by $SYS and metrics. All fields are updated
// atomically and may be read at any time.
type Stats struct {
	ConnectionsTotal  atomic.Int64 // accepted sockets
	ConnectsTotal     atomic.Int64 // CONNECTs accepted with CONNACK 0
	Refused           atomic.Int64 // sockets closed at once: max connections reached
	SessionsExpired   atomic.Int64 // sessions ended by their expiry interval
	PacketsReceived   atomic.Int64 // control packets of any type from clients
	PacketsSent       atomic.Int64 // control packets of any type to clients
	Connected         atomic.Int64 // clients past CONNACK, now
	MaxConnected      atomic.Int64 // highest Connected seen
	MessagesReceived  atomic.Int64 // PUBLISH packets from clients
	MessagesSent      atomic.Int64 // PUBLISH packets to clients
	BytesReceived     atomic.Int64
	BytesSent         atomic.Int64
	PublishedReceived [3]atomic.Int64 // PUBLISH from clients, by QoS
	// Dropped counts messages not delivered to a subscriber, by session.DropReason.
	Dropped [5]atomic.Int64
	// Closed counts connection closes by closeReason.
	Closed [numCloseReasons]atomic.Int64
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
