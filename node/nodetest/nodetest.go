// Package nodetest starts brokers on loopback and drives them with a packet-level
// MQTT client, for tests that need to see (and break) the protocol byte by byte.
package nodetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/proto"
)

// Timeout bounds every wait in this package: long enough for a loaded CI machine,
// short enough that a hang fails the test instead of the suite.
const Timeout = 10 * time.Second

// Broker is a broker serving on a loopback port for one test.
type Broker struct {
	*node.Broker
	Addr string
}

// Start runs a broker with cfg on 127.0.0.1:0 and shuts it down when the test ends.
// A nil Logger is replaced by one that writes to t.Log. With SKEIN_TEST_EVENT_LOOP=0
// in the environment the broker runs without the event loop, so that a whole suite
// can be run on the goroutine-per-connection path too.
func Start(t testing.TB, cfg node.Config) *Broker {
	t.Helper()
	if os.Getenv("SKEIN_TEST_EVENT_LOOP") == "0" {
		cfg.EventLoop = false
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(LogWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := node.New(cfg)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Serve(ln) // returns ErrClosed at shutdown
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return &Broker{Broker: b, Addr: ln.Addr().String()}
}

// LogWriter returns a writer for a test's logger that sends each line to t.Log
// until the test's cleanups run, and drops lines after: goroutines of a broker or of
// memberlist may still log a line while or after they stop, and t.Log after the test
// completed is a panic and a data race. Call it before registering the cleanups
// that stop what logs, so that its own cleanup runs after them.
//
// A benchmark's log is printed even when it passes, so for a *testing.B the writer
// keeps the last benchLogLines lines and logs them only if the benchmark failed.
func LogWriter(t testing.TB) io.Writer {
	w := &testWriter{t: t}
	_, w.keep = t.(*testing.B)
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.keep && t.Failed() {
			for _, line := range w.kept {
				t.Log(line)
			}
		}
		w.kept = nil
		w.done = true
	})
	return w
}

// benchLogLines bounds the lines a benchmark's LogWriter keeps.
const benchLogLines = 200

// testWriter is LogWriter's writer.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex // guards done and kept, and makes t.Log finish before done is set
	done bool
	keep bool     // a benchmark: keep lines instead of logging them
	kept []string // the last lines, when keep
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	line := strings.TrimRight(string(p), "\n")
	if !w.keep {
		w.t.Log(line)
		return len(p), nil
	}
	if len(w.kept) == benchLogLines {
		w.kept = append(w.kept[:0], w.kept[1:]...)
	}
	w.kept = append(w.kept, line)
	return len(p), nil
}

// Client is a raw MQTT connection: it sends and receives whole packets and checks
// them, without any protocol logic of its own.
type Client struct {
	t       testing.TB
	Conn    net.Conn
	r       *bufio.Reader
	Version proto.Version
}

// Dial opens a TCP connection to addr; the client speaks version v.
func Dial(t testing.TB, addr string, v proto.Version) *Client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &Client{t: t, Conn: nc, r: bufio.NewReader(nc), Version: v}
}

// Connect dials and completes CONNECT/CONNACK with a clean session and the given
// client id, failing the test unless the broker accepts.
func Connect(t testing.TB, addr string, v proto.Version, clientID string) *Client {
	t.Helper()
	c := Dial(t, addr, v)
	ack := c.Connect(&proto.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 60})
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNECT %q refused: %v", clientID, ack.ReasonCode)
	}
	return c
}

// Connect sends cp (its Version set to the client's) and returns the CONNACK.
func (c *Client) Connect(cp *proto.Connect) *proto.Connack {
	c.t.Helper()
	if cp.Version == 0 {
		cp.Version = c.Version
	}
	c.Send(cp)
	return Expect[*proto.Connack](c)
}

// Send writes one packet.
func (c *Client) Send(p proto.Packet) {
	c.t.Helper()
	b, err := p.Append(nil, c.Version)
	if err != nil {
		c.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	c.SendRaw(b)
}

// SendRaw writes bytes as they are.
func (c *Client) SendRaw(b []byte) {
	c.t.Helper()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.Conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Recv reads the next packet, failing the test after Timeout.
func (c *Client) Recv() proto.Packet {
	c.t.Helper()
	p, err := c.RecvWithin(Timeout)
	if err != nil {
		c.t.Fatalf("read packet: %v", err)
	}
	return p
}

// RecvWithin reads the next packet or returns the read error (a timeout error when
// nothing came within d).
func (c *Client) RecvWithin(d time.Duration) (proto.Packet, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	return proto.ReadPacket(c.r, c.Version, 0)
}

// Expect reads the next packet and fails the test unless it is a T.
func Expect[T proto.Packet](c *Client) T {
	c.t.Helper()
	p := c.Recv()
	v, ok := p.(T)
	if !ok {
		var zero T
		c.t.Fatalf("got %s %+v, want %s", p.Type(), p, reflect.TypeOf(zero).Elem().Name())
	}
	return v
}

// ExpectNothing fails the test if a packet arrives within d.
func (c *Client) ExpectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.RecvWithin(d)
	if err == nil {
		c.t.Fatalf("got unexpected %s %+v", p.Type(), p)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		c.t.Fatalf("connection failed while expecting silence: %v", err)
	}
}

// ExpectClosed reads until the broker closes the connection and returns the packets
// it sent before closing (a 5.0 DISCONNECT, typically). It fails the test if the
// connection stays open past Timeout.
func (c *Client) ExpectClosed() []proto.Packet {
	c.t.Helper()
	var got []proto.Packet
	for {
		p, err := c.RecvWithin(Timeout)
		if err == nil {
			got = append(got, p)
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			c.t.Fatalf("connection still open after %v (got %d packets)", Timeout, len(got))
		}
		if err != io.EOF && err != io.ErrUnexpectedEOF && !strings.Contains(err.Error(), "reset") {
			// Any read error other than a timeout means the broker closed the socket;
			// a decode error would be the broker's bug.
			if _, isProto := err.(*proto.Error); isProto {
				c.t.Fatalf("broker sent a malformed packet: %v", err)
			}
		}
		return got
	}
}

// Publish sends a PUBLISH and completes its QoS flow as a publisher, failing the test
// on an unexpected answer. It returns the acknowledgement's reason code (0 for QoS 0).
func (c *Client) Publish(p *proto.Publish) proto.ReasonCode {
	c.t.Helper()
	c.Send(p)
	switch p.QoS {
	case 1:
		ack := Expect[*proto.Puback](c)
		if ack.PacketID != p.PacketID {
			c.t.Fatalf("PUBACK for %d, want %d", ack.PacketID, p.PacketID)
		}
		return ack.ReasonCode
	case 2:
		rec := Expect[*proto.Pubrec](c)
		if rec.PacketID != p.PacketID {
			c.t.Fatalf("PUBREC for %d, want %d", rec.PacketID, p.PacketID)
		}
		c.Send(&proto.Pubrel{PacketID: p.PacketID})
		comp := Expect[*proto.Pubcomp](c)
		if comp.PacketID != p.PacketID {
			c.t.Fatalf("PUBCOMP for %d, want %d", comp.PacketID, p.PacketID)
		}
		return rec.ReasonCode
	}
	return 0
}

// Subscribe subscribes to filters at qos and returns the SUBACK codes.
func (c *Client) Subscribe(id uint16, qos byte, filters ...string) []proto.ReasonCode {
	c.t.Helper()
	s := &proto.Subscribe{PacketID: id}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, proto.Subscription{Filter: f, QoS: qos})
	}
	c.Send(s)
	ack := Expect[*proto.Suback](c)
	if ack.PacketID != id {
		c.t.Fatalf("SUBACK for %d, want %d", ack.PacketID, id)
	}
	return ack.ReasonCodes
}

// ExpectPublish reads the next packet, which must be a PUBLISH of topic with payload,
// and acknowledges it per its QoS (PUBACK, or PUBREC then PUBREL/PUBCOMP).
func (c *Client) ExpectPublish(topic, payload string) *proto.Publish {
	c.t.Helper()
	p := Expect[*proto.Publish](c)
	if p.Topic != topic || string(p.Payload) != payload {
		c.t.Fatalf("got PUBLISH %q %q, want %q %q", p.Topic, p.Payload, topic, payload)
	}
	c.Ack(p)
	return p
}

// Ack completes the receiving side of p's QoS flow.
func (c *Client) Ack(p *proto.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.Send(&proto.Puback{PacketID: p.PacketID})
	case 2:
		c.Send(&proto.Pubrec{PacketID: p.PacketID})
		rel := Expect[*proto.Pubrel](c)
		if rel.PacketID != p.PacketID {
			c.t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p.PacketID)
		}
		c.Send(&proto.Pubcomp{PacketID: p.PacketID})
	}
}

// Disconnect sends DISCONNECT and closes the socket.
func (c *Client) Disconnect() {
	c.t.Helper()
	c.Send(&proto.Disconnect{})
	c.Conn.Close()
}

// Eventually polls cond every few milliseconds until it is true or Timeout passes.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// String helps error messages print packets.
func String(p proto.Packet) string { return fmt.Sprintf("%s %+v", p.Type(), p) }
