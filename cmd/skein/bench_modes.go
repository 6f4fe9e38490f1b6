package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// The bench commands (pubsub, pub, sub, conn), each a sequence of the run's phases.

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
