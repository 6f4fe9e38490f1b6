package main

import (
	"fmt"
	"io"
	"time"
)

// What a bench run reports: the progress line and the final summary.

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
