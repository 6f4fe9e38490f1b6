package node

import (
	"io"
	"net"
	"syscall"
	"time"

	"github.com/skein-mq/skein/proto"
)

// This file is the read side of a connection served on a goroutine of its own (TLS,
// WebSocket, or TCP without the event loop). While the client is silent the
// goroutine holds no read buffer: on TCP it waits for the socket to become readable
// and only then takes a pooled buffer; on other transports it waits in a read of a
// few bytes.

// plainFirstRead is how many bytes a connection without a raw socket (TLS,
// WebSocket) reads when it waits for the next packet: enough for a ping or an
// acknowledgement, small enough to hold for every idle connection.
const plainFirstRead = 64

// readLoop reads and handles packets until an error, a DISCONNECT or a kick: first
// CONNECT within ConnectTimeout, then packets with 1.5 times the keepalive between
// them [MQTT-3.1.2-24].
func (c *conn) readLoop() error {
	nc := c.nc.(net.Conn)                                          // ServeConn's
	_ = nc.SetReadDeadline(time.Now().Add(c.b.cfg.ConnectTimeout)) // an error shows in the read
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return c.readRaw(nc, rc)
		}
	}
	return c.readPlain(nc)
}

// readDeadline moves the read deadline after packets were handled: the keepalive
// from now, or none for keepalive 0 (3.1.2.10) once CONNECT is done. cleared
// remembers that the deadline is off already.
func (c *conn) readDeadline(nc net.Conn, handled int, cleared *bool) {
	switch {
	case handled == 0 || c.sess == nil:
		// Still within the connect timeout, or no complete packet yet.
	case c.keepAlive > 0:
		_ = nc.SetReadDeadline(time.Now().Add(c.keepAlive * 3 / 2)) // an error shows in the read
	case !*cleared:
		_ = nc.SetReadDeadline(time.Time{}) // an error shows in the read
		*cleared = true
	}
}

// readPlain reads any other net.Conn: a read of a few bytes while waiting for a
// packet, and the rest of a larger packet straight into its own buffer.
func (c *conn) readPlain(nc net.Conn) error {
	first := make([]byte, plainFirstRead)
	cleared := false
	for {
		var data []byte
		var n int
		var err error
		if tail := c.fr.tail(); tail != nil {
			n, err = nc.Read(tail)
			c.fr.wrote(n)
		} else {
			n, err = nc.Read(first)
			data = first[:n]
		}
		c.b.Stats.BytesReceived.Add(int64(n))
		handled, cerr := c.consume(data)
		if cerr != nil {
			return cerr
		}
		if err == io.EOF {
			err = c.fr.eof()
		}
		if err != nil {
			return err
		}
		c.readDeadline(nc, handled, &cleared)
	}
}

// consume decodes and handles the complete packets in data (and one the framer
// completed from bytes read into its tail), keeping an incomplete packet's bytes in
// the framer. Packets decoded from data alias it; data may be reused once consume
// returns. It returns how many packets it handled.
func (c *conn) consume(data []byte) (int, error) {
	handled := 0
	for {
		p, rest, err := c.fr.next(data, c.version, c.b.cfg.MaxPacketSize)
		data = rest
		if p == nil && err == nil {
			return handled, nil
		}
		if err := c.packet(p, err); err != nil {
			return handled, err
		}
		handled++
	}
}

// packet runs one decoded packet, or the error decoding it: the first packet must
// be CONNECT, then come the packets of a connected client.
func (c *conn) packet(p proto.Packet, err error) error {
	if c.sess == nil {
		// The connect timeout ends with the packet, however long CONNECT takes to
		// handle (a takeover waits for the old connection).
		c.deadline.Store(0)
		return c.connect(p, err)
	}
	if err != nil {
		return err
	}
	if c.kicked.Load() {
		return errKicked
	}
	c.b.Stats.PacketsReceived.Add(1)
	return c.handle(p)
}
