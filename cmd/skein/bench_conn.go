package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/proto/client"
)

// portsPerSource is how many connections skein bench opens from one source address
// before it moves to the next: Linux hands out about 28000 ephemeral ports per
// address (32768-60999), and a margin keeps TIME_WAIT from earlier runs out of the way.
const portsPerSource = 20000

// benchDialTimeout bounds a dial plus the CONNECT/CONNACK (or SUBSCRIBE/SUBACK)
// exchange.
const benchDialTimeout = 15 * time.Second

// benchDialer opens the bench's network connections: TCP, TLS or WebSocket, spread
// over source addresses when one address has too few ports.
type benchDialer struct {
	addr   string      // host:port
	wsURL  string      // ws:// or wss:// URL over WebSocket, else empty
	tlsCfg *tls.Config // nil for plain TCP or ws://
	srcs   []net.IP    // source addresses; nil lets the kernel choose
	block  int         // connections per source address in turn; 0 for round robin
	next   atomic.Int64
}

// newBenchDialer prepares the dialer for a run of total connections.
func newBenchDialer(ctx context.Context, o *benchOptions, total int) (*benchDialer, error) {
	d := &benchDialer{addr: net.JoinHostPort(o.host, strconv.Itoa(o.port))}
	if o.tls {
		cf := clientFlags{host: o.host, cafile: o.cafile, insecure: o.insecure}
		cfg, err := cf.tlsConfig()
		if err != nil {
			return nil, err
		}
		d.tlsCfg = cfg
	}
	if o.ws {
		scheme := "ws"
		if o.tls {
			scheme = "wss"
		}
		d.wsURL = scheme + "://" + d.addr + o.wsPath
	}
	switch {
	case len(o.ifaddrs) > 0:
		for _, s := range o.ifaddrs {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("--ifaddr: %q is not an IP address", s)
			}
			d.srcs = append(d.srcs, ip)
		}
	case total > portsPerSource && loopbackV4(ctx, o.host):
		// Every 127.x.y.z is local on Linux: each source address brings its own
		// ephemeral ports towards the broker's one address.
		n := (total + portsPerSource - 1) / portsPerSource
		for i := range n {
			d.srcs = append(d.srcs, net.IPv4(127, byte((i+1)>>16), byte((i+1)>>8), byte(i+1)))
		}
		d.block = portsPerSource
	}
	return d, nil
}

// loopbackV4 reports whether host is an IPv4 loopback address or resolves to one.
func loopbackV4(ctx context.Context, host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.To4() != nil && ip.IsLoopback()
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", host)
	return err == nil && len(ips) > 0 && ips[0].IsLoopback()
}

// dial opens the next network connection.
func (d *benchDialer) dial(ctx context.Context) (net.Conn, error) {
	k := int(d.next.Add(1) - 1)
	nd := &net.Dialer{Timeout: benchDialTimeout}
	if len(d.srcs) > 0 {
		i := k % len(d.srcs)
		if d.block > 0 {
			i = k / d.block % len(d.srcs)
		}
		nd.LocalAddr = &net.TCPAddr{IP: d.srcs[i]}
	}
	if d.wsURL != "" {
		return d.dialWS(ctx, nd)
	}
	nc, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil || d.tlsCfg == nil {
		return nc, err
	}
	tc := tls.Client(nc, d.tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// dialWS opens MQTT over WebSocket: an HTTP upgrade offering the "mqtt"
// subprotocol [MQTT-6.0.0-3], then binary frames.
func (d *benchDialer) dialWS(ctx context.Context, nd *net.Dialer) (net.Conn, error) {
	// A transport per connection: it carries this connection's source address, and
	// the upgraded connection leaves the transport's pool anyway.
	tr := &http.Transport{DialContext: nd.DialContext, TLSClientConfig: d.tlsCfg}
	defer tr.CloseIdleConnections()
	wc, _, err := websocket.Dial(ctx, d.wsURL, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{"mqtt"},
	})
	if err != nil {
		return nil, err
	}
	// The connection lives until we close it, not until ctx ends.
	return websocket.NetConn(context.Background(), wc, websocket.MessageBinary), nil
}

// benchConn is one MQTT connection of the bench. It reads packets into a reused
// buffer and parses PUBLISH and acknowledgements in place, so receiving a message
// allocates nothing; other packets go through proto.Decode.
type benchConn struct {
	nc      net.Conn
	version proto.Version
	recvMax int // the broker's Receive Maximum (5.0); 65535 when it sent none

	wmu sync.Mutex // guards writes to nc

	// The read state belongs to one goroutine at a time: the handshake, then the
	// connection's reader.
	buf    []byte
	r, w   int   // unread bytes are buf[r:w]
	readAt int64 // unix nanoseconds when the last read returned
}

// openBenchConn dials and completes CONNECT/CONNACK; a refusal is a
// *client.ConnectError.
func openBenchConn(ctx context.Context, d *benchDialer, cp *proto.Connect) (*benchConn, error) {
	ctx, cancel := context.WithTimeout(ctx, benchDialTimeout)
	defer cancel()
	nc, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &benchConn{nc: nc, version: cp.Version, recvMax: 65535, buf: make([]byte, 256)}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) }) // unblocks the exchange below
	defer stop()
	b, err := cp.Append(nil, cp.Version)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("encode CONNECT: %w", err)
	}
	if err := c.write(b); err != nil {
		nc.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	p, err := c.readPacket()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("wait for CONNACK: %w", err)
	}
	ack, ok := p.(*proto.Connack)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("wait for CONNACK: got %s", p.Type())
	}
	if ack.ReasonCode != 0 {
		nc.Close()
		return nil, &client.ConnectError{Version: cp.Version, Code: ack.ReasonCode, Reason: ack.Props.ReasonString}
	}
	if ack.Props.Has(proto.PropReceiveMaximum) && ack.Props.ReceiveMaximum > 0 {
		c.recvMax = int(ack.Props.ReceiveMaximum)
	}
	if !stop() {
		nc.Close()
		return nil, fmt.Errorf("connect: %w", ctx.Err())
	}
	return c, nil
}

// subscribe sends SUBSCRIBE for one filter and waits for its SUBACK; it runs before
// the connection's reader starts.
func (c *benchConn) subscribe(ctx context.Context, filter string, qos byte) error {
	ctx, cancel := context.WithTimeout(ctx, benchDialTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	s := &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: filter, QoS: qos}}}
	b, err := s.Append(nil, c.version)
	if err != nil {
		return fmt.Errorf("encode SUBSCRIBE: %w", err)
	}
	if err := c.write(b); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	for {
		p, err := c.readPacket()
		if err != nil {
			return fmt.Errorf("wait for SUBACK: %w", err)
		}
		ack, ok := p.(*proto.Suback)
		if !ok {
			continue // nothing is published to us yet that we could lose here
		}
		if len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0].IsError() {
			return fmt.Errorf("subscribe %q refused: %v", filter, ack.ReasonCodes)
		}
		if !stop() {
			return fmt.Errorf("subscribe: %w", ctx.Err())
		}
		return nil
	}
}

// write sends b whole.
func (c *benchConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// close sends DISCONNECT, giving a stalled socket a moment at most, and closes.
func (c *benchConn) close() {
	c.wmu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	b, _ := (&proto.Disconnect{}).Append(nil, c.version) // cannot fail: no properties
	_, _ = c.nc.Write(b)                                 // best effort: we close either way
	c.wmu.Unlock()
	c.nc.Close()
}

// growTo makes the read buffer at least n bytes.
func (c *benchConn) growTo(n int) {
	if len(c.buf) >= n {
		return
	}
	nb := make([]byte, n)
	c.w = copy(nb, c.buf[c.r:c.w])
	c.r = 0
	c.buf = nb
}

// errBenchMalformed is a packet the bench cannot parse.
var errBenchMalformed = errors.New("bench: malformed packet from the broker")

// maxPacket is the largest MQTT packet: a 4-byte remaining length of 268435455.
const maxPacket = 1 + 4 + 268435455

// next returns the next packet's first byte and body. The body aliases the read
// buffer and is valid until the following call. flush, when not nil, runs before
// every read from the network: the reader sends its batched acknowledgements there.
func (c *benchConn) next(flush func() error) (header byte, body []byte, err error) {
	for {
		if b := c.buf[c.r:c.w]; len(b) >= 2 {
			n, size, ok := remainingLength(b[1:])
			if size == 0 {
				return 0, nil, errBenchMalformed
			}
			if ok {
				total := 1 + size + n
				if len(b) >= total {
					c.r += total
					return b[0], b[1+size : total : total], nil
				}
				if total > maxPacket {
					return 0, nil, errBenchMalformed
				}
				c.growTo(total)
			}
		}
		if c.r == c.w {
			c.r, c.w = 0, 0
		} else if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		if flush != nil {
			if err := flush(); err != nil {
				return 0, nil, err
			}
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		c.readAt = time.Now().UnixNano()
		if err != nil {
			return 0, nil, err
		}
	}
}

// readPacket reads and decodes one whole packet.
func (c *benchConn) readPacket() (proto.Packet, error) {
	h, body, err := c.next(nil)
	if err != nil {
		return nil, err
	}
	return proto.Decode(h, body, c.version)
}

// remainingLength decodes the fixed header's variable length at the start of b. ok
// is false when b ends inside it; size is 0 when it is longer than 4 bytes.
func remainingLength(b []byte) (n, size int, ok bool) {
	mult := 1
	for i := range 4 {
		if i >= len(b) {
			return 0, 1, false
		}
		n += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return n, i + 1, true
		}
		mult *= 128
	}
	return 0, 0, false
}

// parsePublish reads a PUBLISH body in place. payload aliases body.
func parsePublish(flags byte, body []byte, v proto.Version) (qos byte, id uint16, payload []byte, err error) {
	qos = flags >> 1 & 3
	if len(body) < 2 {
		return 0, 0, nil, errBenchMalformed
	}
	p := 2 + (int(body[0])<<8 | int(body[1]))
	if qos > 0 {
		if len(body) < p+2 {
			return 0, 0, nil, errBenchMalformed
		}
		id = uint16(body[p])<<8 | uint16(body[p+1])
		p += 2
	}
	if v == proto.V5 {
		if p >= len(body) {
			return 0, 0, nil, errBenchMalformed
		}
		n, size, ok := remainingLength(body[p:]) // properties length: the same varint
		if !ok || size == 0 {
			return 0, 0, nil, errBenchMalformed
		}
		p += size + n
	}
	if p > len(body) {
		return 0, 0, nil, errBenchMalformed
	}
	return qos, id, body[p:], nil
}

// parseAck reads PUBACK, PUBREC, PUBREL or PUBCOMP: the packet id and, in 5.0, the
// reason code when present (0 when absent).
func parseAck(body []byte) (id uint16, code proto.ReasonCode, err error) {
	if len(body) < 2 {
		return 0, 0, errBenchMalformed
	}
	id = uint16(body[0])<<8 | uint16(body[1])
	if len(body) > 2 {
		code = proto.ReasonCode(body[2])
	}
	return id, code, nil
}

// appendAck appends a PUBACK, PUBREC, PUBREL or PUBCOMP with success and no
// properties: two bytes of packet id in every version [MQTT-3.4.2-1].
func appendAck(dst []byte, t proto.PacketType, id uint16) []byte {
	h := byte(t) << 4
	if t == proto.PUBREL {
		h |= 2 // [MQTT-3.6.1-1]
	}
	return append(dst, h, 2, byte(id>>8), byte(id))
}
