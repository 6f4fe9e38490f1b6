package main

import (
	"fmt"
	"time"

	"github.com/skein-mq/skein/proto"
)

// The subscribers of a bench run, and the waits for the last messages and acks.

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
