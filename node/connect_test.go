package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// Helpers of the connection-lifecycle tests (connect, keepalive, qos and takeover
// _test.go files). The lc prefix keeps them apart from the helpers other test files
// of this package declare.

// lcVersions are the protocol versions the broker speaks.
var lcVersions = []proto.Version{proto.V31, proto.V311, proto.V5}

// lcModern are 3.1.1 and 5.0, for behaviour where 3.1 is the same as 3.1.1 and a
// test is slow enough (real timeouts) that running it a third time is not worth it.
var lcModern = []proto.Version{proto.V311, proto.V5}

// lcQuiet is how long a test listens to assert that nothing arrives.
const lcQuiet = 200 * time.Millisecond

// lcConfig returns the broker defaults with short timeouts, so tests that wait for
// a timeout stay fast.
func lcConfig() node.Config {
	cfg := node.DefaultConfig()
	cfg.ConnectTimeout = 300 * time.Millisecond
	cfg.WriteTimeout = 2 * time.Second
	return cfg
}

// lcResumable returns a CONNECT that keeps its session after the connection ends:
// clean session 0, and for 5.0 a session expiry interval, without which a 5.0
// session ends with its connection [MQTT-3.1.2-23].
func lcResumable(v proto.Version, clientID string) *proto.Connect {
	cp := &proto.Connect{ClientID: clientID, KeepAlive: 60}
	if v == proto.V5 {
		cp.Props.SessionExpiry = 300
		cp.Props.Set(proto.PropSessionExpiry)
	}
	return cp
}

// lcClean returns a CONNECT with a clean session.
func lcClean(clientID string) *proto.Connect {
	return &proto.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 60}
}

// lcDial dials and sends cp, returning the client and the CONNACK whatever its
// code.
func lcDial(t *testing.T, addr string, v proto.Version, cp *proto.Connect) (*nodetest.Client, *proto.Connack) {
	t.Helper()
	c := nodetest.Dial(t, addr, v)
	return c, c.Connect(cp)
}

// lcAccepted is lcDial that fails the test unless the broker accepts.
func lcAccepted(t *testing.T, addr string, v proto.Version, cp *proto.Connect) (*nodetest.Client, *proto.Connack) {
	t.Helper()
	c, ack := lcDial(t, addr, v, cp)
	if ack.ReasonCode != proto.Success {
		t.Fatalf("CONNECT %q refused: %v", cp.ClientID, ack.ReasonCode)
	}
	return c, ack
}

// lcAwaitConnected waits until the broker counts n connected clients. A connection the
// broker no longer counts is torn down: its writer is stopped and its session
// detached, so what is published next is queued for the session.
func lcAwaitConnected(t *testing.T, b *nodetest.Broker, n int64) {
	t.Helper()
	nodetest.Eventually(t, fmt.Sprintf("%d connected clients", n), func() bool {
		return b.Stats.Connected.Load() == n
	})
}

// lcPing checks that the connection is open and served: PINGREQ gets PINGRESP.
func lcPing(t *testing.T, c *nodetest.Client) {
	t.Helper()
	c.Send(&proto.Pingreq{})
	nodetest.Expect[*proto.Pingresp](c)
}

// lcClosedSilently fails unless the broker closes the connection without sending
// anything first.
func lcClosedSilently(t *testing.T, c *nodetest.Client) {
	t.Helper()
	if got := c.ExpectClosed(); len(got) != 0 {
		t.Fatalf("broker sent %s before closing, want nothing", lcPackets(got))
	}
}

// lcClosedAfterDisconnect fails unless the broker sends exactly one DISCONNECT
// with code and then closes the connection.
func lcClosedAfterDisconnect(t *testing.T, c *nodetest.Client, code proto.ReasonCode) {
	t.Helper()
	got := c.ExpectClosed()
	if len(got) != 1 {
		t.Fatalf("broker sent %s before closing, want one DISCONNECT %v", lcPackets(got), code)
	}
	d, ok := got[0].(*proto.Disconnect)
	if !ok || d.ReasonCode != code {
		t.Fatalf("broker sent %s before closing, want DISCONNECT %v", lcPackets(got), code)
	}
}

// lcClosedFor checks how a connection of version v ends when the broker closes it
// with a 5.0 reason: a 5.0 client gets DISCONNECT with code first [MQTT-4.13.2-1],
// older clients just see the socket close (they have no server DISCONNECT).
func lcClosedFor(t *testing.T, c *nodetest.Client, v proto.Version, code proto.ReasonCode) {
	t.Helper()
	if v == proto.V5 {
		lcClosedAfterDisconnect(t, c, code)
	} else {
		lcClosedSilently(t, c)
	}
}

// lcPackets formats packets for failure messages.
func lcPackets(ps []proto.Packet) string {
	if len(ps) == 0 {
		return "nothing"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = nodetest.String(p)
	}
	return strings.Join(s, ", ")
}

// lcRawConnect encodes a CONNECT by hand, for the fields proto.Connect cannot get
// wrong on purpose: protocol name, level and the connect flags byte as given, keep
// alive 60, an empty property list for level 5, and the client id.
func lcRawConnect(name string, level, flags byte, clientID string) []byte {
	body := []byte{byte(len(name) >> 8), byte(len(name))}
	body = append(body, name...)
	body = append(body, level, flags, 0, 60)
	if level == 5 {
		body = append(body, 0) // property length
	}
	body = append(body, byte(len(clientID)>>8), byte(len(clientID)))
	body = append(body, clientID...)
	return append([]byte{byte(proto.CONNECT) << 4, byte(len(body))}, body...)
}

func TestConnectUnsupportedProtocolLevel(t *testing.T) {
	// [MQTT-3.1.2-2] a known protocol name at a level the server does not speak gets
	// CONNACK 0x01 (unacceptable protocol level), in the 3.1.1 form since the broker
	// cannot know which form the client reads, and then the connection is closed.
	for _, tc := range []struct {
		name  string
		proto string
		level byte
	}{
		{"MQTT level 6", "MQTT", 6},
		{"MQTT level 3", "MQTT", 3},
		{"MQIsdp level 4", "MQIsdp", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			c := nodetest.Dial(t, b.Addr, proto.V311)
			c.SendRaw(lcRawConnect(tc.proto, tc.level, 0x02, "c"))
			ack := nodetest.Expect[*proto.Connack](c)
			if ack.ReasonCode != proto.ConnRefusedProtocolVersion || ack.SessionPresent {
				t.Fatalf("CONNACK code %d present %v, want 0x01 and no session", ack.ReasonCode, ack.SessionPresent)
			}
			lcClosedSilently(t, c)
		})
	}
}

func TestConnectRefusedWithoutConnack(t *testing.T) {
	// CONNECTs and first packets the broker must answer by closing the connection,
	// without accepting.
	for _, tc := range []struct {
		name string
		v    proto.Version // how the client decodes what comes back
		raw  []byte
		// refusal50 allows a refusing 5.0 CONNACK (code 0x80 or above) before the
		// close: 5.0 lets the server send CONNACK 0x81 for a malformed CONNECT
		// (§3.1.4, §4.13.1). Otherwise nothing at all may come back.
		refusal50 bool
	}{
		// [MQTT-3.1.2-1] a protocol name that is not MQTT: not an MQTT client at all,
		// so no MQTT answer either.
		{"unknown protocol name", proto.V311, lcRawConnect("MQTX", 4, 0x02, "c"), false},
		{"unknown protocol name at level 5", proto.V5, lcRawConnect("HTTP", 5, 0x02, "c"), false},
		// [MQTT-3.1.2-3] the reserved connect flag (bit 0) must be zero.
		{"reserved flag 3.1", proto.V31, lcRawConnect("MQIsdp", 3, 0x03, "c"), false},
		{"reserved flag 3.1.1", proto.V311, lcRawConnect("MQTT", 4, 0x03, "c"), false},
		{"reserved flag 5.0", proto.V5, lcRawConnect("MQTT", 5, 0x03, "c"), true},
		// [MQTT-3.1.0-1] the first packet must be CONNECT.
		{"publish first", proto.V311, []byte{
			0x30, 0x06, // PUBLISH qos 0, remaining length 6
			0x00, 0x03, 'a', '/', 'b', // topic "a/b"
			'x', // payload
		}, false},
		{"subscribe first", proto.V311, []byte{
			0x82, 0x08, // SUBSCRIBE, remaining length 8
			0x00, 0x01, // packet id 1
			0x00, 0x03, 'a', '/', 'b', 0x00, // filter "a/b" qos 0
		}, false},
		{"pingreq first", proto.V311, []byte{0xC0, 0x00}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			c := nodetest.Dial(t, b.Addr, tc.v)
			c.SendRaw(tc.raw)
			got := c.ExpectClosed()
			if len(got) == 0 {
				return
			}
			ack, ok := got[0].(*proto.Connack)
			if !tc.refusal50 || len(got) != 1 || !ok || !ack.ReasonCode.IsError() {
				t.Fatalf("broker sent %s before closing, want nothing", lcPackets(got))
			}
		})
	}
}

func TestConnectEmptyClientID(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v        proto.Version
		clean    bool
		wantCode proto.ReasonCode
	}{
		// [MQTT-3.1.3-6] [MQTT-3.1.3-7] 3.1.1 with a clean session: the server assigns
		// a unique id and accepts.
		{"3.1.1 clean session gets an id", proto.V311, true, proto.ConnAccepted},
		// [MQTT-3.1.3-8] 3.1.1 persistent session without an id: identifier rejected.
		{"3.1.1 persistent session refused", proto.V311, false, proto.ConnRefusedIdentifierRejected},
		// MQTT 3.1 (§3.1 "Client Identifier"): 1 to 23 characters, always.
		{"3.1 refused", proto.V31, true, proto.ConnRefusedIdentifierRejected},
		// 5.0 [MQTT-3.1.3-6]: the server assigns an id and returns it in CONNACK
		// [MQTT-3.2.2-16], whatever clean start says.
		{"5.0 clean start gets an assigned id", proto.V5, true, proto.Success},
		{"5.0 persistent session gets an assigned id", proto.V5, false, proto.Success},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			cp := func() *proto.Connect {
				if tc.clean {
					return lcClean("")
				}
				return lcResumable(tc.v, "")
			}
			c1, ack1 := lcDial(t, b.Addr, tc.v, cp())
			if ack1.ReasonCode != tc.wantCode {
				t.Fatalf("CONNACK code 0x%02X, want 0x%02X", byte(ack1.ReasonCode), byte(tc.wantCode))
			}
			if tc.wantCode != proto.Success {
				if ack1.SessionPresent { // [MQTT-3.2.2-4]
					t.Errorf("refusing CONNACK has session present set")
				}
				lcClosedSilently(t, c1)
				return
			}
			// Two clients without an id get different ids: the second does not take
			// the first over, both stay connected.
			c2, ack2 := lcAccepted(t, b.Addr, tc.v, cp())
			lcPing(t, c1)
			lcPing(t, c2)
			if tc.v == proto.V5 {
				id1, id2 := ack1.Props.AssignedClientID, ack2.Props.AssignedClientID
				if !ack1.Props.Has(proto.PropAssignedClientID) || id1 == "" || id2 == "" {
					t.Fatalf("CONNACK has no Assigned Client Identifier: %+v", ack1.Props)
				}
				if id1 == id2 {
					t.Fatalf("both clients were assigned %q", id1)
				}
			} else if ack1.Props.Has(proto.PropAssignedClientID) {
				t.Fatalf("3.x CONNACK carries properties")
			}
		})
	}
}

func TestConnectClientIDLength31(t *testing.T) {
	// MQTT 3.1 §3.1: the client identifier is 1 to 23 characters; longer is refused
	// with return code 0x02. 3.1.1 and 5.0 lift the limit [MQTT-3.1.3-5].
	for _, tc := range []struct {
		name     string
		v        proto.Version
		id       string
		wantCode proto.ReasonCode
	}{
		{"3.1 23 chars accepted", proto.V31, strings.Repeat("x", 23), proto.ConnAccepted},
		{"3.1 24 chars refused", proto.V31, strings.Repeat("x", 24), proto.ConnRefusedIdentifierRejected},
		{"3.1.1 100 chars accepted", proto.V311, strings.Repeat("x", 100), proto.ConnAccepted},
		{"5.0 100 chars accepted", proto.V5, strings.Repeat("x", 100), proto.Success},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			c, ack := lcDial(t, b.Addr, tc.v, lcClean(tc.id))
			if ack.ReasonCode != tc.wantCode {
				t.Fatalf("CONNACK code 0x%02X, want 0x%02X", byte(ack.ReasonCode), byte(tc.wantCode))
			}
			if tc.wantCode != proto.Success {
				lcClosedSilently(t, c)
				return
			}
			lcPing(t, c)
		})
	}
}

func TestConnectAuthenticationMethod(t *testing.T) {
	// [MQTT-4.12.0-1] an Authentication Method the server does not support: CONNACK
	// 0x8C (Bad authentication method), then close. No method is configured.
	b := nodetest.Start(t, lcConfig())
	c := nodetest.Dial(t, b.Addr, proto.V5)
	cp := lcClean("auth")
	cp.Props.AuthMethod = "SCRAM-SHA-1"
	cp.Props.Set(proto.PropAuthMethod)
	ack := c.Connect(cp)
	if ack.ReasonCode != proto.BadAuthenticationMethod {
		t.Fatalf("CONNACK %v, want bad authentication method", ack.ReasonCode)
	}
	lcClosedSilently(t, c)
}

func TestConnectSessionPresent(t *testing.T) {
	for _, v := range lcVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			pub := nodetest.Connect(t, b.Addr, v, "pub")

			// Clean 0, no session yet: session present 0 ([MQTT-3.2.2-3] in 3.1.1).
			sub, ack := lcAccepted(t, b.Addr, v, lcResumable(v, "sub"))
			if ack.SessionPresent {
				t.Errorf("first CONNECT: session present 1, want 0")
			}
			sub.Subscribe(1, 1, "sp/+")
			sub.Disconnect()
			lcAwaitConnected(t, b, 1)

			// Clean 0, session stored: session present 1 ([MQTT-3.2.2-2] in 3.1.1).
			// MQTT 3.1 has no session present flag: the byte is reserved ("not used"),
			// so it must stay 0 for a 3.1 client (Mosquitto sets it only for 3.1.1 and
			// 5.0). Either way the subscription survives without resubscribing.
			sub, ack = lcAccepted(t, b.Addr, v, lcResumable(v, "sub"))
			if want := v != proto.V31; ack.SessionPresent != want {
				t.Errorf("resumed session: session present %v, want %v", ack.SessionPresent, want)
			}
			if code := pub.Publish(&proto.Publish{Topic: "sp/1", QoS: 1, PacketID: 1, Payload: []byte("kept")}); code != proto.Success {
				t.Fatalf("PUBACK %v with a stored subscriber, want success", code)
			}
			sub.ExpectPublish("sp/1", "kept")
			sub.Disconnect()
			lcAwaitConnected(t, b, 1)

			// Clean 1: the stored session is discarded [MQTT-3.1.2-6] (3.1.1)
			// [MQTT-3.1.2-4] (5.0), session present 0 [MQTT-3.2.2-1], and its
			// subscriptions are gone.
			sub, ack = lcAccepted(t, b.Addr, v, lcClean("sub"))
			if ack.SessionPresent {
				t.Errorf("clean CONNECT: session present 1, want 0")
			}
			code := pub.Publish(&proto.Publish{Topic: "sp/2", QoS: 1, PacketID: 2, Payload: []byte("gone")})
			if v == proto.V5 && code != proto.NoMatchingSubscribers {
				t.Errorf("PUBACK %v after the session was discarded, want no matching subscribers", code)
			}
			sub.ExpectNothing(lcQuiet)
		})
	}
}

func TestConnackProperties50(t *testing.T) {
	// A 5.0 CONNACK announces the server's limits and features (§3.2.2.3).
	for _, tc := range []struct {
		name    string
		maxQoS  byte
		wantQoS bool // Maximum QoS is sent only when below 2 [MQTT-3.2.2-9]
	}{
		{"max qos 2", 2, false},
		{"max qos 1", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := lcConfig()
			cfg.ReceiveMaximum = 77
			cfg.MaxPacketSize = 4096
			cfg.TopicAliasMaximum = 9
			cfg.MaxQoS = tc.maxQoS
			b := nodetest.Start(t, cfg)
			_, ack := lcAccepted(t, b.Addr, proto.V5, lcClean("props"))
			p := &ack.Props
			for _, f := range []struct {
				name      string
				id        proto.PropID
				got, want uint32
			}{
				{"Receive Maximum", proto.PropReceiveMaximum, uint32(p.ReceiveMaximum), 77},
				{"Maximum Packet Size", proto.PropMaximumPacketSize, p.MaximumPacketSize, 4096},
				{"Topic Alias Maximum", proto.PropTopicAliasMaximum, uint32(p.TopicAliasMaximum), 9},
				{"Retain Available", proto.PropRetainAvailable, uint32(p.RetainAvailable), 1},
				{"Wildcard Subscription Available", proto.PropWildcardSubAvailable, uint32(p.WildcardSubAvail), 1},
				{"Subscription Identifiers Available", proto.PropSubIDAvailable, uint32(p.SubIDAvailable), 1},
				{"Shared Subscription Available", proto.PropSharedSubAvailable, uint32(p.SharedSubAvailable), 1},
			} {
				if !p.Has(f.id) {
					t.Errorf("CONNACK lacks %s", f.name)
				} else if f.got != f.want {
					t.Errorf("CONNACK %s = %d, want %d", f.name, f.got, f.want)
				}
			}
			if p.Has(proto.PropMaximumQoS) != tc.wantQoS || tc.wantQoS && p.MaximumQoS != tc.maxQoS {
				t.Errorf("CONNACK Maximum QoS present %v value %d, want present %v value %d",
					p.Has(proto.PropMaximumQoS), p.MaximumQoS, tc.wantQoS, tc.maxQoS)
			}
			if p.Has(proto.PropAssignedClientID) {
				t.Errorf("CONNACK assigns an id to a client that has one")
			}
		})
	}
}

func TestConnectSecondConnect(t *testing.T) {
	// [MQTT-3.1.0-2] a second CONNECT is a protocol violation: the broker closes the
	// connection; a 5.0 client gets DISCONNECT 0x82 (Protocol Error) first.
	for _, v := range lcVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, lcConfig())
			c := nodetest.Connect(t, b.Addr, v, "twice")
			c.Send(&proto.Connect{Version: v, ClientID: "twice", CleanStart: true, KeepAlive: 60})
			lcClosedFor(t, c, v, proto.ProtocolError)
			// The broker forgot the connection: the id connects again at once.
			again := nodetest.Connect(t, b.Addr, v, "twice")
			lcPing(t, again)
		})
	}
}
