package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skein-mq/skein/proto"
)

const (
	// benchMaxBatch bounds the messages a publisher encodes into one write.
	benchMaxBatch = 64
	// benchBatchBytes bounds the bytes of one publisher write.
	benchBatchBytes = 64 << 10
	// benchReadBuffer is the read buffer of a connection that receives messages.
	benchReadBuffer = 64 << 10
	// benchPoll is how often the end-of-run waits look at the counters.
	benchPoll = 5 * time.Millisecond
)

// benchRun is one run: its clients, counters and goroutines. Every goroutine it
// starts has ended when teardown returns.
type benchRun struct {
	o      *benchOptions
	d      *benchDialer
	stderr io.Writer
	start  time.Time // publishing (conn: dialing) began

	hist    latencyHist
	latKind string  // what hist times: end_to_end, ack or connect
	win     *window // the closed loop; nil when open

	pubs []*benchPub
	subs []*benchSub

	connected atomic.Int64 // bench conn: connections open
	connFail  atomic.Int64 // bench conn: failed attempts
	dropped   atomic.Int64 // connections that ended before teardown
	resets    atomic.Uint64
	errs      atomic.Uint64
	errMu     sync.Mutex // guards firstErr
	firstErr  string

	closing  atomic.Bool   // teardown began: read errors are expected
	done     chan struct{} // closed by teardown: stops the pinger and the monitor
	wg       sync.WaitGroup
	teardown func()

	connsMu sync.Mutex // guards conns
	conns   []*benchConn
}

// benchPub is one publisher.
type benchPub struct {
	num    uint32 // client number, 1..c: the %i of its topic
	topic  string
	c      *benchConn
	ids    chan uint16    // free packet ids, QoS 1/2
	sentAt []atomic.Int64 // by packet id: when it was written, for ack latency

	seq     uint64        // last sequence number written; the publish goroutine's
	written atomic.Uint64 // messages written to the socket
	sent    atomic.Uint64 // QoS 0: written; QoS 1/2: acknowledged
}

// benchSub is one subscriber.
type benchSub struct {
	num     int
	filter  string
	c       *benchConn
	onlyPub uint32 // the publisher it expects; 0 for every one

	received  atomic.Uint64 // deliveries, duplicates included
	unique    atomic.Uint64 // distinct messages
	foreign   atomic.Uint64
	lastRecv  atomic.Int64 // unix nanoseconds of the last read that brought messages
	firstRecv atomic.Int64 // and of the first

	trackers map[uint32]*seqTracker // by publisher; the reader's until teardown
}

func newBenchRun(ctx context.Context, o *benchOptions, stderr io.Writer) (*benchRun, error) {
	total := o.clients
	if o.command == "pubsub" {
		total = 2 * o.clients
		if o.mode != modePairs {
			total = o.clients + 1
		}
	}
	d, err := newBenchDialer(ctx, o, total)
	if err != nil {
		return nil, err
	}
	r := &benchRun{o: o, d: d, stderr: stderr, done: make(chan struct{})}
	r.teardown = sync.OnceFunc(r.closeAll)
	return r, nil
}

// fail counts an error and keeps the first one's text for the summary.
func (r *benchRun) fail(err error) {
	r.errs.Add(1)
	r.errMu.Lock()
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
	r.errMu.Unlock()
}

// connEnded handles a reader's end: during teardown it is expected, before it the
// broker dropped the connection.
func (r *benchRun) connEnded(err error) {
	if r.closing.Load() {
		return
	}
	r.dropped.Add(1)
	r.fail(fmt.Errorf("connection lost: %w", err))
}

// open connects one client with the run's settings and tracks the connection.
func (r *benchRun) open(ctx context.Context, id string) (*benchConn, error) {
	o := r.o
	cp := &proto.Connect{Version: o.protoVersion, CleanStart: true, KeepAlive: uint16(o.keepAlive), ClientID: id}
	if o.username != "" {
		cp.UsernameSet, cp.Username = true, o.username
	}
	if o.password != "" {
		cp.PasswordSet, cp.Password = true, []byte(o.password)
	}
	c, err := openBenchConn(ctx, r.d, cp)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", id, err)
	}
	r.connsMu.Lock()
	r.conns = append(r.conns, c)
	r.connsMu.Unlock()
	return c, nil
}

// spawn runs f as a goroutine of the run, waited for by teardown.
func (r *benchRun) spawn(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// connectAll runs open for 0..n-1, --concurrency at a time and at most --rate per
// second. With abort, the first error stops the remaining attempts and is returned.
func (r *benchRun) connectAll(ctx context.Context, n int, abort bool, open func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, r.o.concurrency)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards firstErr
		firstErr error
	)
	t0 := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if r.o.rate > 0 {
			if !sleepCtx(ctx, time.Until(t0.Add(time.Duration(float64(i)/r.o.rate*float64(time.Second))))) {
				break
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := open(ctx, i); err != nil && abort {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if abort {
		return ctx.Err()
	}
	return nil
}

// sleepCtx sleeps for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// closeAll ends the run: the pinger and monitor stop, every connection is closed
// (DISCONNECT first), and every reader has returned. Publishers must have stopped.
func (r *benchRun) closeAll() {
	r.closing.Store(true)
	close(r.done)
	r.connsMu.Lock()
	conns := r.conns
	r.conns = nil
	r.connsMu.Unlock()
	// In parallel: a WebSocket close waits for the broker's close frame.
	work := make(chan *benchConn)
	var wg sync.WaitGroup
	for range min(64, len(conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.close()
			}
		}()
	}
	for _, c := range conns {
		work <- c
	}
	close(work)
	wg.Wait()
	r.wg.Wait()
}

// startPinger sends PINGREQ on every connection each half keepalive, so that idle
// subscribers and held connections stay up [MQTT-3.1.2-23].
func (r *benchRun) startPinger() {
	if r.o.keepAlive == 0 {
		return
	}
	ping, _ := (&proto.Pingreq{}).Append(nil, r.o.protoVersion) // cannot fail
	r.spawn(func() {
		t := time.NewTicker(time.Duration(r.o.keepAlive) * time.Second / 2)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-t.C:
			}
			r.connsMu.Lock()
			conns := append([]*benchConn(nil), r.conns...)
			r.connsMu.Unlock()
			for _, c := range conns {
				if r.closing.Load() {
					return
				}
				_ = c.write(ping) // a broken connection shows in its reader
			}
		}
	})
}

// connectSubs opens, subscribes and starts every subscriber in r.subs.
func (r *benchRun) connectSubs(ctx context.Context) error {
	return r.connectAll(ctx, len(r.subs), true, func(ctx context.Context, i int) error {
		s := r.subs[i]
		c, err := r.open(ctx, fmt.Sprintf("%ss%d", r.o.prefix, s.num))
		if err != nil {
			return err
		}
		if err := c.subscribe(ctx, s.filter, byte(r.o.qos)); err != nil {
			return fmt.Errorf("subscriber %d: %w", s.num, err)
		}
		c.growTo(benchReadBuffer)
		s.c = c
		s.trackers = make(map[uint32]*seqTracker)
		r.spawn(func() { r.readMessages(s) })
		return nil
	})
}

// connectPubs opens and starts every publisher in r.pubs.
func (r *benchRun) connectPubs(ctx context.Context) error {
	return r.connectAll(ctx, len(r.pubs), true, func(ctx context.Context, i int) error {
		p := r.pubs[i]
		c, err := r.open(ctx, fmt.Sprintf("%sp%d", r.o.prefix, p.num))
		if err != nil {
			return err
		}
		p.c = c
		if r.o.qos > 0 {
			n := min(r.o.inflight, c.recvMax, 65535)
			p.ids = make(chan uint16, n)
			for id := 1; id <= n; id++ {
				p.ids <- uint16(id)
			}
			p.sentAt = make([]atomic.Int64, n+1)
			c.growTo(16 << 10)
		}
		r.spawn(func() { r.readAcks(p) })
		return nil
	})
}
