package poll

import (
	"sync"
	"time"
)

// Wheel is a timing wheel for many coarse deadlines, such as one read deadline per
// connection: a Timer is a few words inside its owner, setting or moving it is
// O(1) under one lock, and one goroutine ticks for all of them. A timer fires at
// most one tick after its deadline, never before. Create it with NewWheel and stop
// it with Close.
//
// The timers carry their owner (T, usually a pointer) rather than a callback, so a
// timer costs no allocation and no more than its five words.
type Wheel[T Expirer] struct {
	tick  time.Duration
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex  // guards slots, cur and every Timer's links
	slots []*Timer[T] // each slot's timers, a doubly linked list
	cur   int64       // the last slot processed, in ticks since the epoch
}

// Expirer is what a Timer calls when it fires.
type Expirer interface {
	// Expire runs on the wheel's goroutine, without the wheel's lock: it may Set
	// the timer again, and must not block.
	Expire()
}

// Timer is one deadline on a Wheel. Its zero value is unset; it must not be copied
// once set.
type Timer[T Expirer] struct {
	h          T
	prev, next *Timer[T]
	at         int64 // deadline, unix nanoseconds
	slot       int32 // index in slots
	set        bool
}

// NewWheel starts a wheel ticking every tick, with slots enough for one
// revolution of span (deadlines further away wait for later revolutions).
func NewWheel[T Expirer](tick, span time.Duration) *Wheel[T] {
	n := max(int(span/tick), 1)
	w := &Wheel[T]{
		tick:  tick,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		slots: make([]*Timer[T], n),
		cur:   time.Now().UnixNano()/int64(tick) - 1,
	}
	go w.run()
	return w
}

// Set makes t call h.Expire at (or up to one tick after) at, replacing any deadline
// it had.
func (w *Wheel[T]) Set(t *Timer[T], h T, at time.Time) {
	ns := at.UnixNano()
	w.mu.Lock()
	if t.set {
		w.unlinkLocked(t)
	}
	t.h = h
	t.at = ns
	// A deadline already past, or within the tick being processed, goes into the
	// next slot: it fires on the next tick.
	k := max(ns/int64(w.tick), w.cur+1)
	t.slot = int32(k % int64(len(w.slots)))
	t.next = w.slots[t.slot]
	t.prev = nil
	if t.next != nil {
		t.next.prev = t
	}
	w.slots[t.slot] = t
	t.set = true
	w.mu.Unlock()
}

// Stop unsets t; it does not fire afterwards unless Set again. (An Expire already
// running may still be running.)
func (w *Wheel[T]) Stop(t *Timer[T]) {
	w.mu.Lock()
	if t.set {
		w.unlinkLocked(t)
	}
	w.mu.Unlock()
}

func (w *Wheel[T]) unlinkLocked(t *Timer[T]) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.slots[t.slot] = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next, t.set = nil, nil, false
}

// run is the wheel's goroutine: on each tick it fires the timers of the slots
// passed since the last one whose deadline has come.
func (w *Wheel[T]) run() {
	defer close(w.done)
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	var due []T
	for {
		select {
		case <-w.stop:
			return
		case <-tk.C:
		}
		now := time.Now().UnixNano()
		w.mu.Lock()
		// Slot k holds deadlines in [k, k+1) ticks: it is due once that has passed.
		last := now/int64(w.tick) - 1
		// After a long stall, one revolution visits every slot.
		from := max(w.cur+1, last-int64(len(w.slots))+1)
		for k := from; k <= last; k++ {
			for t := w.slots[k%int64(len(w.slots))]; t != nil; {
				next := t.next
				if t.at <= now {
					w.unlinkLocked(t)
					due = append(due, t.h)
				}
				t = next
			}
		}
		w.cur = last
		w.mu.Unlock()
		var zero T
		for i, h := range due {
			h.Expire()
			due[i] = zero
		}
		due = due[:0]
	}
}

// Close stops the wheel's goroutine; timers set afterwards never fire.
func (w *Wheel[T]) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}
