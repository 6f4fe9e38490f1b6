package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/skein-mq/skein/proto"
)

// The publishers of a bench run: pacing, the in-flight window, and their acks.

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
