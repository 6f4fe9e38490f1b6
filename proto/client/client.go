// Package client is an MQTT 3.1, 3.1.1 and 5.0 client built on package proto: it
// connects, publishes and subscribes with the full QoS flows, and keeps the connection
// alive. skein pub, sub and bench use it. It imports proto and the standard library
// only.
package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skein-mq/skein/proto"
)

// Options configure a client.
type Options struct {
	// Addr is the broker's host:port for TCP; ignored when Dial is set.
	Addr string
	// Dial opens the network connection (TLS, WebSocket, a bound source address…);
	// nil dials TCP to Addr.
	Dial func(ctx context.Context) (net.Conn, error)
	// Connect is the CONNECT to send; its Version selects the protocol (default 3.1.1).
	Connect proto.Connect
	// OnMessage is called for every message received, on the client's reader
	// goroutine, in arrival order. As libmosquitto does, a QoS 1 message is passed
	// after its PUBACK is sent, and a QoS 2 message when its PUBREL arrives, so it is
	// passed exactly once even if the broker sends the PUBLISH again.
	OnMessage func(*proto.Publish)
	// OnPacket, when set, sees every packet sent (sent = true) and received, for
	// debug output.
	OnPacket func(sent bool, p proto.Packet)
	// MaxInflight bounds the QoS 1/2 publishes awaiting acknowledgement; Publish
	// blocks for a free slot. Default 20, as mosquitto_pub. The broker's Receive
	// Maximum lowers it.
	MaxInflight int
}

// ConnectError is a CONNACK that refused the connection.
type ConnectError struct {
	Version proto.Version
	Code    proto.ReasonCode
	Reason  string // 5.0 reason string, if any
}

// Error describes the refusal in the terms of the client's version.
func (e *ConnectError) Error() string {
	if e.Version == proto.V5 {
		s := fmt.Sprintf("connection refused: %s (0x%02X)", e.Code, byte(e.Code))
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		return s
	}
	return "connection refused: " + connackText(e.Code)
}

func connackText(c proto.ReasonCode) string {
	switch c {
	case proto.ConnRefusedProtocolVersion:
		return "unacceptable protocol version"
	case proto.ConnRefusedIdentifierRejected:
		return "identifier rejected"
	case proto.ConnRefusedServerUnavailable:
		return "broker unavailable"
	case proto.ConnRefusedBadUsernamePasswd:
		return "bad user name or password"
	case proto.ConnRefusedNotAuthorized:
		return "not authorised"
	}
	return fmt.Sprintf("unknown reason %d", byte(c))
}

// ErrClosed is returned by calls on a client whose connection has ended.
var ErrClosed = errors.New("client: connection closed")

// Client is a connected MQTT client. Its methods are safe for concurrent use.
type Client struct {
	opts    Options
	nc      net.Conn
	version proto.Version
	// Connack is the broker's CONNACK.
	Connack *proto.Connack

	wmu  sync.Mutex // guards wbuf and writes to nc
	wbuf []byte

	mu      sync.Mutex                   // guards pending, nextID
	pending map[uint16]chan proto.Packet // packet id -> waiter for the final ack
	nextID  uint16
	slots   chan struct{} // QoS 1/2 publish window

	// received holds incoming QoS 2 messages between PUBLISH and PUBREL; reader only.
	received map[uint16]*proto.Publish
	// aliases are the topic aliases the broker defined (5.0); reader only.
	aliases map[uint16]string

	lastWrite atomic.Int64 // unix nanoseconds of the last write, for keepalive
	done      chan struct{}
	errOnce   sync.Once
	err       error
	// serverDisconnect is the DISCONNECT the broker sent (5.0), if any.
	serverDisconnect atomic.Pointer[proto.Disconnect]
	wg               sync.WaitGroup
}

// Connect dials, sends CONNECT and waits for CONNACK. A refusal is a *ConnectError.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	if opts.Connect.Version == 0 {
		opts.Connect.Version = proto.V311
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = 20
	}
	dial := opts.Dial
	if dial == nil {
		dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", opts.Addr)
		}
	}
	nc, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	c := &Client{
		opts:     opts,
		nc:       nc,
		version:  opts.Connect.Version,
		pending:  make(map[uint16]chan proto.Packet),
		received: make(map[uint16]*proto.Publish),
		done:     make(chan struct{}),
	}
	br := bufio.NewReader(nc)
	if err := c.handshake(ctx, br); err != nil {
		nc.Close()
		return nil, err
	}
	window := opts.MaxInflight
	if rm := c.Connack.Props.ReceiveMaximum; c.Connack.Props.Has(proto.PropReceiveMaximum) && int(rm) < window {
		window = int(rm)
	}
	c.slots = make(chan struct{}, window)
	c.wg.Add(1)
	go c.readLoop(br)
	if ka := c.keepAlive(); ka > 0 {
		c.wg.Add(1)
		go c.keepAliveLoop(ka)
	}
	return c, nil
}

func (c *Client) handshake(ctx context.Context, br *bufio.Reader) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl) // an error shows in the write or read
	}
	cp := c.opts.Connect
	if err := c.write(&cp); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	p, err := proto.ReadPacket(br, c.version, 0)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("wait for CONNACK: %w", ctx.Err())
		}
		return fmt.Errorf("wait for CONNACK: %w", err)
	}
	c.trace(false, p)
	ack, ok := p.(*proto.Connack)
	if !ok {
		return fmt.Errorf("wait for CONNACK: got %s", p.Type())
	}
	if ack.ReasonCode != 0 {
		return &ConnectError{Version: c.version, Code: ack.ReasonCode, Reason: ack.Props.ReasonString}
	}
	c.Connack = ack
	_ = c.nc.SetDeadline(time.Time{})
	return nil
}

// keepAlive is the keepalive in force: the broker's Server Keep Alive (5.0) wins.
func (c *Client) keepAlive() time.Duration {
	ka := c.opts.Connect.KeepAlive
	if c.Connack.Props.Has(proto.PropServerKeepAlive) {
		ka = c.Connack.Props.ServerKeepAlive
	}
	return time.Duration(ka) * time.Second
}

// ClientID returns the client id in use: the one sent, or the one the broker assigned.
func (c *Client) ClientID() string {
	if c.Connack.Props.Has(proto.PropAssignedClientID) {
		return c.Connack.Props.AssignedClientID
	}
	return c.opts.Connect.ClientID
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (nil while it is up, ErrClosed after Close).
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// ServerDisconnect returns the DISCONNECT the broker sent before closing, if any.
func (c *Client) ServerDisconnect() *proto.Disconnect { return c.serverDisconnect.Load() }

func (c *Client) trace(sent bool, p proto.Packet) {
	if c.opts.OnPacket != nil {
		c.opts.OnPacket(sent, p)
	}
}

// write encodes and sends one packet.
func (c *Client) write(p proto.Packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := p.Append(c.wbuf[:0], c.version)
	if err != nil {
		return fmt.Errorf("encode %s: %w", p.Type(), err)
	}
	c.wbuf = b
	c.trace(true, p)
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// fail ends the connection with err and wakes every waiter.
func (c *Client) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		c.nc.Close()
		close(c.done)
	})
}

func (c *Client) readLoop(br *bufio.Reader) {
	defer c.wg.Done()
	for {
		p, err := proto.ReadPacket(br, c.version, 0)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		c.trace(false, p)
		if err := c.handle(p); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *Client) handle(p proto.Packet) error {
	switch p := p.(type) {
	case *proto.Publish:
		return c.handlePublish(p)
	case *proto.Pubrel:
		m := c.received[p.PacketID]
		delete(c.received, p.PacketID)
		if err := c.write(&proto.Pubcomp{PacketID: p.PacketID}); err != nil {
			return err
		}
		if m != nil && c.opts.OnMessage != nil {
			c.opts.OnMessage(m)
		}
	case *proto.Pubrec:
		if p.ReasonCode.IsError() {
			c.complete(p.PacketID, p)
			return nil
		}
		return c.write(&proto.Pubrel{PacketID: p.PacketID})
	case *proto.Puback:
		c.complete(p.PacketID, p)
	case *proto.Pubcomp:
		c.complete(p.PacketID, p)
	case *proto.Suback:
		c.complete(p.PacketID, p)
	case *proto.Unsuback:
		c.complete(p.PacketID, p)
	case *proto.Pingresp:
	case *proto.Disconnect:
		c.serverDisconnect.Store(p)
		return fmt.Errorf("broker sent DISCONNECT: %s", p.ReasonCode)
	default:
		return fmt.Errorf("unexpected %s from the broker", p.Type())
	}
	return nil
}

func (c *Client) handlePublish(p *proto.Publish) error {
	if p.Props.Has(proto.PropTopicAlias) {
		// [MQTT-3.3.2-7] a topic with an alias defines it; an empty topic uses it.
		a := p.Props.TopicAlias
		if p.Topic != "" {
			if c.aliases == nil {
				c.aliases = make(map[uint16]string)
			}
			c.aliases[a] = p.Topic
		} else if t, ok := c.aliases[a]; ok {
			p.Topic = t
		} else {
			return fmt.Errorf("broker used topic alias %d before defining it", a)
		}
	}
	switch p.QoS {
	case 1:
		if err := c.write(&proto.Puback{PacketID: p.PacketID}); err != nil {
			return err
		}
	case 2:
		// Held until PUBREL; a retransmission replaces the held copy.
		c.received[p.PacketID] = p
		return c.write(&proto.Pubrec{PacketID: p.PacketID})
	}
	if c.opts.OnMessage != nil {
		c.opts.OnMessage(p)
	}
	return nil
}

// complete hands the final acknowledgement of id to its waiter.
func (c *Client) complete(id uint16, p proto.Packet) {
	c.mu.Lock()
	ch := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- p
	}
}

// register takes a free packet id and a channel for its acknowledgement.
func (c *Client) register() (uint16, chan proto.Packet) {
	ch := make(chan proto.Packet, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.pending[c.nextID]; !used {
			c.pending[c.nextID] = ch
			return c.nextID, ch
		}
	}
}

func (c *Client) unregister(id uint16) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// roundTrip sends the packet built for a fresh packet id and waits for its final ack.
func (c *Client) roundTrip(ctx context.Context, build func(id uint16) proto.Packet) (proto.Packet, error) {
	id, ch := c.register()
	if err := c.write(build(id)); err != nil {
		c.unregister(id)
		c.fail(err)
		return nil, err
	}
	select {
	case ack := <-ch:
		return ack, nil
	case <-c.done:
		c.unregister(id)
		return nil, fmt.Errorf("%w: %w", ErrClosed, c.err)
	case <-ctx.Done():
		c.unregister(id)
		return nil, ctx.Err()
	}
}

// AckError is a 5.0 acknowledgement with a failure reason code.
type AckError struct {
	Packet proto.PacketType
	Code   proto.ReasonCode
	Reason string
}

// Error implements error.
func (e *AckError) Error() string {
	s := fmt.Sprintf("%s: %s (0x%02X)", e.Packet, e.Code, byte(e.Code))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Publish sends p and, for QoS 1 and 2, waits until the broker has acknowledged it
// (PUBACK, or PUBREC then PUBCOMP). p.PacketID is assigned here. A 5.0 failure
// reason code is returned as *AckError.
func (c *Client) Publish(ctx context.Context, p *proto.Publish) error {
	if p.QoS == 0 {
		if err := c.write(p); err != nil {
			c.fail(err)
			return err
		}
		return nil
	}
	select {
	case c.slots <- struct{}{}:
	case <-c.done:
		return fmt.Errorf("%w: %w", ErrClosed, c.err)
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.slots }()
	ack, err := c.roundTrip(ctx, func(id uint16) proto.Packet {
		p.PacketID = id
		return p
	})
	if err != nil {
		return err
	}
	switch a := ack.(type) {
	case *proto.Puback:
		if a.ReasonCode.IsError() {
			return &AckError{Packet: proto.PUBACK, Code: a.ReasonCode, Reason: a.Props.ReasonString}
		}
	case *proto.Pubrec:
		return &AckError{Packet: proto.PUBREC, Code: a.ReasonCode, Reason: a.Props.ReasonString}
	case *proto.Pubcomp:
		if a.ReasonCode.IsError() {
			return &AckError{Packet: proto.PUBCOMP, Code: a.ReasonCode, Reason: a.Props.ReasonString}
		}
	}
	return nil
}

// Subscribe sends s (its PacketID is assigned here) and returns the SUBACK.
func (c *Client) Subscribe(ctx context.Context, s *proto.Subscribe) (*proto.Suback, error) {
	ack, err := c.roundTrip(ctx, func(id uint16) proto.Packet {
		s.PacketID = id
		return s
	})
	if err != nil {
		return nil, err
	}
	return ack.(*proto.Suback), nil
}

// Unsubscribe sends u (its PacketID is assigned here) and returns the UNSUBACK.
func (c *Client) Unsubscribe(ctx context.Context, u *proto.Unsubscribe) (*proto.Unsuback, error) {
	ack, err := c.roundTrip(ctx, func(id uint16) proto.Packet {
		u.PacketID = id
		return u
	})
	if err != nil {
		return nil, err
	}
	return ack.(*proto.Unsuback), nil
}

// Disconnect sends DISCONNECT (d may be nil for a normal one) and closes.
func (c *Client) Disconnect(d *proto.Disconnect) error {
	if d == nil {
		d = &proto.Disconnect{}
	}
	err := c.write(d)
	c.fail(ErrClosed)
	c.wg.Wait()
	return err
}

// Close closes the connection without DISCONNECT, as a crash would: the broker
// publishes the will.
func (c *Client) Close() {
	c.fail(ErrClosed)
	c.wg.Wait()
}

// keepAliveLoop sends PINGREQ when nothing was written for the keepalive period
// [MQTT-3.1.2-23].
func (c *Client) keepAliveLoop(ka time.Duration) {
	defer c.wg.Done()
	tick := time.NewTicker(ka / 2)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
			last := time.Unix(0, c.lastWrite.Load())
			if time.Since(last) >= ka/2 {
				if err := c.write(&proto.Pingreq{}); err != nil {
					c.fail(err)
					return
				}
			}
		}
	}
}
