package node

import (
	"fmt"
	"io"
	"time"

	"github.com/skein-mq/skein/node/poll"
)

// This file serves plain TCP connections from the event loop (node/poll). Such a
// connection has no goroutine while it is idle: when its socket has input, the loop
// runs Input on a goroutine that reads what is there into a pooled buffer, handles
// the complete packets (the framer keeps an incomplete one's bytes) and returns.
// Its writer is the same on-demand goroutine as for any connection, writing through
// the poll.Conn, which waits for room without a goroutine of the loop's. The connect
// timeout and the keepalive are a timer on the broker's timing wheel (a few words in
// the connection) instead of a read deadline. Everything from
// decoding on (connect, handle, teardown) is the code every connection runs.

// servePoll accepts ln's connections into the event loop until ln is closed.
func (b *Broker) servePoll(ln *poll.Listener, p *poll.Poller) error {
	var backoff time.Duration
	for {
		err := p.Accept(ln, b.admitPolled)
		if b.isClosing() {
			return ErrClosed
		}
		if poll.IsTemporary(err) {
			// Out of file descriptors: back off instead of spinning, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			b.log.Warn("accept failed, retrying", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
	}
}

// admitPolled takes an accepted socket in, or refuses it (nil) as ServeConn does.
func (b *Broker) admitPolled(pc *poll.Conn) poll.Handler {
	c := newConn(b, pc)
	c.sock = pc
	if !b.admit(c) {
		return nil
	}
	dl := time.Now().Add(b.cfg.ConnectTimeout)
	c.deadline.Store(dl.UnixNano())
	c.timerAt.Store(dl.UnixNano())
	b.wheel.Set(&c.kt, c, dl)
	return c
}

// Input implements poll.Handler: one round of reading and handling; false once the
// connection is torn down.
func (c *conn) Input() bool {
	c.w.beginRound()
	handled, err := c.readPolled()
	c.w.endRound()
	if handled > 0 {
		c.touch()
	}
	if err == nil {
		return true
	}
	c.classify(err)
	c.teardown()
	c.timerOff.Store(true) // an Expire running now takes its timer off again
	c.b.wheel.Stop(&c.kt)
	c.b.removeConn(c)
	close(c.done)
	c.b.wg.Done()
	return false
}

// readPolled reads until the socket has nothing more, handling the complete packets
// of every chunk. A read buffer is taken per chunk and given back after it, so
// between rounds the connection holds at most an incomplete packet's bytes.
//
// The first read of a round takes a small buffer, unless the previous round filled
// its first one (c.busy): a quiet connection's occasional packet, and the CONNECT of
// a connection storm, do not each hold a large buffer.
func (c *conn) readPolled() (handled int, err error) {
	size := smallReadBufSize
	if c.busy {
		size = readBufSize
	}
	for first := true; ; first = false {
		var buf, dst, data []byte
		chunkHandled := 0
		if tail := c.fr.tail(); len(tail) >= size {
			dst = tail // the rest of a large packet, straight into its buffer
		} else {
			buf = bufs.get(size)[:size]
			dst = buf
		}
		n, err := c.sock.TryRead(dst)
		if n == 0 && err == nil {
			if buf != nil {
				bufs.put(buf)
			}
			return handled, nil // nothing more now
		}
		if n > 0 {
			c.b.Stats.BytesReceived.Add(int64(n))
			if buf == nil {
				c.fr.wrote(n)
			} else {
				data = buf[:n]
			}
			h, cerr := c.consume(data)
			handled += h
			if cerr != nil {
				err = cerr
			}
			chunkHandled = h
		}
		if buf != nil {
			bufs.put(buf) // consume kept nothing that aliases it
		}
		if err == io.EOF {
			err = c.fr.eof()
		}
		if first {
			c.busy = n == len(dst)
		}
		size = readBufSize
		if err != nil || n < len(dst) && !c.sock.HungUp() {
			// A short read emptied the socket: input arriving from now on runs
			// Input again. After a hang-up no more input is reported, so reading
			// goes on to the end of the stream.
			return handled, err
		}
		if chunkHandled > 0 {
			// The round goes on: a client that keeps its socket full would
			// otherwise see no reply until it pauses, and be closed for a
			// keepalive it kept, or as a slow consumer for the replies held.
			c.touch()
			c.w.flushRound()
		}
	}
}

// touch moves the read deadline after packets were handled: 1.5 times the
// keepalive from now [MQTT-3.1.2-24], or none for keepalive 0 (3.1.2.10). The timer
// is reset only when it would look too late; usually it fires at the old deadline,
// finds the new one, and waits again (expire).
func (c *conn) touch() {
	if c.sess == nil || c.keepAlive == 0 {
		return // within the connect timeout, or no keepalive (deadline 0 since CONNECT)
	}
	dl := time.Now().Add(c.keepAlive * 3 / 2).UnixNano()
	c.deadline.Store(dl)
	if at := c.timerAt.Load(); at == 0 || at > dl {
		c.timerAt.Store(dl)
		c.b.wheel.Set(&c.kt, c, time.Unix(0, dl))
	}
}

// Expire implements poll.Expirer for the read deadline's timer: close the
// connection if the deadline has passed, wait again if it has moved.
func (c *conn) Expire() {
	c.timerAt.Store(0)
	dl := c.deadline.Load()
	if dl == 0 {
		return // no deadline now; touch sets the timer with the next one
	}
	if time.Now().UnixNano() < dl {
		c.timerAt.Store(dl)
		c.b.wheel.Set(&c.kt, c, time.Unix(0, dl))
		if c.timerOff.Load() {
			// Torn down meanwhile: its Stop may have come before this Set.
			c.b.wheel.Stop(&c.kt)
		}
		return
	}
	if c.connected.Load() {
		c.kick(closeKeepAlive)
	} else {
		c.kick(closeConnectTimeout)
	}
}
