package main

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Latency histogram: HDR-like log-linear buckets over nanoseconds. Values below
// 2*histSub have a bucket each; above, every power of two is split into histSub
// buckets, so a bucket is at most 1/64 (1.6%) of its value wide. The whole int64
// range takes histBuckets counters (30 KiB), whatever the number of samples.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = (63-histSubBits-1)*histSub + 2*histSub // up to math.MaxInt64
	// histShards spreads concurrent writers over separate counter sets.
	histShards = 8
)

// histBucket returns the bucket of v (negative values count as 0).
func histBucket(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return shift*histSub + int(uint64(v)>>shift)
}

// histValue returns a representative value of bucket i: its midpoint.
func histValue(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	m := int64(i - shift*histSub)
	return m<<shift + (int64(1)<<shift)/2
}

// latencyHist counts latencies from many goroutines; each writer picks a shard, so
// two writers share counters only when they share a shard.
type latencyHist struct {
	shards [histShards]histShard
}

type histShard struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
	_      [64]byte // keep the next shard's hot counters off this cache line
}

// record adds one latency of ns nanoseconds to shard (any int; it is reduced).
func (h *latencyHist) record(shard int, ns int64) {
	s := &h.shards[uint(shard)%histShards]
	s.counts[histBucket(ns)].Add(1)
	for {
		m := s.max.Load()
		if ns <= m || s.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// snapshot sums the shards.
func (h *latencyHist) snapshot() *histSnapshot {
	out := &histSnapshot{counts: make([]uint64, histBuckets)}
	for i := range h.shards {
		s := &h.shards[i]
		for b := range s.counts {
			n := s.counts[b].Load()
			out.counts[b] += n
			out.total += n
		}
		out.max = max(out.max, s.max.Load())
	}
	return out
}

// histSnapshot is a point-in-time copy of a latencyHist.
type histSnapshot struct {
	counts []uint64
	total  uint64
	max    int64 // exact; 0 in a diff
}

// since returns the counts added after prev (for the per-second progress line).
func (s *histSnapshot) since(prev *histSnapshot) *histSnapshot {
	out := &histSnapshot{counts: make([]uint64, histBuckets)}
	for i, n := range s.counts {
		if prev != nil {
			n -= prev.counts[i]
		}
		out.counts[i] = n
		out.total += n
	}
	return out
}

// quantile returns the q-quantile (0 < q <= 1) in nanoseconds, 0 without samples.
// It never exceeds the exact maximum when that is known.
func (s *histSnapshot) quantile(q float64) int64 {
	if s.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, n := range s.counts {
		seen += n
		if seen >= rank {
			v := histValue(i)
			if s.max > 0 && v > s.max {
				v = s.max
			}
			return v
		}
	}
	return s.max
}

// seqWindow is how far behind the highest sequence number a seqTracker still tells
// a late message from a duplicate. It costs 512 bytes, only for a publisher whose
// messages arrived out of order at least once.
const seqWindow = 4096

// seqResult classifies one arriving sequence number.
type seqResult uint8

const (
	seqNew       seqResult = iota // above every number seen so far
	seqReordered                  // below the highest seen, not seen before
	seqDuplicate                  // seen before
)

// seqTracker follows one publisher's sequence numbers as one subscriber receives
// them: how many distinct numbers arrived, how many arrived again, how many after
// a higher one. It is used by one goroutine.
type seqTracker struct {
	max       uint64 // highest number seen
	unique    uint64 // distinct numbers seen
	dups      uint64
	reordered uint64
	// seen has bit s%seqWindow set when s in (max-seqWindow, max] arrived. It stays
	// nil while every number arrived in order: then every s <= max arrived.
	seen *[seqWindow / 64]uint64
}

func (t *seqTracker) mark(s uint64)        { t.seen[s/64%(seqWindow/64)] |= 1 << (s % 64) }
func (t *seqTracker) unmark(s uint64)      { t.seen[s/64%(seqWindow/64)] &^= 1 << (s % 64) }
func (t *seqTracker) marked(s uint64) bool { return t.seen[s/64%(seqWindow/64)]&(1<<(s%64)) != 0 }

// add records sequence number seq (>= 1).
func (t *seqTracker) add(seq uint64) seqResult {
	switch {
	case seq == t.max+1: // the common case: next in order
		t.max = seq
		if t.seen != nil {
			t.mark(seq)
		}
		t.unique++
		return seqNew
	case seq > t.max: // a gap: the numbers in between are missing, for now
		if t.seen == nil {
			t.seen = new([seqWindow / 64]uint64)
			for i := range t.seen {
				t.seen[i] = ^uint64(0) // everything up to max arrived in order
			}
		}
		if seq-t.max > seqWindow {
			clear(t.seen[:])
		} else {
			for s := t.max + 1; s < seq; s++ {
				t.unmark(s)
			}
		}
		t.mark(seq)
		t.max = seq
		t.unique++
		return seqNew
	case t.seen == nil:
		t.dups++
		return seqDuplicate
	case t.max-seq >= seqWindow:
		// Too far behind to remember: a message this late is far more likely
		// reordered than duplicated.
		t.unique++
		t.reordered++
		return seqReordered
	case t.marked(seq):
		t.dups++
		return seqDuplicate
	default:
		t.mark(seq)
		t.unique++
		t.reordered++
		return seqReordered
	}
}

// missing returns how many of the numbers 1..expected never arrived.
func (t *seqTracker) missing(expected uint64) uint64 {
	if t == nil {
		return expected
	}
	if t.unique >= expected {
		return 0
	}
	return expected - t.unique
}

// window is the closed loop: it bounds the messages in flight end to end.
// Publishers take a slot per message in acquire, blocking while the window is full;
// a slot is freed when the message's last delivery arrives (without subscribers:
// when it is acknowledged).
type window struct {
	limit    int64
	inflight atomic.Int64
	waiters  atomic.Int32

	// With several subscribers per message (fan-out, one publisher), pending counts
	// the deliveries each message in flight still waits for, by sequence number
	// modulo limit. Each subscriber receives the publisher's messages in order, so
	// messages complete in order and a slot's previous message has completed by the
	// time acquire lets its successor in.
	fan     int32
	pending []atomic.Int32

	mu     sync.Mutex // guards closed; cond's lock
	cond   *sync.Cond
	closed bool
}

// newWindow returns a window of n messages, each delivered to fan subscribers.
func newWindow(n, fan int) *window {
	w := &window{limit: int64(n), fan: int32(fan)}
	if fan > 1 {
		w.pending = make([]atomic.Int32, n)
	}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// tryAcquire takes up to n slots without blocking and returns how many.
func (w *window) tryAcquire(n int) int {
	for {
		cur := w.inflight.Load()
		free := w.limit - cur
		if free <= 0 {
			return 0
		}
		k := min(int64(n), free)
		if w.inflight.CompareAndSwap(cur, cur+k) {
			return int(k)
		}
	}
}

// acquire takes between 1 and n slots, blocking until at least one is free, and
// returns how many; 0 once the window is closed.
func (w *window) acquire(n int) int {
	if k := w.tryAcquire(n); k > 0 {
		return k
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Registering as a waiter before looking again pairs with release, which
	// decrements before looking at waiters: one of the two sees the other.
	w.waiters.Add(1)
	defer w.waiters.Add(-1)
	for !w.closed {
		if k := w.tryAcquire(n); k > 0 {
			if w.waiters.Load() > 1 && w.inflight.Load() < w.limit {
				w.cond.Signal() // room left: pass the wake-up on
			}
			return k
		}
		w.cond.Wait()
	}
	return 0
}

// release frees n slots.
func (w *window) release(n int64) {
	w.inflight.Add(-n)
	if w.waiters.Load() > 0 {
		w.mu.Lock()
		w.cond.Signal()
		w.mu.Unlock()
	}
}

// sent records that the message with sequence number seq was published.
func (w *window) sent(seq uint64) {
	if w.pending != nil {
		w.pending[seq%uint64(w.limit)].Store(w.fan)
	}
}

// delivered records one delivery of message seq and reports whether it was the
// message's last, freeing its slot (the caller releases, in batches).
func (w *window) delivered(seq uint64) bool {
	if w.pending == nil {
		return true
	}
	return w.pending[seq%uint64(w.limit)].Add(-1) == 0
}

// full reports whether no message fits.
func (w *window) full() bool { return w.inflight.Load() >= w.limit }

// inflightMessages is the number of messages in flight.
func (w *window) inflightMessages() int64 { return max(w.inflight.Load(), 0) }

// reset forgets every message in flight: the deliveries they waited for are lost.
// Late deliveries then free slots nobody holds, which lets the window run over its
// limit by that many until the count catches up.
func (w *window) reset() {
	w.inflight.Add(-w.inflight.Load())
	w.mu.Lock()
	w.cond.Broadcast()
	w.mu.Unlock()
}

// close wakes every waiter and makes acquire return 0 from now on.
func (w *window) close() {
	w.mu.Lock()
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
}
