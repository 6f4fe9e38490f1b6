package node_test

// MQTT 5.0 features checked on the wire with the packet-level client (nodetest), and
// driven with the project's own client (proto/client); the same features through a
// third-party library are in v5_paho_test.go.

import (
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/proto/client"
	"github.com/skein-mq/skein/session"
)

// v5ConnectError is the project client's CONNACK refusal.
type v5ConnectError = client.ConnectError

// v5Own is a connection of the project's client that collects what it receives.
type v5Own struct {
	c    *client.Client
	msgs chan *proto.Publish
	wg   sync.WaitGroup // replies in flight
}

// v5ClientTry connects the project client with cp. reply, when set, is called for
// each message received; a non-nil result is published (from another goroutine: the
// callback runs on the client's reader). opts adjust the client's options.
func v5ClientTry(t *testing.T, addr string, cp proto.Connect, reply func(*proto.Publish) *proto.Publish, opts ...func(*client.Options)) (*v5Own, error) {
	t.Helper()
	o := &v5Own{msgs: make(chan *proto.Publish, 4096)}
	options := client.Options{Addr: addr, Connect: cp, OnMessage: func(p *proto.Publish) {
		o.msgs <- p
		if reply == nil {
			return
		}
		if r := reply(p); r != nil {
			o.wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
				defer cancel()
				_ = o.c.Publish(ctx, r) // the requester's check tells if it came
			})
		}
	}}
	for _, f := range opts {
		f(&options)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	defer cancel()
	c, err := client.Connect(ctx, options)
	if err != nil {
		return nil, err
	}
	o.c = c
	t.Cleanup(func() {
		_ = c.Disconnect(nil) // fails harmlessly when already closed
		o.wg.Wait()
	})
	return o, nil
}

// v5ClientWith is v5ClientTry failing the test on refusal.
func v5ClientWith(t *testing.T, addr string, cp proto.Connect, reply func(*proto.Publish) *proto.Publish, opts ...func(*client.Options)) *v5Own {
	t.Helper()
	o, err := v5ClientTry(t, addr, cp, reply, opts...)
	if err != nil {
		t.Fatalf("project client CONNECT %q: %v", cp.ClientID, err)
	}
	return o
}

// v5ClientConnect connects the project client with a clean start.
func v5ClientConnect(t *testing.T, addr string, v proto.Version, id string) *v5Own {
	t.Helper()
	return v5ClientWith(t, addr, proto.Connect{Version: v, ClientID: id, CleanStart: true, KeepAlive: 30}, nil)
}

// v5ClientSession returns a 5.0 CONNECT with the given clean start and session expiry.
func v5ClientSession(id string, clean bool, expiry uint32) proto.Connect {
	cp := proto.Connect{Version: proto.V5, ClientID: id, CleanStart: clean, KeepAlive: 30}
	cp.Props.SessionExpiry = expiry
	cp.Props.Set(proto.PropSessionExpiry)
	return cp
}

// v5ClientSubscribe subscribes c to filter and returns the SUBACK.
func v5ClientSubscribe(t *testing.T, c *client.Client, filter string, qos byte) *proto.Suback {
	t.Helper()
	ack, err := c.Subscribe(v5Ctx(t), &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: filter, QoS: qos}}})
	if err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return ack
}

func (o *v5Own) next(t *testing.T) *proto.Publish {
	t.Helper()
	select {
	case p := <-o.msgs:
		return p
	case <-time.After(nodetest.Timeout):
		t.Fatalf("no PUBLISH within %v", nodetest.Timeout)
		return nil
	}
}

func (o *v5Own) expect(t *testing.T, topic, payload string) *proto.Publish {
	t.Helper()
	p := o.next(t)
	if p.Topic != topic || string(p.Payload) != payload {
		t.Fatalf("got PUBLISH %q %q, want %q %q", p.Topic, p.Payload, topic, payload)
	}
	return p
}

func (o *v5Own) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case p := <-o.msgs:
		t.Fatalf("got unexpected PUBLISH %q %q", p.Topic, p.Payload)
	case <-time.After(d):
	}
}

func (o *v5Own) publish(t *testing.T, p *proto.Publish) {
	t.Helper()
	if err := o.c.Publish(v5Ctx(t), p); err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
}

// v5Connect dials a packet-level 5.0 client and sends cp, failing unless accepted.
func v5Connect(t *testing.T, addr string, cp *proto.Connect) (*nodetest.Client, *proto.Connack) {
	t.Helper()
	c := nodetest.Dial(t, addr, proto.V5)
	ack := c.Connect(cp)
	if ack.ReasonCode != proto.Success {
		t.Fatalf("CONNECT %q refused: %v", cp.ClientID, ack.ReasonCode)
	}
	return c, ack
}

// v5ClosedWith waits for the broker to close c after a DISCONNECT with code.
func v5ClosedWith(t *testing.T, c *nodetest.Client, code proto.ReasonCode) *proto.Disconnect {
	t.Helper()
	got := c.ExpectClosed()
	if len(got) != 1 {
		t.Fatalf("got %d packets before the close, want one DISCONNECT: %v", len(got), got)
	}
	d, ok := got[0].(*proto.Disconnect)
	if !ok || d.ReasonCode != code {
		t.Fatalf("got %s, want DISCONNECT %v (0x%02X)", nodetest.String(got[0]), code, byte(code))
	}
	return d
}

// v5Alias returns a 5.0 PUBLISH using topic alias a.
func v5Alias(topic string, a uint16, qos byte, id uint16, payload string) *proto.Publish {
	p := &proto.Publish{Topic: topic, QoS: qos, PacketID: id, Payload: []byte(payload)}
	p.Props.TopicAlias = a
	p.Props.Set(proto.PropTopicAlias)
	return p
}

// TestV5TopicAliasOnTheWire: the broker gives topic aliases to a client that sent
// Topic Alias Maximum > 0: the first message of a topic carries topic and alias,
// later ones an empty topic and the alias, until the maximum is used up
// [MQTT-3.3.2-7]; aliases belong to one connection (section 3.3.2.3.4). The
// publisher uses aliases of its own towards the broker, and a 3.1.1 subscriber gets
// full topics throughout.
func TestV5TopicAliasOnTheWire(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	subConnect := func(clean bool) *nodetest.Client {
		cp := v5Session("sub", clean, 60)
		cp.Props.TopicAliasMaximum = 2
		cp.Props.Set(proto.PropTopicAliasMaximum)
		c, _ := v5Connect(t, b.Addr, cp)
		return c
	}
	sub := subConnect(true)
	sub.Subscribe(1, 1, "ta/#")
	old := nodetest.Connect(t, b.Addr, proto.V311, "old")
	old.Subscribe(1, 1, "ta/#")
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")

	sends := []*proto.Publish{
		v5Alias("ta/1", 9, 1, 1, "0"), // defines alias 9 towards the broker
		v5Alias("", 9, 0, 0, "1"),
		{Topic: "ta/2", QoS: 1, PacketID: 2, Payload: []byte("2")},
		{Topic: "ta/3", QoS: 0, Payload: []byte("3")},
		v5Alias("", 9, 1, 3, "4"),
		{Topic: "ta/2", QoS: 0, Payload: []byte("5")},
		{Topic: "ta/3", QoS: 1, PacketID: 4, Payload: []byte("6")},
	}
	topics := []string{"ta/1", "ta/1", "ta/2", "ta/3", "ta/1", "ta/2", "ta/3"}
	want := []struct {
		topic string
		alias uint16 // 0: no Topic Alias property
	}{{"ta/1", 1}, {"", 1}, {"ta/2", 2}, {"ta/3", 0}, {"", 1}, {"", 2}, {"ta/3", 0}}
	for _, p := range sends {
		pub.Publish(p)
	}
	for i, w := range want {
		p := nodetest.Expect[*proto.Publish](sub)
		sub.Ack(p)
		alias := uint16(0)
		if p.Props.Has(proto.PropTopicAlias) {
			alias = p.Props.TopicAlias
		}
		if p.Topic != w.topic || alias != w.alias || string(p.Payload) != strconv.Itoa(i) {
			t.Fatalf("5.0 message %d: topic %q alias %d payload %q, want topic %q alias %d payload %d", i, p.Topic, alias, p.Payload, w.topic, w.alias, i)
		}
		o := nodetest.Expect[*proto.Publish](old)
		old.Ack(o)
		if o.Topic != topics[i] || string(o.Payload) != strconv.Itoa(i) {
			t.Fatalf("3.1.1 message %d: %q %q, want %q", i, o.Topic, o.Payload, topics[i])
		}
	}
	// A new connection starts without aliases: ta/2 carries its topic again.
	sub.Disconnect()
	v5Settled(t, b, 2)
	sub = subConnect(false)
	pub.Publish(&proto.Publish{Topic: "ta/2", QoS: 1, PacketID: 5, Payload: []byte("again")})
	if p := sub.ExpectPublish("ta/2", "again"); p.Props.TopicAlias != 1 {
		t.Fatalf("first message on the new connection: alias %d, want 1 (a new mapping)", p.Props.TopicAlias)
	}
}

// v5Session returns a packet-level 5.0 CONNECT with a session expiry.
func v5Session(id string, clean bool, expiry uint32) *proto.Connect {
	cp := &proto.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	cp.Props.SessionExpiry = expiry
	cp.Props.Set(proto.PropSessionExpiry)
	return cp
}

// TestV5ServerDisconnectCodes: what a 5.0 client does wrong is answered with a
// DISCONNECT carrying the reason (5.0 section 4.13.2), before the broker closes.
func TestV5ServerDisconnectCodes(t *testing.T) {
	t.Parallel()
	publishWith := func(topic string, props func(*proto.Properties)) func(t *testing.T, c *nodetest.Client) {
		return func(t *testing.T, c *nodetest.Client) {
			p := &proto.Publish{Topic: topic, Payload: []byte("x")}
			props(&p.Props)
			c.Send(p)
		}
	}
	cases := []struct {
		name string
		send func(t *testing.T, c *nodetest.Client)
		code proto.ReasonCode
	}{
		{"AUTH without an authentication method", func(t *testing.T, c *nodetest.Client) {
			a := &proto.Auth{ReasonCode: proto.ReAuthenticate}
			a.Props.AuthMethod = "SCRAM-SHA-1"
			a.Props.Set(proto.PropAuthMethod)
			c.Send(a)
		}, proto.ProtocolError},
		{"no local on a shared subscription", func(t *testing.T, c *nodetest.Client) {
			c.Send(&proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: "$share/g/t", QoS: 1, NoLocal: true}}})
		}, proto.ProtocolError}, // [MQTT-3.8.3-4]
		{"property not allowed in PUBLISH", func(t *testing.T, c *nodetest.Client) {
			// Session Expiry Interval (0x11) in a PUBLISH: a malformed packet.
			c.SendRaw([]byte{0x30, 10, 0, 1, 't', 5, 0x11, 0, 0, 0, 1, 'x'})
		}, proto.MalformedPacket},
		{"topic alias above the maximum", publishWith("t", func(p *proto.Properties) {
			p.TopicAlias = 3
			p.Set(proto.PropTopicAlias)
		}), proto.TopicAliasInvalid},
		{"topic alias 0", func(t *testing.T, c *nodetest.Client) {
			c.SendRaw([]byte{0x30, 8, 0, 1, 't', 3, 0x23, 0, 0, 'x'}) // [MQTT-3.3.2-8]
		}, proto.TopicAliasInvalid},
		{"unknown topic alias with an empty topic", publishWith("", func(p *proto.Properties) {
			p.TopicAlias = 1
			p.Set(proto.PropTopicAlias)
		}), proto.ProtocolError},
		{"QoS 0 payload not UTF-8 as indicated", func(t *testing.T, c *nodetest.Client) {
			p := &proto.Publish{Topic: "t", Payload: []byte{0xC3, 0x28}}
			p.Props.PayloadFormat = 1
			p.Props.Set(proto.PropPayloadFormat)
			c.Send(p)
		}, proto.PayloadFormatInvalid},
		{"QoS 2 beyond the receive maximum", func(t *testing.T, c *nodetest.Client) {
			// Two QoS 2 messages may await PUBREL; the third is one too many
			// [MQTT-3.3.4-8].
			for id := uint16(1); id <= 3; id++ {
				c.Send(&proto.Publish{Topic: "t", QoS: 2, PacketID: id, Payload: []byte("x")})
				if id < 3 {
					if rec := nodetest.Expect[*proto.Pubrec](c); rec.PacketID != id {
						t.Fatalf("PUBREC %d, want %d", rec.PacketID, id)
					}
				}
			}
		}, proto.ReceiveMaximumExceeded},
		{"DISCONNECT sets a session expiry after 0 in CONNECT", func(t *testing.T, c *nodetest.Client) {
			d := &proto.Disconnect{}
			d.Props.SessionExpiry = 60
			d.Props.Set(proto.PropSessionExpiry)
			c.Send(d)
		}, proto.ProtocolError}, // [MQTT-3.14.2-2]
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := node.DefaultConfig()
			cfg.ReceiveMaximum = 2
			cfg.TopicAliasMaximum = 2
			b := nodetest.Start(t, cfg)
			watcher := nodetest.Connect(t, b.Addr, proto.V5, "watcher")
			watcher.Subscribe(1, 1, "will/#")
			cp := &proto.Connect{ClientID: "bad", CleanStart: true, KeepAlive: 60,
				Will: &proto.Will{Topic: "will/bad", Payload: []byte("gone")}}
			c, _ := v5Connect(t, b.Addr, cp)
			tc.send(t, c)
			v5ClosedWith(t, c, tc.code)
			// Not a normal disconnection: the will is published [MQTT-3.1.2-8].
			watcher.ExpectPublish("will/bad", "gone")
		})
	}
}

// TestV5QuotaExceeded: a client that keeps sending while it does not read makes the
// broker queue answers for it; past the bound it is disconnected with 0x97 (Quota
// exceeded), which it finds after what was queued once it reads again.
func TestV5QuotaExceeded(t *testing.T) {
	t.Parallel()
	cfg := node.DefaultConfig()
	cfg.MaxWriteQueue = 16
	b := nodetest.Start(t, cfg)
	slow := nodetest.Connect(t, b.Addr, proto.V5, "slow")
	slow.Subscribe(1, 0, "flood")
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	payload := make([]byte, 64<<10)
	// Fill the socket towards the slow client until its write queue refuses QoS 0
	// messages: its writer is blocked in a write.
	for i := 0; b.Stats.Dropped[session.DropOutbox].Load() == 0; i++ {
		if i == 2000 {
			t.Fatalf("the slow client's write queue never filled")
		}
		pub.Send(&proto.Publish{Topic: "flood", Payload: payload})
		if i%50 == 49 {
			pub.Publish(&proto.Publish{Topic: "sync", QoS: 1, PacketID: 1}) // let the broker catch up
		}
	}
	var pings []byte
	for range 4*cfg.MaxWriteQueue + 8 {
		pings = append(pings, 0xC0, 0x00)
	}
	slow.SendRaw(pings)
	slowClosed := slices.Index(node.CloseReasons(), "slow_consumer")
	nodetest.Eventually(t, "the broker to give up on the slow client", func() bool { return b.Stats.Closed[slowClosed].Load() == 1 })
	// Read now: the broker allows a few seconds to flush what it queued.
	var last proto.Packet
	n := 0
	for {
		p, err := slow.RecvWithin(nodetest.Timeout)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open after %d packets", n)
			}
			break
		}
		last = p
		n++
	}
	if d, ok := last.(*proto.Disconnect); !ok || d.ReasonCode != proto.QuotaExceeded {
		what := "nothing"
		if last != nil {
			what = last.Type().String()
		}
		t.Fatalf("last of %d packets: %s, want DISCONNECT 0x97", n, what)
	}
}

// TestV5DisconnectReasonString: a DISCONNECT for a protocol violation says what was
// wrong in a Reason String (5.0 section 3.14.2.2.3: "a human readable string
// designed for diagnostics"), which the broker has at hand.
func TestV5DisconnectReasonString(t *testing.T) {
	t.Parallel()
	cfg := node.DefaultConfig()
	cfg.TopicAliasMaximum = 2
	b := nodetest.Start(t, cfg)
	c, _ := v5Connect(t, b.Addr, &proto.Connect{ClientID: "c", CleanStart: true, KeepAlive: 60})
	c.Send(v5Alias("t", 5, 0, 0, "x"))
	d := v5ClosedWith(t, c, proto.TopicAliasInvalid)
	if !d.Props.Has(proto.PropReasonString) || d.Props.ReasonString == "" {
		t.Fatalf("DISCONNECT 0x94 without a reason string")
	}
}

// TestV5WillMessageExpiry: a will's Message Expiry Interval is its lifetime from
// when the broker publishes it (5.0 section 3.1.3.2.4: "sent as the Publication
// Expiry Interval when the Server publishes the Will Message"), so a will delay
// does not eat into it: subscribers get the full interval, and a retained will
// stays retained for it.
func TestV5WillMessageExpiry(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	watcher := nodetest.Connect(t, b.Addr, proto.V5, "watcher")
	watcher.Subscribe(1, 1, "will/#")
	cp := v5Session("w", true, 60)
	cp.Will = &proto.Will{Topic: "will/w", Payload: []byte("gone"), QoS: 1, Retain: true}
	cp.Will.Props.WillDelay = 1
	cp.Will.Props.MessageExpiry = 2
	cp.Will.Props.Set(proto.PropWillDelay)
	cp.Will.Props.Set(proto.PropMessageExpiry)
	c, _ := v5Connect(t, b.Addr, cp)
	c.Conn.Close()
	got := watcher.ExpectPublish("will/w", "gone")
	if !got.Props.Has(proto.PropMessageExpiry) || got.Props.MessageExpiry != 2 {
		t.Errorf("will published after its 1 s delay with message expiry %d (present %v), want 2",
			got.Props.MessageExpiry, got.Props.Has(proto.PropMessageExpiry))
	}
	late := nodetest.Connect(t, b.Addr, proto.V5, "late")
	late.Subscribe(1, 1, "will/#")
	p, err := late.RecvWithin(time.Second) // well within the will's 2 s
	if err != nil {
		t.Fatalf("retained will gone within its message expiry interval: %v", err)
	}
	if pub, ok := p.(*proto.Publish); !ok || pub.Topic != "will/w" || !pub.Retain {
		t.Fatalf("got %s, want the retained will", nodetest.String(p))
	}
}

// TestV5WillProperties: the will's properties reach subscribers as those of a
// PUBLISH would [MQTT-3.1.3-10]: payload format, content type, response topic,
// correlation data and user properties in order.
func TestV5WillProperties(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	watcher := nodetest.Connect(t, b.Addr, proto.V5, "watcher")
	watcher.Subscribe(1, 1, "will/#")
	cp := &proto.Connect{ClientID: "w", CleanStart: true, KeepAlive: 60,
		Will: &proto.Will{Topic: "will/w", Payload: []byte("gone"), QoS: 1}}
	wp := &cp.Will.Props
	wp.PayloadFormat, wp.ContentType, wp.ResponseTopic, wp.CorrelationData = 1, "text/plain", "r/t", []byte{9, 8}
	wp.User = []proto.UserProperty{{Key: "b", Value: "1"}, {Key: "a", Value: "2"}, {Key: "b", Value: "3"}}
	for _, id := range []proto.PropID{proto.PropPayloadFormat, proto.PropContentType, proto.PropResponseTopic, proto.PropCorrelationData} {
		wp.Set(id)
	}
	c, _ := v5Connect(t, b.Addr, cp)
	c.Conn.Close()
	got := watcher.ExpectPublish("will/w", "gone")
	pr := &got.Props
	if !pr.Has(proto.PropPayloadFormat) || pr.PayloadFormat != 1 || pr.ContentType != "text/plain" || pr.ResponseTopic != "r/t" ||
		string(pr.CorrelationData) != string([]byte{9, 8}) || !slices.Equal(pr.User, wp.User) {
		t.Fatalf("will properties %+v, want those of the CONNECT", pr)
	}
}

// TestV5MixedVersions: 3.1.1 and 5.0 subscribers on the same topics. A 5.0
// publisher's properties and topic aliases reach 5.0 subscribers and never a 3.1.1
// one, which gets the plain message at its own QoS; a 3.1.1 publisher reaches 5.0
// subscribers without properties.
func TestV5MixedVersions(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	raw311 := nodetest.Connect(t, b.Addr, proto.V311, "raw311")
	raw311.Subscribe(1, 1, "mix/#")
	own311 := v5ClientConnect(t, b.Addr, proto.V311, "own311")
	v5ClientSubscribe(t, own311.c, "mix/#", 2)
	pahoSub := v5PahoClean(t, b.Addr, "paho5")
	pahoSub.sub(paho.SubscribeOptions{Topic: "mix/#", QoS: 2})
	own5 := v5ClientConnect(t, b.Addr, proto.V5, "own5")
	v5ClientSubscribe(t, own5.c, "mix/#", 0)

	// A 5.0 publisher (paho) with every property and a topic alias of its own.
	pahoPub := v5PahoClean(t, b.Addr, "pahopub")
	p := v5AllProps("mix/a", false)
	p.QoS = 2
	p.Properties.TopicAlias = v5Ptr[uint16](1)
	p.Properties.MessageExpiry = v5Ptr[uint32](300)
	pahoPub.pub(p)
	pahoPub.pub(&paho.Publish{Topic: "", QoS: 2, Payload: []byte("aliased"), Properties: &paho.PublishProperties{TopicAlias: v5Ptr[uint16](1)}})
	// A 3.1.1 publisher (the project client).
	pub311 := v5ClientConnect(t, b.Addr, proto.V311, "pub311")
	pub311.publish(t, &proto.Publish{Topic: "mix/b", QoS: 1, Retain: true, Payload: []byte("old")})

	payload := `{"k":"ü"}`
	// The project client hands a QoS 2 message over when its PUBREL arrives, a QoS 1
	// one at once: the QoS 1 "mix/b" may overtake the QoS 2 ones on its side, so its
	// messages are compared by content, not by order.
	own311Got := map[string]*proto.Publish{}
	for range 3 {
		o := own311.next(t)
		own311Got[o.Topic+" "+string(o.Payload)] = o
	}
	for i, w := range []struct{ topic, payload string }{{"mix/a", payload}, {"mix/a", "aliased"}, {"mix/b", "old"}} {
		r := raw311.ExpectPublish(w.topic, w.payload) // a 3.1.1 decode: no properties could be there
		if want := byte(1); r.QoS != want || r.Retain {
			t.Errorf("3.1.1 raw %d: QoS %d retain %v, want QoS 1 (its subscription) and no retain", i, r.QoS, r.Retain)
		}
		o := own311Got[w.topic+" "+w.payload]
		if o == nil {
			t.Fatalf("3.1.1 project client did not get %q %q (got %v)", w.topic, w.payload, slices.Collect(maps.Keys(own311Got)))
		}
		if want := min(byte(2), []byte{2, 2, 1}[i]); o.QoS != want || !o.Props.Empty() {
			t.Errorf("3.1.1 project client %d: QoS %d props %+v, want QoS %d and none", i, o.QoS, o.Props, want)
		}
		o5 := own5.expect(t, w.topic, w.payload)
		if o5.QoS != 0 {
			t.Errorf("5.0 QoS 0 subscriber got QoS %d", o5.QoS)
		}
		g := pahoSub.expect(w.topic, w.payload)
		switch i {
		case 0:
			v5CheckProps(t, "5.0 paho subscriber", g)
			if e := v5Props(g).MessageExpiry; e == nil || *e < 299 {
				t.Errorf("5.0 paho subscriber: message expiry %v, want about 300", e)
			}
			if o5.Props.ContentType != "application/json" || len(o5.Props.User) != 4 {
				t.Errorf("5.0 project client: properties %+v", o5.Props)
			}
		case 2:
			if pr := v5Props(g); pr.ContentType != "" || len(pr.User) != 0 || pr.PayloadFormat != nil || pr.MessageExpiry != nil {
				t.Errorf("5.0 subscriber of a 3.1.1 message got properties %+v", pr)
			}
		}
	}
}

// TestV5OwnClient drives every 5.0 feature with the project's own client.
func TestV5OwnClient(t *testing.T) {
	t.Parallel()
	t.Run("session expiry and clean start", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		pub := v5ClientConnect(t, b.Addr, proto.V5, "pub")
		s := v5ClientWith(t, b.Addr, v5ClientSession("s", true, 60), nil)
		v5ClientSubscribe(t, s.c, "se/t", 1)
		if err := s.c.Disconnect(nil); err != nil {
			t.Fatal(err)
		}
		v5Settled(t, b, 1)
		pub.publish(t, &proto.Publish{Topic: "se/t", QoS: 1, Payload: []byte("kept")})
		s = v5ClientWith(t, b.Addr, v5ClientSession("s", false, 60), nil)
		if !s.c.Connack.SessionPresent {
			t.Fatalf("resume: session present 0")
		}
		s.expect(t, "se/t", "kept")
		// DISCONNECT with session expiry 0 ends the session now.
		d := &proto.Disconnect{}
		d.Props.SessionExpiry = 0
		d.Props.Set(proto.PropSessionExpiry)
		if err := s.c.Disconnect(d); err != nil {
			t.Fatal(err)
		}
		v5Settled(t, b, 1)
		if n := b.SessionCount(); n != 1 {
			t.Fatalf("%d sessions after DISCONNECT with expiry 0, want 1 (the publisher's)", n)
		}
		s = v5ClientWith(t, b.Addr, v5ClientSession("s", false, 1), nil)
		if s.c.Connack.SessionPresent {
			t.Fatalf("session present 1 after it ended")
		}
		v5ClientSubscribe(t, s.c, "se/t", 1)
		s.c.Close() // no DISCONNECT: the 1 s expiry runs
		nodetest.Eventually(t, "the broker to expire the session", func() bool { return b.Stats.SessionsExpired.Load() == 1 })
		s = v5ClientWith(t, b.Addr, v5ClientSession("s", false, 60), nil)
		if s.c.Connack.SessionPresent {
			t.Fatalf("session present 1 after it expired")
		}
	})
	t.Run("will delay and DISCONNECT 0x04", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		watcher := v5ClientConnect(t, b.Addr, proto.V5, "watcher")
		v5ClientSubscribe(t, watcher.c, "will/#", 1)
		withWill := func(delay uint32) proto.Connect {
			cp := v5ClientSession("w", true, 60)
			cp.Will = &proto.Will{Topic: "will/w", Payload: []byte("gone"), QoS: 1}
			cp.Will.Props.WillDelay = delay
			cp.Will.Props.Set(proto.PropWillDelay)
			return cp
		}
		w := v5ClientWith(t, b.Addr, withWill(1), nil)
		w.c.Close()
		closed := time.Now()
		watcher.expect(t, "will/w", "gone")
		v5Within(t, "delayed will", time.Since(closed), 800*time.Millisecond, 5*time.Second)
		w = v5ClientWith(t, b.Addr, withWill(0), nil)
		if err := w.c.Disconnect(&proto.Disconnect{ReasonCode: proto.DisconnectWithWill}); err != nil {
			t.Fatal(err)
		}
		watcher.expect(t, "will/w", "gone")
	})
	t.Run("reason codes", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.Auth = v5Authz{}
		b := nodetest.Start(t, cfg)
		var pubacks []proto.ReasonCode
		var mu sync.Mutex
		c := v5ClientWith(t, b.Addr, proto.Connect{Version: proto.V5, ClientID: "c", CleanStart: true, KeepAlive: 30}, nil,
			func(o *client.Options) {
				o.OnPacket = func(sent bool, p proto.Packet) {
					if a, ok := p.(*proto.Puback); ok && !sent {
						mu.Lock()
						pubacks = append(pubacks, a.ReasonCode)
						mu.Unlock()
					}
				}
			})
		c.publish(t, &proto.Publish{Topic: "nobody", QoS: 1})
		mu.Lock()
		if !slices.Equal(pubacks, []proto.ReasonCode{proto.NoMatchingSubscribers}) {
			t.Errorf("PUBACK codes %v, want [0x10]", pubacks)
		}
		mu.Unlock()
		var ae *client.AckError
		if err := c.c.Publish(v5Ctx(t), &proto.Publish{Topic: "deny/x", QoS: 2}); !errors.As(err, &ae) || ae.Code != proto.NotAuthorized || ae.Packet != proto.PUBREC {
			t.Errorf("QoS 2 publish to a denied topic: %v, want PUBREC 0x87", err)
		}
		bad := &proto.Publish{Topic: "t", QoS: 1, Payload: []byte{0xff}}
		bad.Props.PayloadFormat = 1
		bad.Props.Set(proto.PropPayloadFormat)
		if err := c.c.Publish(v5Ctx(t), bad); !errors.As(err, &ae) || ae.Code != proto.PayloadFormatInvalid {
			t.Errorf("bad UTF-8 payload: %v, want PUBACK 0x99", err)
		}
		ack, err := c.c.Subscribe(v5Ctx(t), &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: "deny/x", QoS: 1}, {Filter: "a/#/b"}, {Filter: "ok", QoS: 2}}})
		if err != nil || !slices.Equal(ack.ReasonCodes, []proto.ReasonCode{proto.NotAuthorized, proto.TopicFilterInvalid, proto.GrantedQoS2}) {
			t.Errorf("SUBACK %v (%v), want [0x87 0x8F 0x02]", ack, err)
		}
		un, err := c.c.Unsubscribe(v5Ctx(t), &proto.Unsubscribe{Filters: []string{"ok", "never"}})
		if err != nil || !slices.Equal(un.ReasonCodes, []proto.ReasonCode{proto.Success, proto.NoSubscriptionExisted}) {
			t.Errorf("UNSUBACK %v (%v), want [0x00 0x11]", un, err)
		}
		cp := proto.Connect{Version: proto.V5, ClientID: "a", CleanStart: true}
		cp.Props.AuthMethod = "SCRAM-SHA-1"
		cp.Props.Set(proto.PropAuthMethod)
		var ce *v5ConnectError
		if _, err := v5ClientTry(t, b.Addr, cp, nil); !errors.As(err, &ce) || ce.Code != proto.BadAuthenticationMethod {
			t.Errorf("authentication method: %v, want CONNACK 0x8C", err)
		}
		v5ClientConnect(t, b.Addr, proto.V5, "c") // takes the id over
		select {
		case <-c.c.Done():
		case <-time.After(nodetest.Timeout):
			t.Fatalf("old connection still open after a takeover")
		}
		if d := c.c.ServerDisconnect(); d == nil || d.ReasonCode != proto.SessionTakenOver {
			t.Errorf("server DISCONNECT %+v, want 0x8E", d)
		}
	})
	t.Run("topic aliases to the broker", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		sub := v5ClientConnect(t, b.Addr, proto.V5, "sub")
		v5ClientSubscribe(t, sub.c, "ta/#", 1)
		pub := v5ClientConnect(t, b.Addr, proto.V5, "pub")
		pub.publish(t, v5Alias("ta/x", 1, 1, 0, "1"))
		pub.publish(t, v5Alias("", 1, 1, 0, "2"))
		sub.expect(t, "ta/x", "1")
		sub.expect(t, "ta/x", "2")
	})
	t.Run("topic aliases from the broker", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		cp := proto.Connect{Version: proto.V5, ClientID: "sub", CleanStart: true, KeepAlive: 30}
		cp.Props.TopicAliasMaximum = 5
		cp.Props.Set(proto.PropTopicAliasMaximum)
		sub := v5ClientWith(t, b.Addr, cp, nil)
		v5ClientSubscribe(t, sub.c, "ta/#", 1)
		pub := v5ClientConnect(t, b.Addr, proto.V5, "pub")
		for i := range 3 {
			pub.publish(t, &proto.Publish{Topic: "ta/x", QoS: 1, Payload: []byte(strconv.Itoa(i))})
		}
		// The client asked for aliases, so it must map them back to the topic
		// (5.0 section 3.3.2.3.4) before its application sees the message.
		for i := range 3 {
			sub.expect(t, "ta/x", strconv.Itoa(i))
		}
	})
	t.Run("message expiry", func(t *testing.T) {
		t.Parallel()
		var clock v5Clock
		cfg := node.DefaultConfig()
		cfg.Now = clock.now
		b := nodetest.Start(t, cfg)
		s := v5ClientWith(t, b.Addr, v5ClientSession("s", true, 600), nil)
		v5ClientSubscribe(t, s.c, "exp/#", 1)
		if err := s.c.Disconnect(nil); err != nil {
			t.Fatal(err)
		}
		v5Settled(t, b, 0)
		pub := v5ClientConnect(t, b.Addr, proto.V5, "pub")
		for _, m := range []struct {
			topic string
			exp   uint32
		}{{"exp/short", 10}, {"exp/long", 100}} {
			p := &proto.Publish{Topic: m.topic, QoS: 1, Payload: []byte("x")}
			p.Props.MessageExpiry = m.exp
			p.Props.Set(proto.PropMessageExpiry)
			pub.publish(t, p)
		}
		clock.advance(30 * time.Second)
		s = v5ClientWith(t, b.Addr, v5ClientSession("s", false, 600), nil)
		if p := s.expect(t, "exp/long", "x"); !p.Props.Has(proto.PropMessageExpiry) || p.Props.MessageExpiry != 70 {
			t.Fatalf("message expiry %d, want 70", p.Props.MessageExpiry)
		}
		s.none(t, v5Quiet)
	})
	t.Run("receive maximum", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.ReceiveMaximum = 1
		b := nodetest.Start(t, cfg)
		// Towards the client: at most its Receive Maximum of 1 unacknowledged.
		var outstanding, most atomic.Int32
		cp := proto.Connect{Version: proto.V5, ClientID: "sub", CleanStart: true, KeepAlive: 30}
		cp.Props.ReceiveMaximum = 1
		cp.Props.Set(proto.PropReceiveMaximum)
		sub := v5ClientWith(t, b.Addr, cp, nil, func(o *client.Options) {
			o.OnPacket = func(sent bool, p proto.Packet) {
				switch p := p.(type) {
				case *proto.Publish:
					if !sent && p.QoS == 1 {
						if n := outstanding.Add(1); n > most.Load() {
							most.Store(n)
						}
					}
				case *proto.Puback:
					if sent {
						outstanding.Add(-1)
					}
				}
			}
		})
		v5ClientSubscribe(t, sub.c, "rm", 1)
		// Towards the broker: the client keeps to the CONNACK's Receive Maximum of 1,
		// or its concurrent QoS 2 publishes would be disconnected with 0x93.
		pub := v5ClientConnect(t, b.Addr, proto.V5, "pub")
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- pub.c.Publish(v5Ctx(t), &proto.Publish{Topic: "rm", QoS: byte(1 + i%2), Payload: []byte(strconv.Itoa(i))})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		for range n {
			sub.next(t)
		}
		if m := most.Load(); m != 1 {
			t.Fatalf("%d QoS 1 messages unacknowledged at once, want 1 [MQTT-3.3.4-9]", m)
		}
	})
	t.Run("maximum packet size", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		cp := proto.Connect{Version: proto.V5, ClientID: "small", CleanStart: true, KeepAlive: 30}
		cp.Props.MaximumPacketSize = 100
		cp.Props.Set(proto.PropMaximumPacketSize)
		small := v5ClientWith(t, b.Addr, cp, nil)
		v5ClientSubscribe(t, small.c, "mp", 1)
		pub := v5ClientConnect(t, b.Addr, proto.V5, "pub")
		for _, p := range []string{"a", strings.Repeat("b", 200), "c"} {
			pub.publish(t, &proto.Publish{Topic: "mp", QoS: 1, Payload: []byte(p)})
		}
		small.expect(t, "mp", "a")
		small.expect(t, "mp", "c")
		small.none(t, v5Quiet)
	})
	t.Run("subscription options", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		pub := v5ClientConnect(t, b.Addr, proto.V5, "pub")
		pub.publish(t, &proto.Publish{Topic: "so/r", QoS: 1, Retain: true, Payload: []byte("kept")})
		c := v5ClientConnect(t, b.Addr, proto.V5, "c")
		sub := func(s proto.Subscription) {
			if _, err := c.c.Subscribe(v5Ctx(t), &proto.Subscribe{Subscriptions: []proto.Subscription{s}}); err != nil {
				t.Fatal(err)
			}
		}
		sub(proto.Subscription{Filter: "so/r", QoS: 1, RetainHandling: 2})
		sub(proto.Subscription{Filter: "so/own", QoS: 1, NoLocal: true})
		sub(proto.Subscription{Filter: "so/rap", QoS: 1, RetainAsPublished: true})
		c.publish(t, &proto.Publish{Topic: "so/own", QoS: 1, Payload: []byte("own")})
		pub.publish(t, &proto.Publish{Topic: "so/rap", QoS: 1, Retain: true, Payload: []byte("rap")})
		if p := c.expect(t, "so/rap", "rap"); !p.Retain {
			t.Fatalf("retain as published: retain flag cleared")
		}
		// Neither the retained so/r (handling 2) nor its own so/own (no local).
		c.none(t, v5Quiet)
		// Handling 1 on an existing subscription: nothing either.
		sub(proto.Subscription{Filter: "so/r", QoS: 1, RetainHandling: 1})
		c.none(t, v5Quiet)
		sub(proto.Subscription{Filter: "so/r", QoS: 1, RetainHandling: 0})
		c.expect(t, "so/r", "kept")
	})
	t.Run("connack, server keep alive, assigned id, response information", func(t *testing.T) {
		t.Parallel()
		cfg := node.DefaultConfig()
		cfg.MaxKeepAlive = 1
		cfg.MaxQoS = 1
		cfg.ResponseInformation = "resp/"
		b := nodetest.Start(t, cfg)
		cp := proto.Connect{Version: proto.V5, CleanStart: true} // no keep alive, no id
		cp.Props.RequestResponseInfo = 1
		cp.Props.Set(proto.PropRequestResponseInfo)
		c := v5ClientWith(t, b.Addr, cp, nil)
		pr := &c.c.Connack.Props
		if !pr.Has(proto.PropServerKeepAlive) || pr.ServerKeepAlive != 1 {
			t.Errorf("Server Keep Alive %d (present %v), want 1", pr.ServerKeepAlive, pr.Has(proto.PropServerKeepAlive))
		}
		if !pr.Has(proto.PropMaximumQoS) || pr.MaximumQoS != 1 {
			t.Errorf("Maximum QoS %d, want 1", pr.MaximumQoS)
		}
		if pr.ResponseInfo != "resp/" {
			t.Errorf("Response Information %q, want resp/", pr.ResponseInfo)
		}
		if id := c.c.ClientID(); !pr.Has(proto.PropAssignedClientID) || id == "" || id != pr.AssignedClientID {
			t.Errorf("assigned client id %q, client uses %q", pr.AssignedClientID, id)
		}
		// The client pings every half second as the broker told it; with its own
		// keep alive of 0 it would not, and be closed after 1.5 s.
		select {
		case <-c.c.Done():
			t.Fatalf("connection ended: %v", c.c.Err())
		case <-time.After(2500 * time.Millisecond):
		}
		v5ClientSubscribe(t, c.c, "alive", 1)
	})
}
