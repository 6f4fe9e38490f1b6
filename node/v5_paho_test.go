package node_test

// MQTT 5.0 as a new user meets it: every feature of the specification driven through
// a real 5.0 client library, Eclipse paho.golang, over loopback. The byte-level
// checks of the same features are in v5_features_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paholog "github.com/eclipse/paho.golang/paho/log"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/auth"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// v5Quiet is how long a test listens to be sure something does NOT arrive.
const v5Quiet = 300 * time.Millisecond

// v5Ptr returns a pointer to v: paho's optional properties are pointers.
func v5Ptr[T any](v T) *T { return &v }

// v5Paho is a connected paho client that collects what it receives.
type v5Paho struct {
	*paho.Client
	t       *testing.T
	Connack *paho.Connack
	msgs    chan *paho.Publish
	discs   chan *paho.Disconnect
	wire    *v5WireConn
}

// v5WireConn records every byte the client reads, so a test can check the packets
// on the wire as well as what the library made of them. It is a sync.Locker, which
// paho takes while it writes a packet: a wrapped net.Conn loses the single writev of
// *net.TCPConn, and paho's pinger would otherwise interleave a PINGREQ with the
// pieces of another packet.
type v5WireConn struct {
	net.Conn
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
	wmu sync.Mutex // held by paho around each packet it writes
}

func (w *v5WireConn) Lock()   { w.wmu.Lock() }
func (w *v5WireConn) Unlock() { w.wmu.Unlock() }

func (w *v5WireConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.mu.Lock()
	w.buf.Write(p[:n])
	w.mu.Unlock()
	return n, err
}

// packets decodes what the client has read so far.
func (w *v5WireConn) packets(t *testing.T) []proto.Packet {
	t.Helper()
	w.mu.Lock()
	r := bufio.NewReader(bytes.NewReader(slices.Clone(w.buf.Bytes())))
	w.mu.Unlock()
	var out []proto.Packet
	for {
		p, err := proto.ReadPacket(r, proto.V5, 0)
		if err != nil {
			return out // EOF, or a packet not complete yet
		}
		out = append(out, p)
	}
}

// v5PahoTry dials addr and sends cp with a paho client; opts adjust the client's
// configuration. On refusal it returns a nil client with the CONNACK and the error.
func v5PahoTry(t *testing.T, addr string, cp *paho.Connect, opts ...func(*paho.ClientConfig)) (*v5Paho, *paho.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, nodetest.Timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := &v5Paho{
		t:     t,
		msgs:  make(chan *paho.Publish, 4096),
		discs: make(chan *paho.Disconnect, 1),
		wire:  &v5WireConn{Conn: nc},
	}
	cfg := paho.ClientConfig{
		Conn: c.wire,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.discs <- d:
			default:
			}
		},
		OnClientError: func(error) {}, // connection losses are what several tests cause
	}
	for _, o := range opts {
		o(&cfg)
	}
	c.Client = paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		return nil, ack, err
	}
	c.Connack = ack
	t.Cleanup(c.stop)
	return c, ack, nil
}

// v5PahoConnect is v5PahoTry failing the test unless the broker accepts.
func v5PahoConnect(t *testing.T, addr string, cp *paho.Connect, opts ...func(*paho.ClientConfig)) *v5Paho {
	t.Helper()
	c, ack, err := v5PahoTry(t, addr, cp, opts...)
	if err != nil {
		code := -1
		if ack != nil {
			code = int(ack.ReasonCode)
		}
		t.Fatalf("paho CONNECT %q: %v (reason code %d)", cp.ClientID, err, code)
	}
	return c
}

// v5PahoClean connects a paho client with a clean start and no session expiry.
func v5PahoClean(t *testing.T, addr, id string, opts ...func(*paho.ClientConfig)) *v5Paho {
	t.Helper()
	return v5PahoConnect(t, addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}, opts...)
}

// v5PahoSession returns a CONNECT with the given clean start and session expiry.
func v5PahoSession(id string, clean bool, expiry uint32) *paho.Connect {
	return &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5Ptr(expiry)}}
}

// stop disconnects normally (if still connected) and waits for the client's
// goroutines.
func (c *v5Paho) stop() {
	_ = c.Disconnect(&paho.Disconnect{}) // fails harmlessly when already closed
	select {
	case <-c.Done():
	case <-time.After(nodetest.Timeout):
		c.t.Errorf("paho client did not stop")
	}
}

// drop closes the socket without DISCONNECT, as a crash would.
func (c *v5Paho) drop() {
	c.TerminateConnectionForTest()
	select {
	case <-c.Done():
	case <-time.After(nodetest.Timeout):
		c.t.Fatalf("paho client did not notice its closed socket")
	}
}

// next returns the next message received.
func (c *v5Paho) next() *paho.Publish {
	c.t.Helper()
	select {
	case p := <-c.msgs:
		return p
	case <-time.After(nodetest.Timeout):
		c.t.Fatalf("no PUBLISH within %v", nodetest.Timeout)
		return nil
	}
}

// expect returns the next message, failing the test unless it has topic and payload.
func (c *v5Paho) expect(topic, payload string) *paho.Publish {
	c.t.Helper()
	p := c.next()
	if p.Topic != topic || string(p.Payload) != payload {
		c.t.Fatalf("got PUBLISH %q %q, want %q %q", p.Topic, p.Payload, topic, payload)
	}
	return p
}

// none fails the test if a message arrives within d.
func (c *v5Paho) none(d time.Duration) {
	c.t.Helper()
	select {
	case p := <-c.msgs:
		c.t.Fatalf("got unexpected PUBLISH %q %q", p.Topic, p.Payload)
	case <-time.After(d):
	}
}

// serverDisconnect waits for the broker's DISCONNECT.
func (c *v5Paho) serverDisconnect() *paho.Disconnect {
	c.t.Helper()
	select {
	case d := <-c.discs:
		return d
	case <-time.After(nodetest.Timeout):
		c.t.Fatalf("no DISCONNECT from the broker within %v", nodetest.Timeout)
		return nil
	}
}

// sub subscribes and fails the test on a failure code.
func (c *v5Paho) sub(subs ...paho.SubscribeOptions) *paho.Suback {
	c.t.Helper()
	return c.subWith(nil, subs...)
}

func (c *v5Paho) subWith(props *paho.SubscribeProperties, subs ...paho.SubscribeOptions) *paho.Suback {
	c.t.Helper()
	ack, err := c.Subscribe(v5Ctx(c.t), &paho.Subscribe{Subscriptions: subs, Properties: props})
	if err != nil {
		c.t.Fatalf("subscribe %+v: %v", subs, err)
	}
	return ack
}

// pub publishes and returns the acknowledgement's reason code, failing the test on
// an error other than a failure code.
func (c *v5Paho) pub(p *paho.Publish) byte {
	c.t.Helper()
	resp, err := c.Publish(v5Ctx(c.t), p)
	if resp == nil {
		c.t.Fatalf("publish %q: %v", p.Topic, err)
	}
	return resp.ReasonCode
}

func v5Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// v5Props returns a message's properties, never nil.
func v5Props(p *paho.Publish) *paho.PublishProperties {
	if p.Properties == nil {
		return &paho.PublishProperties{}
	}
	return p.Properties
}

// v5Since fails the test unless d lies in [lo, hi].
func v5Within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Fatalf("%s after %v, want between %v and %v", what, d, lo, hi)
	}
}

// v5Settled waits until n clients are connected and the sessions of those that left
// are settled (detached, expiry timers set, wills handled).
func v5Settled(t *testing.T, b *nodetest.Broker, n int64) {
	t.Helper()
	nodetest.Eventually(t, strconv.FormatInt(n, 10)+" connected clients", func() bool {
		if b.Stats.Connected.Load() != n {
			return false
		}
		b.SessionCount() // takes Broker.mu: the section that detached the session is over
		return true
	})
}

// v5Authz allows everything except publishing and subscribing under deny/.
type v5Authz struct{}

func (v5Authz) Authenticate(auth.ConnectInfo) error { return nil }
func (v5Authz) Identity(ci auth.ConnectInfo) (string, bool) {
	return ci.Username, !ci.UsernameSet
}
func (v5Authz) CanPublish(_, _ string, _ bool, topic string) bool { return !v5Denied(topic) }
func (v5Authz) CanRead(_, _ string, _ bool, topic string) bool    { return true }
func (v5Authz) CanSubscribe(_, _ string, _ bool, filter string) bool {
	return !v5Denied(filter)
}

func v5Denied(s string) bool { return len(s) >= 5 && s[:5] == "deny/" }

// TestPahoSessionExpiry: Session Expiry Interval in CONNECT and DISCONNECT, Clean
// Start, and the broker ending a session whose interval ran out (5.0 section
// 3.1.2.11.2, 3.1.2.4, 3.14.2.2.2).
func TestPahoSessionExpiry(t *testing.T) {
	t.Parallel()
	// park makes id's session hold a QoS 1 subscription to topic, offline.
	park := func(t *testing.T, b *nodetest.Broker, id, topic string, expiry uint32, disc *paho.Disconnect) {
		t.Helper()
		c := v5PahoConnect(t, b.Addr, v5PahoSession(id, true, expiry))
		if c.Connack.SessionPresent {
			t.Fatalf("clean start: session present 1")
		}
		c.sub(paho.SubscribeOptions{Topic: topic, QoS: 1})
		if err := c.Disconnect(disc); err != nil {
			t.Fatalf("disconnect: %v", err)
		}
		<-c.Done()
	}
	t.Run("resumed within the interval", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		pub := v5PahoClean(t, b.Addr, "pub")
		park(t, b, "s", "se/t", 60, &paho.Disconnect{})
		v5Settled(t, b, 1)
		if code := pub.pub(&paho.Publish{Topic: "se/t", QoS: 1, Payload: []byte("kept")}); code != 0 {
			t.Fatalf("PUBACK 0x%02X for an offline session's subscription, want 0", code)
		}
		c := v5PahoConnect(t, b.Addr, v5PahoSession("s", false, 60))
		if !c.Connack.SessionPresent {
			t.Fatalf("resume within the expiry: session present 0, want 1 [MQTT-3.2.2-3]")
		}
		c.expect("se/t", "kept")
	})
	t.Run("broker ends it when the interval passes", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		park(t, b, "s", "se/t", 1, &paho.Disconnect{})
		left := time.Now()
		nodetest.Eventually(t, "the session to expire", func() bool { return b.Stats.SessionsExpired.Load() == 1 })
		v5Within(t, "session expired", time.Since(left), 900*time.Millisecond, 5*time.Second)
		pub := v5PahoClean(t, b.Addr, "pub")
		if code := pub.pub(&paho.Publish{Topic: "se/t", QoS: 1, Payload: []byte("lost")}); code != byte(proto.NoMatchingSubscribers) {
			t.Fatalf("PUBACK 0x%02X after the session expired, want 0x10", code)
		}
		c := v5PahoConnect(t, b.Addr, v5PahoSession("s", false, 60))
		if c.Connack.SessionPresent {
			t.Fatalf("resume after the expiry: session present 1, want 0")
		}
		c.none(v5Quiet)
	})
	t.Run("DISCONNECT sets the interval to 0", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		park(t, b, "s", "se/t", 3600, &paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: v5Ptr[uint32](0)}})
		v5Settled(t, b, 0)
		if n := b.SessionCount(); n != 0 {
			t.Fatalf("%d sessions after DISCONNECT with session expiry 0, want 0", n)
		}
		c := v5PahoConnect(t, b.Addr, v5PahoSession("s", false, 60))
		if c.Connack.SessionPresent {
			t.Fatalf("session present 1 after DISCONNECT ended it")
		}
	})
	t.Run("DISCONNECT lengthens the interval", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		park(t, b, "s", "se/t", 1, &paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: v5Ptr[uint32](60)}})
		v5Settled(t, b, 0)
		deadline := time.Now().Add(1500 * time.Millisecond) // past the CONNECT's 1 s
		for time.Now().Before(deadline) {
			if b.Stats.SessionsExpired.Load() != 0 {
				t.Fatalf("session expired after 1 s although DISCONNECT set 60 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		c := v5PahoConnect(t, b.Addr, v5PahoSession("s", false, 60))
		if !c.Connack.SessionPresent {
			t.Fatalf("session present 0: DISCONNECT's session expiry was ignored")
		}
	})
	t.Run("clean start discards the session", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		park(t, b, "s", "se/t", 3600, &paho.Disconnect{})
		c := v5PahoConnect(t, b.Addr, v5PahoSession("s", true, 3600))
		if c.Connack.SessionPresent {
			t.Fatalf("clean start: session present 1, want 0 [MQTT-3.2.2-2]")
		}
		pub := v5PahoClean(t, b.Addr, "pub")
		if code := pub.pub(&paho.Publish{Topic: "se/t", QoS: 1, Payload: []byte("x")}); code != byte(proto.NoMatchingSubscribers) {
			t.Fatalf("PUBACK 0x%02X: the discarded session's subscription still matches", code)
		}
	})
	t.Run("assigned client identifier resumes", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		c := v5PahoConnect(t, b.Addr, v5PahoSession("", true, 60))
		id := c.Connack.Properties.AssignedClientID
		if id == "" || c.ClientID() != id {
			t.Fatalf("assigned client id %q, paho uses %q [MQTT-3.2.2-16]", id, c.ClientID())
		}
		c.sub(paho.SubscribeOptions{Topic: "se/a", QoS: 1})
		c.stop()
		again := v5PahoConnect(t, b.Addr, v5PahoSession(id, false, 60))
		if !again.Connack.SessionPresent {
			t.Fatalf("reconnect with the assigned id: session present 0")
		}
		if again.Connack.Properties.AssignedClientID != "" {
			t.Fatalf("CONNACK assigns %q to a client that sent an id", again.Connack.Properties.AssignedClientID)
		}
	})
}

// TestPahoWill: the will and its delay interval, cancelled by a reconnect within the
// delay, and DISCONNECT 0x04 asking for it (5.0 section 3.1.3.2.2, 3.14.2.1).
func TestPahoWill(t *testing.T) {
	t.Parallel()
	will := func(delay uint32) *paho.Connect {
		cp := v5PahoSession("w", true, 60)
		cp.WillMessage = &paho.WillMessage{Topic: "will/w", Payload: []byte("gone"), QoS: 1}
		// paho v0.23.0 drops the will's PUBLISH-only properties (content type,
		// response topic...) when it encodes CONNECT; TestV5WillProperties checks
		// those on the wire.
		cp.WillProperties = &paho.WillProperties{
			WillDelayInterval: v5Ptr(delay),
			User:              paho.UserProperties{{Key: "why", Value: "test"}, {Key: "why", Value: "again"}},
		}
		return cp
	}
	start := func(t *testing.T) (*nodetest.Broker, *v5Paho) {
		b := nodetest.Start(t, node.DefaultConfig())
		watcher := v5PahoClean(t, b.Addr, "watcher")
		watcher.sub(paho.SubscribeOptions{Topic: "will/#", QoS: 1})
		return b, watcher
	}
	t.Run("published after the will delay", func(t *testing.T) {
		t.Parallel()
		b, watcher := start(t)
		c := v5PahoConnect(t, b.Addr, will(1))
		c.drop()
		closed := time.Now()
		got := watcher.expect("will/w", "gone")
		v5Within(t, "will published", time.Since(closed), 800*time.Millisecond, 5*time.Second)
		// Will properties travel with the will [MQTT-3.1.3-10].
		if pr := v5Props(got); !slices.Equal(pr.User, paho.UserProperties{{Key: "why", Value: "test"}, {Key: "why", Value: "again"}}) {
			t.Fatalf("will user properties %+v, want both, in order", pr.User)
		}
	})
	t.Run("reconnect within the delay cancels it", func(t *testing.T) {
		t.Parallel()
		b, watcher := start(t)
		c := v5PahoConnect(t, b.Addr, will(1))
		c.drop()
		v5Settled(t, b, 1)
		again := v5PahoConnect(t, b.Addr, v5PahoSession("w", false, 60))
		if !again.Connack.SessionPresent {
			t.Fatalf("session present 0 on the reconnect")
		}
		watcher.none(1500 * time.Millisecond)
	})
	t.Run("DISCONNECT 0x04 publishes it", func(t *testing.T) {
		t.Parallel()
		b, watcher := start(t)
		c := v5PahoConnect(t, b.Addr, will(0))
		if err := c.Disconnect(&paho.Disconnect{ReasonCode: byte(proto.DisconnectWithWill)}); err != nil {
			t.Fatal(err)
		}
		watcher.expect("will/w", "gone")
	})
	t.Run("DISCONNECT 0x00 discards it", func(t *testing.T) {
		t.Parallel()
		b, watcher := start(t)
		c := v5PahoConnect(t, b.Addr, will(0))
		c.stop()
		v5Settled(t, b, 1)
		pub := v5PahoClean(t, b.Addr, "pub")
		pub.pub(&paho.Publish{Topic: "will/sentinel", QoS: 1, Payload: []byte("s")})
		watcher.expect("will/sentinel", "s") // a will would have come first
		watcher.none(v5Quiet)
	})
	t.Run("will QoS above the maximum refused", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.MaxQoS = 1
		b := nodetest.Start(t, cfg)
		cp := will(0)
		cp.WillMessage.QoS = 2
		_, ack, err := v5PahoTry(t, b.Addr, cp)
		if err == nil || ack == nil || ack.ReasonCode != byte(proto.QoSNotSupported) {
			t.Fatalf("CONNECT with a QoS 2 will and maximum QoS 1: %v %+v, want CONNACK 0x9B [MQTT-3.2.2-12]", err, ack)
		}
	})
}

// TestPahoReasonCodes: the reason codes a 5.0 client gets in acknowledgements and
// in the broker's DISCONNECT (5.0 section 2.4).
func TestPahoReasonCodes(t *testing.T) {
	t.Parallel()
	t.Run("PUBACK and PUBREC 0x10 no matching subscribers", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		c := v5PahoClean(t, b.Addr, "c")
		if code := c.pub(&paho.Publish{Topic: "nobody", QoS: 1, Payload: []byte("x")}); code != byte(proto.NoMatchingSubscribers) {
			t.Errorf("QoS 1: PUBACK 0x%02X, want 0x10", code)
		}
		// paho reports a QoS 2 publish by its PUBCOMP; the 0x10 is in the PUBREC.
		c.pub(&paho.Publish{Topic: "nobody", QoS: 2, Payload: []byte("x")})
		var recs []proto.ReasonCode
		for _, p := range c.wire.packets(t) {
			if r, ok := p.(*proto.Pubrec); ok {
				recs = append(recs, r.ReasonCode)
			}
		}
		if !slices.Equal(recs, []proto.ReasonCode{proto.NoMatchingSubscribers}) {
			t.Errorf("QoS 2: PUBREC codes %v, want [0x10]", recs)
		}
	})
	t.Run("0x87 not authorized", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.Auth = v5Authz{}
		b := nodetest.Start(t, cfg)
		sub := v5PahoClean(t, b.Addr, "sub")
		sub.sub(paho.SubscribeOptions{Topic: "#", QoS: 1})
		c := v5PahoClean(t, b.Addr, "c")
		for _, qos := range []byte{1, 2} {
			if code := c.pub(&paho.Publish{Topic: "deny/x", QoS: qos, Payload: []byte("x")}); code != byte(proto.NotAuthorized) {
				t.Errorf("QoS %d publish to a denied topic: reason 0x%02X, want 0x87", qos, code)
			}
		}
		ack, err := c.Subscribe(v5Ctx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ok/x", QoS: 1}, {Topic: "deny/#", QoS: 1}}})
		if err == nil || ack == nil || !bytes.Equal(ack.Reasons, []byte{1, byte(proto.NotAuthorized)}) {
			t.Fatalf("SUBACK %+v (%v), want [0x01 0x87]", ack, err)
		}
		sub.none(v5Quiet) // the denied messages went nowhere
	})
	t.Run("PUBACK 0x99 payload format invalid", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		sub := v5PahoClean(t, b.Addr, "sub")
		sub.sub(paho.SubscribeOptions{Topic: "pf", QoS: 1})
		c := v5PahoClean(t, b.Addr, "c")
		bad := &paho.Publish{Topic: "pf", QoS: 1, Payload: []byte{0xff, 0xfe}, Properties: &paho.PublishProperties{PayloadFormat: v5Ptr[byte](1)}}
		if code := c.pub(bad); code != byte(proto.PayloadFormatInvalid) {
			t.Fatalf("UTF-8 indicator on a non UTF-8 payload: reason 0x%02X, want 0x99", code)
		}
		sub.none(v5Quiet)
	})
	t.Run("SUBACK 0x8F and granted QoS, UNSUBACK 0x11", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.MaxQoS = 1
		b := nodetest.Start(t, cfg)
		c := v5PahoClean(t, b.Addr, "c")
		ack, err := c.Subscribe(v5Ctx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: "a/#/b", QoS: 0}, {Topic: "q2", QoS: 2}, {Topic: "q0", QoS: 0}}})
		if err == nil || ack == nil || !bytes.Equal(ack.Reasons, []byte{byte(proto.TopicFilterInvalid), 1, 0}) {
			t.Fatalf("SUBACK %+v (%v), want [0x8F 0x01 0x00]", ack, err)
		}
		un, err := c.Unsubscribe(v5Ctx(t), &paho.Unsubscribe{Topics: []string{"q2", "never"}})
		if un == nil || !bytes.Equal(un.Reasons, []byte{0, byte(proto.NoSubscriptionExisted)}) {
			t.Fatalf("UNSUBACK %+v (%v), want [0x00 0x11]", un, err)
		}
	})
	t.Run("CONNACK 0x8C bad authentication method", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		cp := &paho.Connect{ClientID: "a", CleanStart: true, Properties: &paho.ConnectProperties{AuthMethod: "SCRAM-SHA-256", AuthData: []byte("n,,n=user")}}
		c, ack, err := v5PahoTry(t, b.Addr, cp)
		if c != nil || err == nil || ack == nil || ack.ReasonCode != byte(proto.BadAuthenticationMethod) {
			t.Fatalf("enhanced authentication: %v %+v, want CONNACK 0x8C [MQTT-4.12.0-1]", err, ack)
		}
	})
	t.Run("DISCONNECT 0x8E session taken over", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		old := v5PahoClean(t, b.Addr, "same")
		v5PahoClean(t, b.Addr, "same")
		if d := old.serverDisconnect(); d.ReasonCode != byte(proto.SessionTakenOver) {
			t.Fatalf("DISCONNECT 0x%02X, want 0x8E", d.ReasonCode)
		}
	})
	t.Run("DISCONNECT 0x94 topic alias invalid", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.TopicAliasMaximum = 0 // paho checks an alias only against a non-zero maximum
		b := nodetest.Start(t, cfg)
		c := v5PahoClean(t, b.Addr, "c")
		if max := c.Connack.Properties.TopicAliasMaximum; max == nil || *max != 0 {
			t.Fatalf("CONNACK Topic Alias Maximum %v, want 0", max)
		}
		_, _ = c.Publish(v5Ctx(t), &paho.Publish{Topic: "ta", Payload: []byte("x"), Properties: &paho.PublishProperties{TopicAlias: v5Ptr[uint16](1)}})
		if d := c.serverDisconnect(); d.ReasonCode != byte(proto.TopicAliasInvalid) {
			t.Fatalf("DISCONNECT 0x%02X, want 0x94 [MQTT-3.3.2-9]", d.ReasonCode)
		}
	})
	t.Run("DISCONNECT 0x95 packet too large", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.MaxPacketSize = 256
		b := nodetest.Start(t, cfg)
		c := v5PahoClean(t, b.Addr, "c")
		if max := c.Connack.Properties.MaximumPacketSize; max == nil || *max != 256 {
			t.Fatalf("CONNACK Maximum Packet Size %v, want 256", max)
		}
		c.pub(&paho.Publish{Topic: "small", Payload: make([]byte, 200)}) // fits
		_, _ = c.Publish(v5Ctx(t), &paho.Publish{Topic: "big", Payload: make([]byte, 1000)})
		if d := c.serverDisconnect(); d.ReasonCode != byte(proto.PacketTooLarge) {
			t.Fatalf("DISCONNECT 0x%02X, want 0x95", d.ReasonCode)
		}
	})
	t.Run("DISCONNECT 0x8D keep alive timeout", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		silent := &v5Pinger{}
		c := v5PahoConnect(t, b.Addr, &paho.Connect{ClientID: "c", CleanStart: true, KeepAlive: 1},
			func(cfg *paho.ClientConfig) { cfg.PingHandler = silent })
		start := time.Now()
		if d := c.serverDisconnect(); d.ReasonCode != byte(proto.KeepAliveTimeout) {
			t.Fatalf("DISCONNECT 0x%02X, want 0x8D", d.ReasonCode)
		}
		// [MQTT-3.1.2-22] one and a half times the keep alive.
		v5Within(t, "keep alive timeout", time.Since(start), 1200*time.Millisecond, 5*time.Second)
	})
	t.Run("DISCONNECT 0x98 administrative action", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		c := v5PahoClean(t, b.Addr, "c")
		if !b.Kick("c") {
			t.Fatalf("Kick found no client")
		}
		if d := c.serverDisconnect(); d.ReasonCode != byte(proto.AdministrativeAction) {
			t.Fatalf("DISCONNECT 0x%02X, want 0x98", d.ReasonCode)
		}
	})
}

// v5Pinger is a paho Pinger that never pings and records the keep alive paho runs
// with (the Server Keep Alive when the broker sent one).
type v5Pinger struct{ keepAlive atomic.Int32 }

func (p *v5Pinger) Run(ctx context.Context, _ net.Conn, keepAlive uint16) error {
	p.keepAlive.Store(int32(keepAlive) + 1) // +1: 0 means "not run yet"
	<-ctx.Done()
	return nil
}
func (p *v5Pinger) PacketSent()               {}
func (p *v5Pinger) PacketReceived()           {}
func (p *v5Pinger) PingResp()                 {}
func (p *v5Pinger) SetDebug(l paholog.Logger) {}
func (p *v5Pinger) ran() (keepAlive int, ok bool) {
	v := p.keepAlive.Load()
	return int(v) - 1, v != 0
}

// TestPahoTopicAliases: topic aliases in both directions (5.0 section 3.3.2.3.4).
func TestPahoTopicAliases(t *testing.T) {
	t.Parallel()
	t.Run("broker to client", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		sub := v5PahoConnect(t, b.Addr, &paho.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 30,
			Properties: &paho.ConnectProperties{TopicAliasMaximum: v5Ptr[uint16](2)}})
		sub.sub(paho.SubscribeOptions{Topic: "ta/#", QoS: 1})
		pub := v5PahoClean(t, b.Addr, "pub")
		topics := []string{"ta/1", "ta/1", "ta/2", "ta/3", "ta/1", "ta/2", "ta/3"}
		for i, tp := range topics {
			pub.pub(&paho.Publish{Topic: tp, QoS: byte(i % 2), Payload: []byte(strconv.Itoa(i))})
		}
		// paho hands aliases to the application as they came: the first message of a
		// topic carries topic and alias, later ones the alias alone; ta/3 finds both
		// aliases taken and always carries its topic.
		want := []struct {
			topic string
			alias uint16
		}{{"ta/1", 1}, {"", 1}, {"ta/2", 2}, {"ta/3", 0}, {"", 1}, {"", 2}, {"ta/3", 0}}
		known := map[uint16]string{}
		for i, w := range want {
			p := sub.next()
			var alias uint16
			if a := v5Props(p).TopicAlias; a != nil {
				alias = *a
			}
			if p.Topic != w.topic || alias != w.alias || string(p.Payload) != strconv.Itoa(i) {
				t.Fatalf("message %d: topic %q alias %d payload %q, want %q alias %d payload %d", i, p.Topic, alias, p.Payload, w.topic, w.alias, i)
			}
			topic := p.Topic
			if topic == "" {
				topic = known[alias]
			} else if alias != 0 {
				known[alias] = topic
			}
			if topic != topics[i] {
				t.Fatalf("message %d resolves to %q, want %q", i, topic, topics[i])
			}
		}
	})
	t.Run("client to broker", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.TopicAliasMaximum = 3
		b := nodetest.Start(t, cfg)
		sub := v5PahoClean(t, b.Addr, "sub") // no Topic Alias Maximum: no aliases towards it
		sub.sub(paho.SubscribeOptions{Topic: "in/#", QoS: 1})
		pub := v5PahoClean(t, b.Addr, "pub")
		if max := pub.Connack.Properties.TopicAliasMaximum; max == nil || *max != 3 {
			t.Fatalf("CONNACK Topic Alias Maximum %v, want 3", max)
		}
		alias := func(topic string, a uint16, payload string) {
			pub.pub(&paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload), Properties: &paho.PublishProperties{TopicAlias: v5Ptr(a)}})
		}
		alias("in/a", 1, "1")
		alias("", 1, "2")
		alias("in/b", 3, "3")
		alias("", 3, "4")
		alias("in/c", 1, "5") // redefines alias 1
		alias("", 1, "6")
		for _, w := range []struct{ topic, payload string }{{"in/a", "1"}, {"in/a", "2"}, {"in/b", "3"}, {"in/b", "4"}, {"in/c", "5"}, {"in/c", "6"}} {
			p := sub.expect(w.topic, w.payload)
			if v5Props(p).TopicAlias != nil {
				t.Fatalf("a client without Topic Alias Maximum got alias %d [MQTT-3.3.2-7]", *v5Props(p).TopicAlias)
			}
		}
	})
}

// v5Clock is a broker clock a test moves forward, for message expiry.
type v5Clock struct{ offset atomic.Int64 }

func (c *v5Clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *v5Clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// TestPahoMessageExpiry: an expired message is not delivered, and a delivered one
// carries what is left of its interval [MQTT-3.3.2-5] [MQTT-3.3.2-6].
func TestPahoMessageExpiry(t *testing.T) {
	t.Parallel()
	var clock v5Clock
	cfg := node.DefaultConfig()
	cfg.Now = clock.now
	b := nodetest.Start(t, cfg)
	sub := v5PahoConnect(t, b.Addr, v5PahoSession("sub", true, 3600))
	sub.sub(paho.SubscribeOptions{Topic: "exp/#", QoS: 1})
	live := v5PahoClean(t, b.Addr, "live")
	live.sub(paho.SubscribeOptions{Topic: "exp/live", QoS: 1})
	sub.stop()
	v5Settled(t, b, 1)

	pub := v5PahoClean(t, b.Addr, "pub")
	expiring := func(topic string, sec uint32, retain bool) *paho.Publish {
		p := &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(topic)}
		if sec > 0 {
			p.Properties = &paho.PublishProperties{MessageExpiry: v5Ptr(sec)}
		}
		return p
	}
	pub.pub(expiring("exp/live", 60, false))
	if e := v5Props(live.expect("exp/live", "exp/live")).MessageExpiry; e == nil || *e != 60 {
		t.Fatalf("live delivery: message expiry %v, want 60", e)
	}
	pub.pub(expiring("exp/short", 10, false))
	pub.pub(expiring("exp/long", 100, false))
	pub.pub(expiring("exp/none", 0, false))
	pub.pub(expiring("ret/short", 10, true))
	pub.pub(expiring("ret/long", 100, true))
	clock.advance(30 * time.Second)

	sub = v5PahoConnect(t, b.Addr, v5PahoSession("sub", false, 3600))
	// exp/live went to the offline session as well.
	if e := v5Props(sub.expect("exp/live", "exp/live")).MessageExpiry; e == nil || *e != 30 {
		t.Fatalf("queued exp/live: message expiry %v, want 30 (60 less 30 s)", e)
	}
	if e := v5Props(sub.expect("exp/long", "exp/long")).MessageExpiry; e == nil || *e != 70 {
		t.Fatalf("queued exp/long: message expiry %v, want 70 (100 less 30 s)", e)
	}
	if e := v5Props(sub.expect("exp/none", "exp/none")).MessageExpiry; e != nil {
		t.Fatalf("exp/none: message expiry %d, want none", *e)
	}
	sub.none(v5Quiet) // exp/short expired while queued

	late := v5PahoClean(t, b.Addr, "late")
	late.sub(paho.SubscribeOptions{Topic: "ret/#", QoS: 1})
	got := late.expect("ret/long", "ret/long")
	if e := v5Props(got).MessageExpiry; !got.Retain || e == nil || *e != 70 {
		t.Fatalf("retained ret/long: retain %v message expiry %v, want retained with 70", got.Retain, e)
	}
	late.none(v5Quiet) // the expired retained message is gone
}

// TestPahoReceiveMaximum: flow control both ways (5.0 section 4.9).
func TestPahoReceiveMaximum(t *testing.T) {
	t.Parallel()
	t.Run("broker to client", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		sub := v5PahoConnect(t, b.Addr, &paho.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 30,
			Properties: &paho.ConnectProperties{ReceiveMaximum: v5Ptr[uint16](2)}},
			func(cfg *paho.ClientConfig) {
				cfg.EnableManualAcknowledgment = true
				cfg.SendAcksInterval = 5 * time.Millisecond
			})
		sub.sub(paho.SubscribeOptions{Topic: "rm", QoS: 2})
		pub := v5PahoClean(t, b.Addr, "pub")
		const n = 5
		for i := range n {
			pub.pub(&paho.Publish{Topic: "rm", QoS: byte(1 + i%2), Payload: []byte(strconv.Itoa(i))})
		}
		next := 0
		for next < n {
			// [MQTT-3.3.4-9] no more than Receive Maximum unacknowledged at once.
			var window []*paho.Publish
			for range min(2, n-next) {
				p := sub.expect("rm", strconv.Itoa(next))
				next++
				window = append(window, p)
			}
			sub.none(v5Quiet)
			for _, p := range window {
				if err := sub.Ack(p); err != nil {
					t.Fatalf("ack: %v", err)
				}
			}
		}
	})
	t.Run("client to broker", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.ReceiveMaximum = 1
		b := nodetest.Start(t, cfg)
		sub := v5PahoClean(t, b.Addr, "sub")
		sub.sub(paho.SubscribeOptions{Topic: "rm", QoS: 2})
		pub := v5PahoClean(t, b.Addr, "pub")
		if rm := pub.Connack.Properties.ReceiveMaximum; rm == nil || *rm != 1 {
			t.Fatalf("CONNACK Receive Maximum %v, want 1", rm)
		}
		// paho keeps to the broker's Receive Maximum of 1: publishing from many
		// goroutines at once, no second QoS 2 message is sent before the first
		// completes, which the broker would answer with DISCONNECT 0x93.
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				resp, err := pub.Publish(v5Ctx(t), &paho.Publish{Topic: "rm", QoS: 2, Payload: []byte(strconv.Itoa(i))})
				if err == nil && resp.ReasonCode != 0 {
					err = errors.New("reason code " + strconv.Itoa(int(resp.ReasonCode)))
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		seen := map[string]bool{}
		for range n {
			seen[string(sub.next().Payload)] = true
		}
		if len(seen) != n {
			t.Fatalf("%d distinct messages, want %d", len(seen), n)
		}
	})
}

// TestPahoMaximumPacketSize: a message larger than the client's Maximum Packet Size
// is dropped for that client alone [MQTT-3.1.2-25]; the broker's own limit is in
// CONNACK and enforced with DISCONNECT 0x95 (see TestPahoReasonCodes).
func TestPahoMaximumPacketSize(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	small := v5PahoConnect(t, b.Addr, &paho.Connect{ClientID: "small", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{MaximumPacketSize: v5Ptr[uint32](200)}})
	small.sub(paho.SubscribeOptions{Topic: "mp/#", QoS: 1})
	large := v5PahoClean(t, b.Addr, "large")
	large.sub(paho.SubscribeOptions{Topic: "mp/#", QoS: 1})
	pub := v5PahoClean(t, b.Addr, "pub")
	big := string(bytes.Repeat([]byte("b"), 500))
	for i, p := range []string{"s1", big, "s2"} {
		pub.pub(&paho.Publish{Topic: "mp/" + strconv.Itoa(i), QoS: byte(i % 2), Payload: []byte(p)})
	}
	small.expect("mp/0", "s1")
	small.expect("mp/2", "s2")
	small.none(v5Quiet)
	large.expect("mp/0", "s1")
	large.expect("mp/1", big)
	large.expect("mp/2", "s2")
}

// v5AllProps is a publish with every property a subscriber receives unaltered
// [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20].
func v5AllProps(topic string, retain bool) *paho.Publish {
	return &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(`{"k":"ü"}`), Properties: &paho.PublishProperties{
		PayloadFormat:   v5Ptr[byte](1),
		ContentType:     "application/json",
		ResponseTopic:   "reply/here",
		CorrelationData: []byte{0, 1, 2, 0xff},
		User:            paho.UserProperties{{Key: "k", Value: "1"}, {Key: "a", Value: "b"}, {Key: "k", Value: "2"}, {Key: "", Value: ""}},
	}}
}

// v5CheckProps fails the test unless got carries the properties of v5AllProps.
func v5CheckProps(t *testing.T, who string, got *paho.Publish) {
	t.Helper()
	want := v5AllProps("", false).Properties
	pr := v5Props(got)
	if pr.PayloadFormat == nil || *pr.PayloadFormat != 1 || pr.ContentType != want.ContentType ||
		pr.ResponseTopic != want.ResponseTopic || !bytes.Equal(pr.CorrelationData, want.CorrelationData) ||
		!slices.Equal(pr.User, want.User) {
		t.Fatalf("%s got properties %+v, want %+v", who, pr, want)
	}
}

// TestPahoPropertiesPassThrough: payload format, content type, response topic,
// correlation data and user properties (in order, duplicates kept) reach paho and
// project-client subscribers, live and retained, unaltered.
func TestPahoPropertiesPassThrough(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	sub := v5PahoClean(t, b.Addr, "sub")
	sub.sub(paho.SubscribeOptions{Topic: "pp/#", QoS: 1})
	own := v5ClientConnect(t, b.Addr, proto.V5, "own")
	v5ClientSubscribe(t, own.c, "pp/#", 1)
	pub := v5PahoClean(t, b.Addr, "pub")
	pub.pub(v5AllProps("pp/live", false))
	pub.pub(v5AllProps("pp/retained", true))
	v5CheckProps(t, "paho subscriber", sub.expect("pp/live", `{"k":"ü"}`))
	v5CheckProps(t, "paho subscriber", sub.expect("pp/retained", `{"k":"ü"}`))
	for _, topic := range []string{"pp/live", "pp/retained"} {
		p := own.next(t)
		pr := &p.Props
		if p.Topic != topic || !pr.Has(proto.PropPayloadFormat) || pr.PayloadFormat != 1 || pr.ContentType != "application/json" ||
			pr.ResponseTopic != "reply/here" || !bytes.Equal(pr.CorrelationData, []byte{0, 1, 2, 0xff}) ||
			!slices.Equal(pr.User, []proto.UserProperty{{Key: "k", Value: "1"}, {Key: "a", Value: "b"}, {Key: "k", Value: "2"}, {Key: "", Value: ""}}) {
			t.Fatalf("project client got %s with %+v", p.Topic, pr)
		}
	}
	late := v5PahoClean(t, b.Addr, "late")
	late.sub(paho.SubscribeOptions{Topic: "pp/retained", QoS: 1})
	got := late.expect("pp/retained", `{"k":"ü"}`)
	if !got.Retain {
		t.Fatalf("retained message without the retain flag [MQTT-3.3.1-8]")
	}
	v5CheckProps(t, "later subscriber to the retained message", got)
}

// TestPahoRequestResponse: Request Response Information in CONNECT gets the
// configured Response Information in CONNACK (5.0 section 3.1.2.11.7, 3.2.2.3.15), and
// a request's response topic and correlation data let a responder (the project's own
// client) answer it (section 4.10).
func TestPahoRequestResponse(t *testing.T) {
	t.Parallel()
	cfg := node.DefaultConfig()
	cfg.ResponseInformation = "resp/"
	b := nodetest.Start(t, cfg)

	plain := v5PahoClean(t, b.Addr, "plain")
	if ri := plain.Connack.Properties.ResponseInfo; ri != "" {
		t.Fatalf("CONNACK Response Information %q to a client that did not request it", ri)
	}
	requester := v5PahoConnect(t, b.Addr, &paho.Connect{ClientID: "req", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestResponseInfo: true}})
	base := requester.Connack.Properties.ResponseInfo
	if base != "resp/" {
		t.Fatalf("CONNACK Response Information %q, want %q", base, "resp/")
	}
	replyTo := base + "req"
	requester.sub(paho.SubscribeOptions{Topic: replyTo, QoS: 1})

	responder := v5ClientWith(t, b.Addr, proto.Connect{Version: proto.V5, ClientID: "responder", CleanStart: true, KeepAlive: 30},
		func(p *proto.Publish) *proto.Publish {
			if p.Topic != "service/echo" || !p.Props.Has(proto.PropResponseTopic) {
				return nil
			}
			r := &proto.Publish{Topic: p.Props.ResponseTopic, QoS: 1, Payload: append([]byte("echo "), p.Payload...)}
			r.Props.CorrelationData = p.Props.CorrelationData // returned unchanged (section 4.10.1)
			r.Props.Set(proto.PropCorrelationData)
			return r
		})
	v5ClientSubscribe(t, responder.c, "service/echo", 1)

	for i, corr := range []string{"first", "second"} {
		requester.pub(&paho.Publish{Topic: "service/echo", QoS: 1, Payload: []byte(strconv.Itoa(i)),
			Properties: &paho.PublishProperties{ResponseTopic: replyTo, CorrelationData: []byte(corr)}})
		got := requester.expect(replyTo, "echo "+strconv.Itoa(i))
		if string(v5Props(got).CorrelationData) != corr {
			t.Fatalf("response correlation data %q, want %q", v5Props(got).CorrelationData, corr)
		}
	}
	t.Run("not configured", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		c := v5PahoConnect(t, b.Addr, &paho.Connect{ClientID: "req", CleanStart: true,
			Properties: &paho.ConnectProperties{RequestResponseInfo: true}})
		if ri := c.Connack.Properties.ResponseInfo; ri != "" {
			t.Fatalf("CONNACK Response Information %q with none configured", ri)
		}
	})
}

// TestPahoSubscriptionOptions: No Local, Retain As Published and Retain Handling
// 0, 1 and 2 (5.0 section 3.8.3.1).
func TestPahoSubscriptionOptions(t *testing.T) {
	t.Parallel()
	t.Run("no local", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		c := v5PahoClean(t, b.Addr, "c")
		c.sub(paho.SubscribeOptions{Topic: "nl/#", QoS: 1, NoLocal: true})
		other := v5PahoClean(t, b.Addr, "other")
		other.sub(paho.SubscribeOptions{Topic: "nl/#", QoS: 1})
		c.pub(&paho.Publish{Topic: "nl/own", QoS: 1, Payload: []byte("own")})
		other.expect("nl/own", "own")
		other.pub(&paho.Publish{Topic: "nl/other", QoS: 1, Payload: []byte("other")})
		c.expect("nl/other", "other") // [MQTT-3.8.3-3] not its own message before it
		other.expect("nl/other", "other")
	})
	t.Run("retain as published", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		rap := v5PahoClean(t, b.Addr, "rap")
		rap.sub(paho.SubscribeOptions{Topic: "rap", QoS: 1, RetainAsPublished: true})
		plain := v5PahoClean(t, b.Addr, "plain")
		plain.sub(paho.SubscribeOptions{Topic: "rap", QoS: 1})
		pub := v5PahoClean(t, b.Addr, "pub")
		pub.pub(&paho.Publish{Topic: "rap", QoS: 1, Retain: true, Payload: []byte("r")})
		pub.pub(&paho.Publish{Topic: "rap", QoS: 1, Payload: []byte("n")})
		if !rap.expect("rap", "r").Retain || rap.expect("rap", "n").Retain {
			t.Fatalf("retain as published: retain flag not as published [MQTT-3.3.1-12]")
		}
		if plain.expect("rap", "r").Retain || plain.expect("rap", "n").Retain {
			t.Fatalf("without retain as published: retain flag set on a live message [MQTT-3.3.1-12]")
		}
	})
	for _, rh := range []byte{0, 1, 2} {
		t.Run("retain handling "+strconv.Itoa(int(rh)), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			pub := v5PahoClean(t, b.Addr, "pub")
			pub.pub(&paho.Publish{Topic: "rh", QoS: 1, Retain: true, Payload: []byte("kept")})
			c := v5PahoClean(t, b.Addr, "c")
			// First subscription, then the same again.
			wantFirst, wantAgain := rh != 2, rh == 0
			for i, want := range []bool{wantFirst, wantAgain} {
				c.sub(paho.SubscribeOptions{Topic: "rh", QoS: 1, RetainHandling: rh})
				if want {
					if !c.expect("rh", "kept").Retain {
						t.Fatalf("subscription %d: retained message without the retain flag", i+1)
					}
				} else {
					c.none(v5Quiet)
				}
			}
		})
	}
}

// TestPahoSubscriptionIdentifiers: a message carries the identifier of the
// subscription it matched [MQTT-3.3.4-3]; the project client sees every identifier
// of overlapping subscriptions [MQTT-3.3.4-4] (paho keeps only one).
func TestPahoSubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	c := v5PahoClean(t, b.Addr, "c")
	if !c.Connack.Properties.SubIDAvailable {
		t.Fatalf("CONNACK: subscription identifiers not available")
	}
	c.subWith(&paho.SubscribeProperties{SubscriptionIdentifier: v5Ptr(7)}, paho.SubscribeOptions{Topic: "sid/+", QoS: 1})
	c.sub(paho.SubscribeOptions{Topic: "plain", QoS: 1})
	own := v5ClientConnect(t, b.Addr, proto.V5, "own")
	for i, f := range []string{"sid/#", "sid/x"} {
		s := &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: f, QoS: 1}}}
		s.Props.SubscriptionIDs = []int{100 + i}
		if _, err := own.c.Subscribe(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	pub := v5PahoClean(t, b.Addr, "pub")
	pub.pub(&paho.Publish{Topic: "sid/x", QoS: 1, Payload: []byte("1")})
	pub.pub(&paho.Publish{Topic: "plain", QoS: 1, Payload: []byte("2")})
	if id := v5Props(c.expect("sid/x", "1")).SubscriptionIdentifier; id == nil || *id != 7 {
		t.Fatalf("sid/x: subscription identifier %v, want 7", id)
	}
	if id := v5Props(c.expect("plain", "2")).SubscriptionIdentifier; id != nil {
		t.Fatalf("plain: subscription identifier %d, want none", *id)
	}
	p := own.next(t)
	ids := slices.Sorted(slices.Values(p.Props.SubscriptionIDs))
	if !slices.Equal(ids, []int{100, 101}) {
		t.Fatalf("overlapping subscriptions: identifiers %v, want [100 101]", p.Props.SubscriptionIDs)
	}
}

// TestPahoConnack: the CONNACK announcements paho acts on: Maximum QoS, Retain,
// Wildcard, Subscription Identifier and Shared Subscription Available, Server Keep
// Alive (5.0 section 3.2.2.3).
func TestPahoConnack(t *testing.T) {
	t.Parallel()
	t.Run("maximum QoS 1 and the availability flags", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.MaxQoS = 1
		b := nodetest.Start(t, cfg)
		c := v5PahoClean(t, b.Addr, "c")
		pr := c.Connack.Properties
		if pr.MaximumQoS == nil || *pr.MaximumQoS != 1 {
			t.Fatalf("CONNACK Maximum QoS %v, want 1", pr.MaximumQoS)
		}
		if !pr.RetainAvailable || !pr.WildcardSubAvailable || !pr.SharedSubAvailable || !pr.SubIDAvailable {
			t.Fatalf("CONNACK flags %+v, want all available", pr)
		}
		// paho treats absent flags as available: check that the broker sent them.
		ps := c.wire.packets(t)
		if len(ps) == 0 {
			t.Fatalf("no CONNACK on the wire")
		}
		ack, ok := ps[0].(*proto.Connack)
		if !ok {
			t.Fatalf("first packet %s, want CONNACK", nodetest.String(ps[0]))
		}
		for _, f := range []struct {
			id  proto.PropID
			val byte
		}{{proto.PropRetainAvailable, ack.Props.RetainAvailable}, {proto.PropWildcardSubAvailable, ack.Props.WildcardSubAvail},
			{proto.PropSharedSubAvailable, ack.Props.SharedSubAvailable}, {proto.PropSubIDAvailable, ack.Props.SubIDAvailable}} {
			if !ack.Props.Has(f.id) || f.val != 1 {
				t.Errorf("CONNACK property 0x%02X: present %v value %d, want 1", byte(f.id), ack.Props.Has(f.id), f.val)
			}
		}
		// paho refuses a QoS 2 publish itself, having read Maximum QoS 1.
		if _, err := c.Publish(v5Ctx(t), &paho.Publish{Topic: "q", QoS: 2}); !errors.Is(err, paho.ErrInvalidArguments) {
			t.Fatalf("QoS 2 publish after Maximum QoS 1: %v, want paho to refuse it", err)
		}
		// A wildcard and a shared subscription work as announced.
		if ack := c.sub(paho.SubscribeOptions{Topic: "w/+/#", QoS: 2}, paho.SubscribeOptions{Topic: "$share/g/s", QoS: 1}); !bytes.Equal(ack.Reasons, []byte{1, 1}) {
			t.Fatalf("SUBACK %v, want [1 1] (QoS 2 granted as 1)", ack.Reasons)
		}
	})
	t.Run("server keep alive", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.MaxKeepAlive = 5
		b := nodetest.Start(t, cfg)
		for _, tc := range []struct {
			asked uint16
			told  int // -1: no Server Keep Alive
			runs  int
		}{{0, 5, 5}, {60, 5, 5}, {3, -1, 3}} {
			pinger := &v5Pinger{}
			id := "ka" + strconv.Itoa(int(tc.asked))
			c := v5PahoConnect(t, b.Addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: tc.asked},
				func(cfg *paho.ClientConfig) { cfg.PingHandler = pinger })
			ska := c.Connack.Properties.ServerKeepAlive
			if tc.told < 0 && ska != nil || tc.told >= 0 && (ska == nil || int(*ska) != tc.told) {
				t.Errorf("keep alive %d: Server Keep Alive %v, want %d [MQTT-3.2.2-21]", tc.asked, ska, tc.told)
			}
			nodetest.Eventually(t, "paho's pinger to start", func() bool { _, ok := pinger.ran(); return ok })
			if ka, _ := pinger.ran(); ka != tc.runs {
				t.Errorf("keep alive %d: paho runs with %d, want %d", tc.asked, ka, tc.runs)
			}
		}
		// A 3.1.1 client cannot be told: above the maximum it is refused.
		cl, err := v5ClientTry(t, b.Addr, proto.Connect{Version: proto.V311, ClientID: "old", CleanStart: true, KeepAlive: 60}, nil)
		var ce *v5ConnectError
		if !errors.As(err, &ce) || ce.Code != proto.ConnRefusedIdentifierRejected {
			t.Fatalf("3.1.1 keep alive 60 over the maximum 5: %v %v, want CONNACK 2", cl, err)
		}
	})
}
