package poll_test

import (
	"sync"
	"testing"
	"time"

	"github.com/skein-mq/skein/node/poll"
)

// fired records when a timer fired.
type fired struct {
	mu sync.Mutex
	at []time.Time
	ch chan struct{}
}

func (f *fired) Expire() {
	f.mu.Lock()
	f.at = append(f.at, time.Now())
	f.mu.Unlock()
	f.ch <- struct{}{}
}

// TestWheelFiresNotBefore: a timer fires once, never before its deadline; a moved
// timer fires at its new deadline; a stopped one does not fire.
func TestWheelFiresNotBefore(t *testing.T) {
	w := poll.NewWheel[*fired](10*time.Millisecond, 100*time.Millisecond)
	defer w.Close()
	var timers [4]poll.Timer[*fired]
	fs := make([]*fired, len(timers))
	start := time.Now()
	deadlines := []time.Duration{
		-time.Second,           // already past: fires on the next tick
		30 * time.Millisecond,  // within the first revolution
		250 * time.Millisecond, // beyond one revolution of the wheel
		50 * time.Millisecond,  // stopped below
	}
	for i, d := range deadlines {
		fs[i] = &fired{ch: make(chan struct{}, 1)}
		w.Set(&timers[i], fs[i], start.Add(d))
	}
	w.Stop(&timers[3])
	for i := range 3 {
		select {
		case <-fs[i].ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("timer %d (deadline %v) never fired", i, deadlines[i])
		}
		if got := fs[i].at[0]; got.Before(start.Add(deadlines[i])) {
			t.Errorf("timer %d fired %v before its deadline", i, start.Add(deadlines[i]).Sub(got))
		}
	}
	// Moved: set again with a later deadline, it fires then, once.
	w.Set(&timers[1], fs[1], time.Now().Add(40*time.Millisecond))
	w.Set(&timers[1], fs[1], time.Now().Add(80*time.Millisecond))
	moved := time.Now().Add(80 * time.Millisecond)
	<-fs[1].ch
	if got := fs[1].at[1]; got.Before(moved) {
		t.Errorf("moved timer fired %v early", moved.Sub(got))
	}
	time.Sleep(150 * time.Millisecond) // a second firing or the stopped timer would show here
	for i, f := range fs {
		want := 1
		if i == 1 {
			want = 2
		}
		if i == 3 {
			want = 0
		}
		f.mu.Lock()
		if len(f.at) != want {
			t.Errorf("timer %d fired %d times, want %d", i, len(f.at), want)
		}
		f.mu.Unlock()
	}
}
