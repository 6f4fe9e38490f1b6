package poll

import (
	"sync/atomic"
	"time"
)

// Handler goroutines are reused: a goroutine that served a connection's input
// waits a while for the next ready connection before it exits, so a busy loop does
// not start (and grow the stack of) a goroutine for every readiness. When none is
// waiting, a new one starts: a handler may block (on the disk, on another node),
// so the pool never makes input wait for a free worker.

const (
	// workerIdle is how long a handler goroutine waits for more work.
	workerIdle = time.Second
	// maxIdleWorkers bounds the goroutines waiting for work, and so the memory
	// (their stacks) an idle broker keeps for them.
	maxIdleWorkers = 64
)

// workers hands ready connections to waiting handler goroutines.
type workers struct {
	ready chan *Conn    // unbuffered: a send succeeds only to a waiting goroutine
	stop  chan struct{} // closed by Poller.Close
	idle  chan struct{} // a token per waiting goroutine, at most maxIdleWorkers
	// started counts the goroutines started (HandlerGoroutines).
	started atomic.Uint64
}

func newWorkers() *workers {
	return &workers{ready: make(chan *Conn), stop: make(chan struct{}), idle: make(chan struct{}, maxIdleWorkers)}
}

// start runs c's handler on a waiting goroutine, or on a new one. p.run counts
// the goroutines, not the calls.
func (p *Poller) start(c *Conn) {
	select {
	case p.w.ready <- c:
	default:
		p.run.Add(1)
		p.w.started.Add(1)
		go p.work(c)
	}
}

// HandlerGoroutines returns how many handler goroutines the poller started so far:
// far fewer than the times input was handled, when they are reused.
func (p *Poller) HandlerGoroutines() uint64 { return p.w.started.Load() }

// work serves c, then whatever connection is handed to it next, until no work
// comes within workerIdle, enough others wait, or the poller closes.
func (p *Poller) work(c *Conn) {
	defer p.run.Done()
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		c.serve()
		select {
		case p.w.idle <- struct{}{}:
		default:
			return // enough goroutines wait already
		}
		t.Reset(workerIdle)
		select {
		case c = <-p.w.ready:
			<-p.w.idle
		case <-t.C:
			<-p.w.idle
			return
		case <-p.w.stop:
			<-p.w.idle
			return
		}
	}
}
