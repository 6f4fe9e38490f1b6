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

// publishPhase runs every publisher until --duration passes, each reached -L, or
// ctx ends, and returns when they have all stopped.
func (r *benchRun) publishPhase(ctx context.Context) {
	var cancel context.CancelFunc
	if r.o.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, r.o.duration)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	if r.win != nil {
		stop := context.AfterFunc(ctx, r.win.close)
		defer stop()
	}
	r.start = time.Now()
	var wg sync.WaitGroup
	for i, p := range r.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.publish(ctx, p, i)
		}()
	}
	wg.Wait()
}

// publish is one publisher's loop. Without -i it writes as many messages as the
// window grants (up to a batch) in one write; with -i, one message per interval.
func (r *benchRun) publish(ctx context.Context, p *benchPub, i int) {
	o := r.o
	qos := byte(o.qos)
	payload := make([]byte, max(o.size, maxBenchHeader))
	pkt := proto.Publish{Topic: p.topic, QoS: qos}
	buf := make([]byte, 0, benchBatchBytes+len(payload)+len(p.topic)+16)
	ids := make([]uint16, 0, benchMaxBatch)
	batch := max(1, min(benchMaxBatch, benchBatchBytes/max(1, o.size)))
	interval := time.Duration(o.interval * float64(time.Millisecond))
	var next time.Time
	if interval > 0 {
		batch = 1
		// Spread the publishers over the interval instead of firing together.
		next = time.Now().Add(interval * time.Duration(i) / time.Duration(len(r.pubs)))
	}
	for ctx.Err() == nil {
		n := batch
		if o.limit > 0 {
			left := o.limit - int64(p.seq)
			if left <= 0 {
				return
			}
			n = int(min(int64(n), left))
		}
		if interval > 0 {
			if !sleepCtx(ctx, time.Until(next)) {
				return
			}
			next = next.Add(interval)
			if behind := time.Since(next); behind > max(100*interval, 100*time.Millisecond) {
				// Far behind (the machine stalled): resume the pace from here rather
				// than bursting. A short lag is caught up, to keep the asked rate.
				next = time.Now()
			}
		}
		if r.win != nil {
			if n = r.win.acquire(n); n == 0 {
				return
			}
		}
		ids = ids[:0]
		if qos > 0 {
			select {
			case id := <-p.ids:
				ids = append(ids, id)
			case <-ctx.Done():
				if r.win != nil {
					r.win.release(int64(n))
				}
				return
			}
		more:
			for len(ids) < n {
				select {
				case id := <-p.ids:
					ids = append(ids, id)
				default:
					break more
				}
			}
			if len(ids) < n {
				if r.win != nil {
					r.win.release(int64(n - len(ids)))
				}
				n = len(ids)
			}
		}
		now := time.Now().UnixNano()
		buf = buf[:0]
		for k := range n {
			hn := putBenchHeader(payload, benchHeader{Seq: p.seq + uint64(k) + 1, Pub: p.num, SentNanos: now})
			pkt.Payload = payload[:max(o.size, hn)]
			if r.win != nil {
				r.win.sent(p.seq + uint64(k) + 1)
			}
			if qos > 0 {
				pkt.PacketID = ids[k]
				p.sentAt[ids[k]].Store(now)
			}
			var err error
			if buf, err = pkt.Append(buf, o.protoVersion); err != nil {
				r.fail(fmt.Errorf("publisher %d: encode: %w", p.num, err))
				return
			}
		}
		if err := p.c.write(buf); err != nil {
			if !r.closing.Load() {
				r.fail(fmt.Errorf("publisher %d: write: %w", p.num, err))
			}
			return
		}
		p.seq += uint64(n)
		p.written.Store(p.seq)
		if qos == 0 {
			p.sent.Add(uint64(n))
		}
	}
}

// readAcks is a publisher's reader: acknowledgements free packet ids (and, without
// subscribers, window slots); PUBREC is answered with PUBREL.
func (r *benchRun) readAcks(p *benchPub) {
	c := p.c
	var out []byte
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		err := c.write(out)
		out = out[:0]
		return err
	}
	ackFreesWindow := r.win != nil && len(r.subs) == 0
	for {
		h, body, err := c.next(flush)
		if err != nil {
			r.connEnded(err)
			return
		}
		t := proto.PacketType(h >> 4)
		switch t {
		case proto.PUBACK, proto.PUBREC, proto.PUBCOMP:
			id, code, err := parseAck(body)
			if err != nil || id == 0 || int(id) >= len(p.sentAt) {
				r.fail(fmt.Errorf("publisher %d: %s for unknown packet id %d", p.num, t, id))
				continue
			}
			if t == proto.PUBREC && !code.IsError() {
				out = appendAck(out, proto.PUBREL, id)
				continue
			}
			at := p.sentAt[id].Swap(0)
			if at == 0 {
				r.fail(fmt.Errorf("publisher %d: %s for packet id %d, which is not in flight", p.num, t, id))
				continue
			}
			if code.IsError() {
				r.fail(fmt.Errorf("publisher %d: %s: %s", p.num, t, code))
			} else {
				p.sent.Add(1)
				if r.latKind == "ack" {
					r.hist.record(int(p.num), c.readAt-at)
				}
			}
			if ackFreesWindow {
				r.win.release(1)
			}
			p.ids <- id // never blocks: the id was taken from this channel and is back once
		case proto.PINGRESP:
		case proto.DISCONNECT:
			r.connEnded(fmt.Errorf("publisher %d: broker sent DISCONNECT", p.num))
			return
		default:
			r.fail(fmt.Errorf("publisher %d: unexpected %s", p.num, t))
		}
	}
}

// readMessages is a subscriber's reader: it checks and times every message and
// acknowledges QoS 1/2 in batches, one write per read.
func (r *benchRun) readMessages(s *benchSub) {
	c := s.c
	var (
		out                     []byte
		recv, fresh, freed, fgn uint64
		lastPub                 uint32
		last                    *seqTracker
	)
	flush := func() error {
		if recv > 0 {
			s.firstRecv.CompareAndSwap(0, c.readAt)
			s.lastRecv.Store(c.readAt)
			s.received.Add(recv)
			s.unique.Add(fresh)
			s.foreign.Add(fgn)
			recv, fresh, fgn = 0, 0, 0
		}
		if freed > 0 {
			r.win.release(int64(freed))
			freed = 0
		}
		if len(out) == 0 {
			return nil
		}
		err := c.write(out)
		out = out[:0]
		return err
	}
	for {
		h, body, err := c.next(flush)
		if err != nil {
			_ = flush() // count what arrived
			r.connEnded(err)
			return
		}
		switch t := proto.PacketType(h >> 4); t {
		case proto.PUBLISH:
			qos, id, payload, err := parsePublish(h&0x0f, body, c.version)
			if err != nil {
				r.connEnded(fmt.Errorf("subscriber %d: %w", s.num, err))
				return
			}
			switch qos {
			case 1:
				out = appendAck(out, proto.PUBACK, id)
			case 2:
				out = appendAck(out, proto.PUBREC, id)
			}
			recv++
			hd, ok := parseBenchHeader(payload)
			if !ok || (s.onlyPub != 0 && hd.Pub != s.onlyPub) || (len(r.pubs) > 0 && int(hd.Pub) > len(r.pubs)) {
				fgn++
				continue
			}
			r.hist.record(s.num, c.readAt-hd.SentNanos)
			if last == nil || hd.Pub != lastPub {
				last = s.trackers[hd.Pub]
				if last == nil {
					last = new(seqTracker)
					s.trackers[hd.Pub] = last
				}
				lastPub = hd.Pub
			}
			if last.add(hd.Seq) != seqDuplicate {
				fresh++
				if r.win != nil && r.win.delivered(hd.Seq) {
					freed++
				}
			}
		case proto.PUBREL:
			id, _, err := parseAck(body)
			if err != nil {
				r.connEnded(fmt.Errorf("subscriber %d: %w", s.num, err))
				return
			}
			out = appendAck(out, proto.PUBCOMP, id)
		case proto.PINGRESP, proto.SUBACK, proto.UNSUBACK:
		case proto.DISCONNECT:
			_ = flush()
			r.connEnded(fmt.Errorf("subscriber %d: broker sent DISCONNECT", s.num))
			return
		default:
			r.fail(fmt.Errorf("subscriber %d: unexpected %s", s.num, t))
		}
	}
}

// readIdle is the reader of a held connection (bench conn): it only notices the end.
func (r *benchRun) readIdle(c *benchConn) {
	for {
		h, _, err := c.next(nil)
		if err != nil {
			r.connEnded(err)
			return
		}
		if proto.PacketType(h>>4) == proto.DISCONNECT {
			r.connEnded(fmt.Errorf("broker sent DISCONNECT"))
			return
		}
	}
}

// awaitAcks waits, after publishing, until every QoS 1/2 message is acknowledged or
// no acknowledgement came for the drain period.
func (r *benchRun) awaitAcks() {
	if r.o.qos == 0 {
		return
	}
	r.waitIdle(func() (uint64, bool) {
		var acked uint64
		complete := true
		for _, p := range r.pubs {
			acked += p.sent.Load()
			if len(p.ids) != cap(p.ids) {
				complete = false
			}
		}
		return acked, complete
	})
}

// waitIdle polls progress until it reports done, or its count stays the same for
// the drain period.
func (r *benchRun) waitIdle(progress func() (count uint64, done bool)) {
	last, done := progress()
	lastChange := time.Now()
	for !done {
		select {
		case <-r.done:
			return
		case <-time.After(benchPoll):
		}
		var n uint64
		n, done = progress()
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= r.o.drain {
			return
		}
	}
}

// totals sums the publishers' and subscribers' counters.
func (r *benchRun) totals() (sent, written, received, unique uint64) {
	for _, p := range r.pubs {
		sent += p.sent.Load()
		written += p.written.Load()
	}
	for _, s := range r.subs {
		received += s.received.Load()
		unique += s.unique.Load()
	}
	return
}

// startMonitor prints the progress line every second and watches the window: when
// it is full and nothing arrived for the drain period, the messages in flight are
// lost (QoS 0 under overload) and the window is reset so that publishing goes on.
func (r *benchRun) startMonitor(label string) {
	r.spawn(func() {
		watch := time.NewTicker(250 * time.Millisecond)
		defer watch.Stop()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		begin := time.Now()
		lastPrint := begin
		var prevSent, prevRecv, prevConn uint64
		var prevHist *histSnapshot
		_, _, _, lastUnique := r.totals()
		lastChange := begin
		for {
			var show bool
			select {
			case <-r.done:
				return
			case <-watch.C:
			case <-tick.C:
				show = true
			}
			now := time.Now()
			sent, _, recv, unique := r.totals()
			if r.win != nil && len(r.subs) > 0 {
				if unique != lastUnique {
					lastUnique, lastChange = unique, now
				} else if r.win.full() && now.Sub(lastChange) >= max(r.o.drain, time.Second) {
					r.win.reset()
					r.resets.Add(1)
					lastChange = now
				}
			}
			if !show {
				continue
			}
			dt := now.Sub(lastPrint).Seconds()
			lastPrint = now
			line := fmt.Sprintf("%s %5.0fs", label, now.Sub(begin).Seconds())
			if r.o.command == "conn" {
				conn := uint64(r.connected.Load())
				line += fmt.Sprintf("  connected %d/%d (%.0f conn/s)  failed %d  dropped %d",
					conn, r.o.clients, float64(conn-prevConn)/dt, r.connFail.Load(), r.dropped.Load())
				prevConn = conn
			} else {
				if len(r.pubs) > 0 {
					line += fmt.Sprintf("  sent %.0f msg/s", float64(sent-prevSent)/dt)
				}
				if len(r.subs) > 0 {
					line += fmt.Sprintf("  recv %.0f msg/s", float64(recv-prevRecv)/dt)
				}
				h := r.hist.snapshot()
				iv := h.since(prevHist)
				prevHist = h
				if iv.total > 0 {
					line += fmt.Sprintf("  p50 %s  p99 %s", fmtMs(float64(iv.quantile(0.5))/1e6), fmtMs(float64(iv.quantile(0.99))/1e6))
				}
				if r.win != nil {
					line += fmt.Sprintf("  inflight %d", r.win.inflightMessages())
				}
			}
			line += fmt.Sprintf("  errors %d\n", r.errs.Load())
			prevSent, prevRecv = sent, recv
			_, _ = io.WriteString(r.stderr, line) // progress is best effort
		}
	})
}

// summary fills what every mode reports.
func (r *benchRun) summary() *benchSummary {
	o := r.o
	transport := "tcp"
	switch {
	case o.ws && o.tls:
		transport = "wss"
	case o.ws:
		transport = "ws"
	case o.tls:
		transport = "tls"
	}
	s := &benchSummary{
		Command:     o.command,
		Transport:   transport,
		Version:     o.protoVersion.String(),
		Publishers:  len(r.pubs),
		Subscribers: len(r.subs),
		QoS:         o.qos,
		PayloadSize: o.size,
		Errors:      r.errs.Load(),
	}
	r.errMu.Lock()
	s.FirstError = r.firstErr
	r.errMu.Unlock()
	if o.command == "pubsub" {
		s.Mode = o.mode
	}
	if r.win != nil {
		s.Inflight = o.inflight
		s.WindowResets = r.resets.Load()
	}
	h := r.hist.snapshot()
	if h.total > 0 {
		s.Latency = newLatencySummary(r.latKind, h)
	}
	return s
}

// fillMessages adds the message counts; every reader has ended.
func (r *benchRun) fillMessages(s *benchSummary, sendEnd time.Time) {
	sent, written, received, _ := r.totals()
	s.Sent = sent
	if r.o.qos > 0 {
		s.Unacked = written - sent
	}
	if d := sendEnd.Sub(r.start).Seconds(); d > 0 && len(r.pubs) > 0 {
		s.SendRate = float64(sent) / d
	}
	s.Received = received
	var firstRecv, lastRecv int64
	for _, sub := range r.subs {
		lastRecv = max(lastRecv, sub.lastRecv.Load())
		if f := sub.firstRecv.Load(); f != 0 && (firstRecv == 0 || f < firstRecv) {
			firstRecv = f
		}
		s.Foreign += sub.foreign.Load()
		for _, t := range sub.trackers {
			s.Duplicated += t.dups
			s.Reordered += t.reordered
		}
		if len(r.pubs) == 0 {
			// Alone, a subscriber knows only the gaps below the highest number seen.
			for _, t := range sub.trackers {
				s.Lost += t.missing(t.max)
			}
			continue
		}
		for _, p := range r.pubs {
			if sub.onlyPub != 0 && p.num != sub.onlyPub {
				continue
			}
			w := p.written.Load()
			s.Expected += w
			s.Lost += sub.trackers[p.num].missing(w)
		}
	}
	from := r.start
	if len(r.pubs) == 0 && firstRecv != 0 {
		// Alone, subscribers count from the first message: the publishers started
		// whenever they did.
		from = time.Unix(0, firstRecv)
	}
	if d := time.Unix(0, lastRecv).Sub(from).Seconds(); received > 0 && d > 0 {
		s.RecvRate = float64(received) / d
	}
}

// runPubSub runs publishers and subscribers together.
func (r *benchRun) runPubSub(ctx context.Context) (*benchSummary, error) {
	o := r.o
	nPub, nSub := o.clients, o.clients
	switch o.mode {
	case modeFanIn:
		nSub = 1
	case modeFanOut:
		nPub = 1
	}
	for i := 1; i <= nSub; i++ {
		s := &benchSub{num: i}
		switch o.mode {
		case modeFanIn:
			s.filter = fanInFilter(o.topic)
		case modeFanOut:
			s.filter, s.onlyPub = expandTopic(o.topic, 1), 1
		case modePairs:
			s.filter, s.onlyPub = expandTopic(o.topic, i), uint32(i)
		}
		r.subs = append(r.subs, s)
	}
	for i := 1; i <= nPub; i++ {
		r.pubs = append(r.pubs, &benchPub{num: uint32(i), topic: expandTopic(o.topic, i)})
	}
	if o.mode == modeFanOut {
		r.win = newWindow(o.inflight, nSub)
	} else {
		r.win = newWindow(o.inflight, 1)
	}
	r.latKind = "end_to_end"
	defer r.teardown()
	if err := r.connectSubs(ctx); err != nil {
		return nil, err
	}
	if err := r.connectPubs(ctx); err != nil {
		return nil, err
	}
	r.startPinger()
	r.startMonitor("pubsub " + o.mode)
	r.publishPhase(ctx)
	pubEnd := time.Now()
	r.awaitAcks()
	sendEnd := time.Now()
	if o.qos == 0 {
		sendEnd = pubEnd
	}
	r.waitIdle(func() (uint64, bool) {
		var expected uint64
		_, written, _, unique := r.totals()
		if o.mode == modeFanOut {
			expected = written * uint64(nSub)
		} else {
			expected = written
		}
		return unique, unique >= expected
	})
	r.teardown()
	s := r.summary()
	s.DurationSec = pubEnd.Sub(r.start).Seconds()
	r.fillMessages(s, sendEnd)
	return s, nil
}

// runPub runs publishers alone; at QoS 1/2 the window bounds the unacknowledged
// messages and the latency is publish to acknowledgement.
func (r *benchRun) runPub(ctx context.Context) (*benchSummary, error) {
	o := r.o
	for i := 1; i <= o.clients; i++ {
		r.pubs = append(r.pubs, &benchPub{num: uint32(i), topic: expandTopic(o.topic, i)})
	}
	if o.qos > 0 {
		r.win = newWindow(o.inflight, 1)
		r.latKind = "ack"
	}
	defer r.teardown()
	if err := r.connectPubs(ctx); err != nil {
		return nil, err
	}
	r.startPinger()
	r.startMonitor("pub")
	r.publishPhase(ctx)
	pubEnd := time.Now()
	r.awaitAcks()
	sendEnd := time.Now()
	if o.qos == 0 {
		sendEnd = pubEnd
	}
	r.teardown()
	s := r.summary()
	s.DurationSec = pubEnd.Sub(r.start).Seconds()
	r.fillMessages(s, sendEnd)
	return s, nil
}

// runSub runs subscribers alone, for --duration or until interrupted.
func (r *benchRun) runSub(ctx context.Context) (*benchSummary, error) {
	o := r.o
	for i := 1; i <= o.clients; i++ {
		r.subs = append(r.subs, &benchSub{num: i, filter: expandTopic(o.topic, i)})
	}
	r.latKind = "end_to_end"
	defer r.teardown()
	if err := r.connectSubs(ctx); err != nil {
		return nil, err
	}
	r.startPinger()
	r.startMonitor("sub")
	r.start = time.Now()
	if o.duration > 0 {
		sleepCtx(ctx, o.duration)
	} else {
		<-ctx.Done()
	}
	end := time.Now()
	r.teardown()
	s := r.summary()
	s.DurationSec = end.Sub(r.start).Seconds()
	r.fillMessages(s, end)
	return s, nil
}

// runConn opens -c connections at --rate, holds them for --duration and reports
// the connection rate and the time from dial to CONNACK.
func (r *benchRun) runConn(ctx context.Context) (*benchSummary, error) {
	o := r.o
	r.latKind = "connect"
	defer r.teardown()
	r.startPinger()
	r.startMonitor("conn")
	r.start = time.Now()
	var lastConnack atomic.Int64
	_ = r.connectAll(ctx, o.clients, false, func(ctx context.Context, i int) error {
		t0 := time.Now()
		c, err := r.open(ctx, fmt.Sprintf("%sc%d", o.prefix, i+1))
		if err != nil {
			r.connFail.Add(1)
			r.fail(err)
			return err
		}
		now := time.Now()
		r.hist.record(i, now.Sub(t0).Nanoseconds())
		r.connected.Add(1)
		for {
			l := lastConnack.Load()
			if now.UnixNano() <= l || lastConnack.CompareAndSwap(l, now.UnixNano()) {
				break
			}
		}
		r.spawn(func() { r.readIdle(c) })
		return nil
	})
	connSec := time.Unix(0, lastConnack.Load()).Sub(r.start).Seconds()
	if o.duration > 0 {
		sleepCtx(ctx, o.duration)
	}
	r.teardown()
	s := r.summary()
	s.Connections = o.clients
	s.Connected = int(r.connected.Load())
	s.ConnFailed = int(r.connFail.Load())
	s.Dropped = int(r.dropped.Load())
	if s.Connected > 0 && connSec > 0 {
		s.ConnSec = connSec
		s.ConnRate = float64(s.Connected) / connSec
	}
	s.DurationSec = o.duration.Seconds()
	return s, nil
}
