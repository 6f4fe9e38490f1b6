package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skein-mq/skein/node/poll"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// conn is one client connection. The reader goroutine (run) owns every field not
// marked otherwise; the writer goroutine owns the write buffer.
type conn struct {
	b  *Broker
	nc socket
	// sock is the socket again when the event loop serves the connection
	// (pollconn.go); nil on a goroutine of its own.
	sock *poll.Conn
	// deadline (unix nanoseconds, 0 for none) and timerAt are the event loop's read
	// deadline and when its timer, kt, is due to look at it (pollconn.go).
	deadline atomic.Int64
	timerAt  atomic.Int64
	kt       poll.Timer[*conn]
	// log is the connection's logger, logv, whose handler is the connection itself
	// (connlog.go).
	log  *slog.Logger
	logv slog.Logger
	// idLogged is set once the client id is known and accepted: from then on it is
	// in every line the connection logs.
	idLogged atomic.Bool
	// timerOff is set when the connection is torn down, before its timer is
	// stopped, so that an Expire running then does not leave it set (pollconn.go).
	timerOff atomic.Bool
	// fr holds the bytes of a packet not yet complete; owned by the reader.
	fr framer

	version   proto.Version
	clientID  string
	keepAlive time.Duration
	// will is the will of this connection, published if it ends abnormally.
	will *proto.Will
	// sess is the attached session, set after CONNACK.
	sess *session.Session
	// expiry is the session expiry interval (5.0) in force; for 3.1.1, 0 for a
	// clean session and never (0xFFFFFFFF) for a persistent one.
	expiry uint32
	// clientReceiveMax, clientMaxPacket and clientAliasMax are the 5.0 client's
	// limits (0: none sent).
	clientReceiveMax int
	clientMaxPacket  int
	clientAliasMax   int
	// serverKeepAlive is set when the broker overrides a 5.0 client's keepalive.
	serverKeepAlive bool
	// wantResponseInfo: the 5.0 client asked for Response Information.
	wantResponseInfo bool
	// aliases are the topic aliases the client set (5.0), index alias-1.
	aliases []string
	// username and anonymous are the identity the topic checks use.
	username   string
	anonymous  bool
	assignedID bool // the broker generated the client id

	// reason and code say why the connection ends; set once, by whoever ends it.
	reasonOnce sync.Once
	reason     closeReason
	code       proto.ReasonCode
	// reasonText explains code to a 5.0 client as the DISCONNECT's Reason String.
	reasonText string
	// kicked is set when another goroutine asked the reader to stop.
	kicked atomic.Bool
	// connected is set once CONNACK accepting the client is queued; after it, version
	// may be read from other goroutines.
	connected atomic.Bool
	// cleanDisconnect is set when the client sent DISCONNECT that suppresses the will.
	cleanDisconnect bool
	// busy is set when the event loop's last round of reads filled its first
	// buffer (pollconn.go); owned by the reader.
	busy bool

	w writer
	// done is closed when the connection is fully torn down (session detached, will
	// handled): a takeover waits on it.
	done chan struct{}
}

// socket is what the broker needs of a connection's transport to write to it and
// close it: a net.Conn, or a *poll.Conn of the event loop.
type socket interface {
	Write(b []byte) (int, error)
	SetWriteDeadline(t time.Time) error
	Close() error
	RemoteAddr() net.Addr
}

func newConn(b *Broker, nc socket) *conn {
	c := &conn{
		b:    b,
		nc:   nc,
		done: make(chan struct{}),
	}
	c.initLog()
	c.w.init(c)
	return c
}

// setReason records why the connection ends; the first caller wins. text, when not
// empty, goes to a 5.0 client as the DISCONNECT's Reason String.
func (c *conn) setReason(r closeReason, code proto.ReasonCode, text ...string) {
	c.reasonOnce.Do(func() {
		c.reason = r
		c.code = code
		if len(text) > 0 {
			c.reasonText = text[0]
		}
	})
}

// kick closes the connection from another goroutine: the writer flushes what is
// queued, then a 5.0 DISCONNECT with the reason's code, then closes the socket, which
// ends the reader and its teardown. Closing through the writer, rather than
// interrupting the reader, works the same for TCP, TLS and WebSocket connections.
func (c *conn) kick(r closeReason) {
	code := proto.ReasonCode(0)
	switch r {
	case closeTakenOver:
		code = proto.SessionTakenOver
	case closeShutdown:
		code = proto.ServerShuttingDown
	case closeKicked:
		code = proto.AdministrativeAction
	case closeSlowConsumer:
		code = proto.QuotaExceeded
	case closeKeepAlive:
		code = proto.KeepAliveTimeout
	}
	c.setReason(r, code, kickText[r])
	c.kicked.Store(true)
	c.w.finish(code)
}

// disconnectPacket is the DISCONNECT a 5.0 client gets before the broker closes its
// connection [MQTT-4.13.2-1]; nil when there is nothing to send.
func (c *conn) disconnectPacket(code proto.ReasonCode) proto.Packet {
	if code == 0 || !c.connected.Load() || c.version != proto.V5 {
		return nil
	}
	d := &proto.Disconnect{ReasonCode: code}
	if c.reasonText != "" {
		// A Reason String is always allowed on DISCONNECT [MQTT-3.1.2-29].
		d.Props.ReasonString = c.reasonText
		d.Props.Set(proto.PropReasonString)
	}
	return d
}

// kickText explains the closes other goroutines decide.
var kickText = map[closeReason]string{
	closeTakenOver:    "another connection took over this client id",
	closeShutdown:     "the broker is shutting down",
	closeKicked:       "disconnected by an administrator",
	closeSlowConsumer: "the client does not read fast enough: its write queue overflowed",
	closeKeepAlive:    keepAliveText,
}

// keepAliveText explains a keepalive timeout to a 5.0 client.
const keepAliveText = "no packet within 1.5 times the keep alive"

// run is the connection's reader goroutine: CONNECT, then the packet loop, then
// teardown.
func (c *conn) run() {
	defer close(c.done)
	defer c.b.removeConn(c)
	err := c.readLoop()
	c.classify(err)
	c.teardown()
}

var (
	errKicked     = errors.New("node: connection closed by the broker")
	errDisconnect = errors.New("node: client sent DISCONNECT")
	errRefused    = errors.New("node: connection refused")
)

// classify turns the error that ended the read loop into a close reason and the 5.0
// DISCONNECT code to send, unless a reason was set already.
func (c *conn) classify(err error) {
	var pe *proto.Error
	var ne net.Error
	switch {
	case c.kicked.Load() || errors.Is(err, errKicked):
		// kick set the reason.
	case errors.Is(err, errDisconnect):
		c.setReason(closeClientDisconnect, 0)
	case errors.Is(err, errRefused):
		c.setReason(closeRefused, 0)
	case errors.As(err, &pe):
		r := closeProtocolError
		if pe.Code == proto.PacketTooLarge {
			r = closeTooLarge
		}
		c.setReason(r, pe.Code, pe.Msg)
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		if c.sess == nil {
			c.setReason(closeConnectTimeout, 0)
		} else {
			c.setReason(closeKeepAlive, proto.KeepAliveTimeout, keepAliveText)
		}
	case errors.Is(err, io.EOF):
		c.setReason(closeEOF, 0)
	default:
		c.setReason(closeNetworkError, 0)
	}
	level := slog.LevelDebug
	if c.reason == closeProtocolError || c.reason == closeTooLarge || c.reason == closeSlowConsumer {
		level = slog.LevelWarn
	}
	if c.log.Enabled(context.Background(), level) {
		c.log.Log(context.Background(), level, "connection closed", "reason", c.reason.String(), "err", err)
	}
}

// teardown flushes and closes the socket, then settles the session and the will.
func (c *conn) teardown() {
	c.b.Stats.Closed[c.reason].Add(1)
	c.w.finish(c.code)
	c.w.wait()
	c.b.connectionGone(c)
}
