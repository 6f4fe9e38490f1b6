package node_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// TestSubscribeInvalidFilters sends one SUBSCRIBE mixing valid and invalid filters:
// each invalid one is refused on its own (3.1.1: 0x80 [MQTT-3.9.3-2]; 5.0: 0x8F Topic
// Filter invalid) while the valid ones in the same packet are granted and work
// [MQTT-3.8.4-5] (one return code per filter, in order).
func TestSubscribeInvalidFilters(t *testing.T) {
	t.Parallel()
	filters := []struct {
		filter string
		valid  bool
	}{
		{"ok/a", true},
		{"a/#/b", false}, // [MQTT-4.7.1-2] # only as the last level
		{"a+", false},    // [MQTT-4.7.1-3] + must occupy a whole level
		{"#a", false},    // [MQTT-4.7.1-2]
		{"", false},      // [MQTT-4.7.3-1] at least one character
		{"ok/+/c", true},
		{"$share/g/a/#/b", false}, // the filter after a share group follows the same rules
		{"ok/#", true},
	}
	for _, v := range itVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			sub := nodetest.Connect(t, b.Addr, v, "sub")
			s := &proto.Subscribe{PacketID: 3}
			for _, f := range filters {
				s.Subscriptions = append(s.Subscriptions, proto.Subscription{Filter: f.filter, QoS: 1})
			}
			codes := itSubscribe(t, sub, s)
			if len(codes) != len(filters) {
				t.Fatalf("SUBACK has %d codes for %d filters: %v", len(codes), len(filters), codes)
			}
			fail := proto.SubackFailure
			if v == proto.V5 {
				fail = proto.TopicFilterInvalid
			}
			for i, f := range filters {
				want := fail
				if f.valid {
					want = proto.GrantedQoS1
				}
				if codes[i] != want {
					t.Errorf("filter %q: code 0x%02X, want 0x%02X", f.filter, byte(codes[i]), byte(want))
				}
			}
			if n := b.SubscriptionCount(); n != 3 {
				t.Errorf("SubscriptionCount = %d, want 3 (only the valid filters)", n)
			}
			// The connection stays up and the granted filters deliver (ok/a matches
			// ok/a and ok/#: one copy).
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			pub.Publish(&proto.Publish{Topic: "ok/a", QoS: 1, PacketID: 1, Payload: []byte("1")})
			pub.Publish(&proto.Publish{Topic: "ok/b/c", QoS: 1, PacketID: 2, Payload: []byte("2")})
			sub.ExpectPublish("ok/a", "1")
			sub.ExpectPublish("ok/b/c", "2")
			sub.ExpectNothing(itQuiet)
		})
	}
}

// TestSubscribeMaxQoS runs a broker with MaxQoS 1: a subscription asking for QoS 2 is
// granted 1 and delivers at 1 (3.1.1 [MQTT-3.8.4-6], 5.0 [MQTT-3.2.2-10]), and a 5.0
// client that publishes at QoS 2 anyway, past the Maximum QoS its CONNACK announced
// [MQTT-3.2.2-9], is disconnected with 0x9B [MQTT-3.2.2-11].
func TestSubscribeMaxQoS(t *testing.T) {
	t.Parallel()
	cfg := node.DefaultConfig()
	cfg.MaxQoS = 1
	for _, v := range itVersions {
		t.Run(v.String()+"/granted", func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, cfg)
			sub := nodetest.Connect(t, b.Addr, v, "sub")
			s := &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{
				{Filter: "q/2", QoS: 2}, {Filter: "q/1", QoS: 1}, {Filter: "q/0", QoS: 0},
			}}
			if codes := itSubscribe(t, sub, s); !slices.Equal(codes, []proto.ReasonCode{1, 1, 0}) {
				t.Fatalf("granted %v, want [1 1 0]", codes)
			}
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			pub.Publish(&proto.Publish{Topic: "q/2", QoS: 1, PacketID: 1, Payload: []byte("x")})
			if got := sub.ExpectPublish("q/2", "x"); got.QoS != 1 {
				t.Fatalf("delivered at QoS %d, want 1", got.QoS)
			}
		})
	}
	t.Run("5.0/qos2 publish over maximum", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, cfg)
		sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
		sub.Subscribe(1, 1, "q/#")
		pub := nodetest.Dial(t, b.Addr, proto.V5)
		ack := pub.Connect(&proto.Connect{ClientID: "pub", CleanStart: true})
		if !ack.Props.Has(proto.PropMaximumQoS) || ack.Props.MaximumQoS != 1 {
			t.Fatalf("CONNACK Maximum QoS present=%v value=%d, want 1", ack.Props.Has(proto.PropMaximumQoS), ack.Props.MaximumQoS)
		}
		pub.Send(&proto.Publish{Topic: "q/x", QoS: 2, PacketID: 1, Payload: []byte("x")})
		itClosedWith(t, pub, proto.QoSNotSupported)
		sub.ExpectNothing(itQuiet)
	})
}

// TestOverlappingSubscriptions subscribes one client to a/# at QoS 0 and a/b at QoS
// 2: a message matching both is delivered once, at the highest QoS the matching
// subscriptions allow (3.1.1 [MQTT-3.3.5-1], 5.0 [MQTT-3.3.4-2]).
func TestOverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		topic string
		qos   byte
		want  byte
	}{
		{"both match, published at 2", "a/b", 2, 2},
		{"both match, published at 1", "a/b", 1, 1},
		{"both match, published at 0", "a/b", 0, 0},
		{"only a/# matches", "a/c", 2, 0},
	}
	for _, v := range itVersions {
		for _, tc := range cases {
			t.Run(v.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				b := nodetest.Start(t, node.DefaultConfig())
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				s := &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{
					{Filter: "a/#", QoS: 0}, {Filter: "a/b", QoS: 2},
				}}
				if codes := itSubscribe(t, sub, s); !slices.Equal(codes, []proto.ReasonCode{0, 2}) {
					t.Fatalf("granted %v, want [0 2]", codes)
				}
				pub := nodetest.Connect(t, b.Addr, v, "pub")
				pub.Publish(&proto.Publish{Topic: tc.topic, QoS: tc.qos, PacketID: 1, Payload: []byte("m")})
				got := itCollect(t, sub, 1)
				if got[0].Topic != tc.topic || got[0].QoS != tc.want {
					t.Fatalf("got %s at QoS %d, want %s at QoS %d", got[0].Topic, got[0].QoS, tc.topic, tc.want)
				}
				sub.ExpectNothing(itQuiet) // one copy only
			})
		}
	}
}

// TestOverlappingSubscriptionIDs (5.0): the single copy sent for overlapping
// subscriptions carries the identifiers of all of them [MQTT-3.3.4-3] [MQTT-3.3.4-4].
func TestOverlappingSubscriptionIDs(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
	for i, f := range []string{"a/#", "a/b", "x/y"} {
		s := &proto.Subscribe{PacketID: uint16(i + 1), Subscriptions: []proto.Subscription{{Filter: f, QoS: 1}}}
		s.Props.SubscriptionIDs = []int{i + 1}
		itSubscribe(t, sub, s)
	}
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "a/b", QoS: 1, PacketID: 1, Payload: []byte("m")})
	got := sub.ExpectPublish("a/b", "m")
	ids := slices.Sorted(slices.Values(got.Props.SubscriptionIDs))
	if !slices.Equal(ids, []int{1, 2}) {
		t.Fatalf("subscription ids %v, want [1 2]", got.Props.SubscriptionIDs)
	}
	sub.ExpectNothing(itQuiet)
}

// TestUnsubscribe: UNSUBSCRIBE deletes the subscription with that exact filter and
// stops its delivery [MQTT-3.10.4-1] [MQTT-3.10.4-2], and is always answered with
// UNSUBACK [MQTT-3.10.4-4] [MQTT-3.10.4-5]; in 5.0 a filter that was not subscribed
// gets 0x11 No subscription existed.
func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	for _, v := range itVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			sub := nodetest.Connect(t, b.Addr, v, "sub")
			sub.Subscribe(1, 1, "u/1", "u/2")
			sub.Send(&proto.Unsubscribe{PacketID: 2, Filters: []string{"u/1", "u/none"}})
			ack := nodetest.Expect[*proto.Unsuback](sub)
			if ack.PacketID != 2 {
				t.Fatalf("UNSUBACK for %d, want 2", ack.PacketID)
			}
			if v == proto.V5 {
				want := []proto.ReasonCode{proto.Success, proto.NoSubscriptionExisted}
				if !slices.Equal(ack.ReasonCodes, want) {
					t.Fatalf("UNSUBACK codes %v, want %v", ack.ReasonCodes, want)
				}
			}
			if n := b.SubscriptionCount(); n != 1 {
				t.Fatalf("SubscriptionCount = %d, want 1", n)
			}
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			pub.Publish(&proto.Publish{Topic: "u/1", QoS: 1, PacketID: 1, Payload: []byte("gone")})
			pub.Publish(&proto.Publish{Topic: "u/2", QoS: 1, PacketID: 2, Payload: []byte("kept")})
			// Same publisher, so u/1 would have arrived first.
			sub.ExpectPublish("u/2", "kept")
			sub.ExpectNothing(itQuiet)
		})
	}
}

// TestResubscribe: subscribing again to the same filter replaces the subscription and
// its QoS, without a second copy of each message [MQTT-3.8.4-3].
func TestResubscribe(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		first, second byte
	}{
		{"raise 0 to 2", 0, 2},
		{"lower 2 to 0", 2, 0},
		{"same 1", 1, 1},
	}
	for _, v := range itVersions {
		for _, tc := range cases {
			t.Run(v.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				b := nodetest.Start(t, node.DefaultConfig())
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				sub.Subscribe(1, tc.first, "r/t")
				if codes := sub.Subscribe(2, tc.second, "r/t"); codes[0] != proto.ReasonCode(tc.second) {
					t.Fatalf("resubscribe granted %v, want %d", codes, tc.second)
				}
				if n := b.SubscriptionCount(); n != 1 {
					t.Fatalf("SubscriptionCount = %d, want 1", n)
				}
				pub := nodetest.Connect(t, b.Addr, v, "pub")
				pub.Publish(&proto.Publish{Topic: "r/t", QoS: 2, PacketID: 1, Payload: []byte("m")})
				if got := itCollect(t, sub, 1); got[0].QoS != tc.second {
					t.Fatalf("delivered at QoS %d, want %d", got[0].QoS, tc.second)
				}
				sub.ExpectNothing(itQuiet)
			})
		}
	}
}

// TestDollarTopics: a filter starting with a wildcard does not match topics starting
// with $ [MQTT-4.7.2-1], while a filter starting with the same $ level does.
func TestDollarTopics(t *testing.T) {
	t.Parallel()
	for _, v := range itVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			all := nodetest.Connect(t, b.Addr, v, "all")
			all.Subscribe(1, 0, "#", "+/x", "+")
			dollar := nodetest.Connect(t, b.Addr, v, "dollar")
			dollar.Subscribe(1, 0, "$foo/#")
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			for _, topic := range []string{"$SYS/x", "$foo", "$foo/x", "end"} {
				pub.Publish(&proto.Publish{Topic: topic, QoS: 1, PacketID: 1, Payload: []byte(topic)})
			}
			// Same publisher: any $ topic delivered to "all" would come before "end".
			all.ExpectPublish("end", "end")
			all.ExpectNothing(itQuiet)
			// $foo/# matches $foo itself (# includes the parent level) and $foo/x.
			dollar.ExpectPublish("$foo", "$foo")
			dollar.ExpectPublish("$foo/x", "$foo/x")
			dollar.ExpectNothing(itQuiet)
		})
	}
}

// TestNoLocal (5.0): a subscription with No Local set does not get the client's own
// messages [MQTT-3.8.3-3], while other subscribers do, and it still gets the messages
// of other clients.
func TestNoLocal(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	a := nodetest.Connect(t, b.Addr, proto.V5, "a")
	itSubscribe(t, a, &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: "nl/t", QoS: 1, NoLocal: true}}})
	other := nodetest.Connect(t, b.Addr, proto.V5, "other")
	other.Subscribe(1, 1, "nl/t")
	third := nodetest.Connect(t, b.Addr, proto.V5, "third")

	a.Publish(&proto.Publish{Topic: "nl/t", QoS: 1, PacketID: 1, Payload: []byte("from a")})
	other.ExpectPublish("nl/t", "from a")
	third.Publish(&proto.Publish{Topic: "nl/t", QoS: 1, PacketID: 1, Payload: []byte("from third")})
	// "from a" was routed before "from third": a gets only the second.
	a.ExpectPublish("nl/t", "from third")
	a.ExpectNothing(itQuiet)
	other.ExpectPublish("nl/t", "from third")
}

// TestSubscriptionIdentifier (5.0): a message matching a subscription made with a
// Subscription Identifier carries it [MQTT-3.3.4-3]; one matching only a subscription
// without an identifier carries none.
func TestSubscriptionIdentifier(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
	s := &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: "sid/+", QoS: 1}}}
	s.Props.SubscriptionIDs = []int{268435455} // the largest variable byte integer
	itSubscribe(t, sub, s)
	sub.Subscribe(2, 1, "plain")
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "sid/x", QoS: 1, PacketID: 1, Payload: []byte("1")})
	pub.Publish(&proto.Publish{Topic: "plain", QoS: 1, PacketID: 2, Payload: []byte("2")})
	if got := sub.ExpectPublish("sid/x", "1"); !slices.Equal(got.Props.SubscriptionIDs, []int{268435455}) {
		t.Errorf("sid/x: subscription ids %v, want [268435455]", got.Props.SubscriptionIDs)
	}
	if got := sub.ExpectPublish("plain", "2"); len(got.Props.SubscriptionIDs) != 0 {
		t.Errorf("plain: subscription ids %v, want none", got.Props.SubscriptionIDs)
	}
}

// TestSharedSubscription (5.0 section 4.8.2): the members of a shared subscription
// group split its messages, each message going to exactly one member; with the
// round_robin strategy each of 3 members gets a third of 30 messages.
func TestSharedSubscription(t *testing.T) {
	t.Parallel()
	cfg := node.DefaultConfig()
	cfg.SharedStrategy = "round_robin"
	b := nodetest.Start(t, cfg)
	members := make([]*nodetest.Client, 3)
	for i := range members {
		members[i] = nodetest.Connect(t, b.Addr, proto.V5, "m"+strconv.Itoa(i))
		members[i].Subscribe(1, 1, "$share/g/t/#")
	}
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	const n = 30
	for i := range n {
		// QoS 1: the PUBACK comes after the message reached its member.
		pub.Publish(&proto.Publish{Topic: "t/" + strconv.Itoa(i), QoS: 1, PacketID: uint16(i + 1), Payload: []byte(strconv.Itoa(i))})
	}
	seen := make(map[string]string) // payload -> member
	for i, m := range members {
		got := itDrain(t, m)
		if len(got) != n/len(members) {
			t.Errorf("member %d got %d messages, want %d", i, len(got), n/len(members))
		}
		for _, p := range got {
			if prev, dup := seen[string(p.Payload)]; dup {
				t.Errorf("message %s delivered to %s and m%d", p.Payload, prev, i)
			}
			seen[string(p.Payload)] = "m" + strconv.Itoa(i)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages delivered, want %d", len(seen), n)
	}
}

// TestSharedAndNormalSubscription: a shared subscription does not take messages away
// from ordinary subscriptions of other clients; both get the message once.
func TestSharedAndNormalSubscription(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	shared := nodetest.Connect(t, b.Addr, proto.V5, "shared")
	shared.Subscribe(1, 1, "$share/g/s/t")
	normal := nodetest.Connect(t, b.Addr, proto.V5, "normal")
	normal.Subscribe(1, 1, "s/t")
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "s/t", QoS: 1, PacketID: 1, Payload: []byte("m")})
	shared.ExpectPublish("s/t", "m")
	normal.ExpectPublish("s/t", "m")
	shared.ExpectNothing(itQuiet)
	normal.ExpectNothing(itQuiet)
}

// Helpers shared by the integration tests of this package (subscribe, retained, will,
// offline, shutdown, badinput), prefixed it so that they stay apart from the helpers
// of the package's other test files.

// itVersions are the protocol versions whose behaviour differs in these tests.
var itVersions = []proto.Version{proto.V311, proto.V5}

// itQuiet is how long a test listens to be sure something does NOT arrive: a packet
// the broker already routed arrives on loopback in well under a millisecond.
const itQuiet = 200 * time.Millisecond

// itConnect dials addr and sends cp, failing the test unless the broker accepts it.
func itConnect(t *testing.T, addr string, v proto.Version, cp *proto.Connect) (*nodetest.Client, *proto.Connack) {
	t.Helper()
	c := nodetest.Dial(t, addr, v)
	ack := c.Connect(cp)
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNECT %q refused: %v", cp.ClientID, ack.ReasonCode)
	}
	return c, ack
}

// itPersistent returns a CONNECT whose session outlives the connection: clean session 0
// in 3.1.1; in 5.0 a session expiry interval of expiry seconds, with cleanStart as
// given.
func itPersistent(v proto.Version, id string, cleanStart bool, expiry uint32) *proto.Connect {
	cp := &proto.Connect{ClientID: id, KeepAlive: 60}
	if v == proto.V5 {
		cp.CleanStart = cleanStart
		cp.Props.SessionExpiry = expiry
		cp.Props.Set(proto.PropSessionExpiry)
	}
	return cp
}

// itSubscribe sends s and returns the SUBACK's codes.
func itSubscribe(t *testing.T, c *nodetest.Client, s *proto.Subscribe) []proto.ReasonCode {
	t.Helper()
	c.Send(s)
	ack := nodetest.Expect[*proto.Suback](c)
	if ack.PacketID != s.PacketID {
		t.Fatalf("SUBACK for %d, want %d", ack.PacketID, s.PacketID)
	}
	return ack.ReasonCodes
}

// itCollect reads until it has n PUBLISH packets and every QoS 2 flow it started is
// complete, acknowledging as a receiver even when flows interleave (a PUBREL may come
// after later PUBLISHes), and returns the PUBLISHes in arrival order.
func itCollect(t *testing.T, c *nodetest.Client, n int) []*proto.Publish {
	t.Helper()
	var got []*proto.Publish
	awaitingRel := 0
	for len(got) < n || awaitingRel > 0 {
		itReceive(t, c, c.Recv(), &got, &awaitingRel)
	}
	return got
}

// itDrain is itCollect for an unknown count: it reads until nothing
// arrives for itQuiet.
func itDrain(t *testing.T, c *nodetest.Client) []*proto.Publish {
	t.Helper()
	var got []*proto.Publish
	awaitingRel := 0
	for {
		p, err := c.RecvWithin(itQuiet)
		if ne, ok := err.(net.Error); ok && ne.Timeout() && awaitingRel == 0 {
			return got
		}
		if err != nil {
			t.Fatalf("read packet: %v", err)
		}
		itReceive(t, c, p, &got, &awaitingRel)
	}
}

// itReceive handles one packet for itCollect and itDrain, failing
// the test on a packet that is neither PUBLISH nor PUBREL.
func itReceive(t *testing.T, c *nodetest.Client, p proto.Packet, got *[]*proto.Publish, awaitingRel *int) {
	t.Helper()
	switch p := p.(type) {
	case *proto.Publish:
		*got = append(*got, p)
		switch p.QoS {
		case 1:
			c.Send(&proto.Puback{PacketID: p.PacketID})
		case 2:
			c.Send(&proto.Pubrec{PacketID: p.PacketID})
			*awaitingRel++
		}
	case *proto.Pubrel:
		c.Send(&proto.Pubcomp{PacketID: p.PacketID})
		*awaitingRel--
	default:
		t.Fatalf("got %s, want PUBLISH or PUBREL", nodetest.String(p))
	}
}

// itPayloads returns the payloads of ps.
func itPayloads(ps []*proto.Publish) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Payload)
	}
	return out
}

// itSettled waits until exactly n clients are connected and the broker has
// settled the sessions of those that left (detached, will handled, expiry timer set),
// so that what a test publishes next finds them offline.
func itSettled(t *testing.T, b *nodetest.Broker, n int64) {
	t.Helper()
	nodetest.Eventually(t, fmt.Sprintf("%d connected clients", n), func() bool {
		if b.Stats.Connected.Load() != n {
			return false
		}
		// Connected drops inside the Broker.mu section that also detaches the session;
		// SessionCount takes Broker.mu, so once it returns that section is over.
		b.SessionCount()
		return true
	})
}

// itClosedWith waits for the broker to close c: a 5.0 client must first get a
// DISCONNECT with code [MQTT-4.13.1-1], an older client only the close.
func itClosedWith(t *testing.T, c *nodetest.Client, code proto.ReasonCode) {
	t.Helper()
	got := c.ExpectClosed()
	if c.Version != proto.V5 {
		if len(got) != 0 {
			t.Fatalf("got %s before the close, want nothing", nodetest.String(got[0]))
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("got %d packets before the close, want one DISCONNECT: %v", len(got), got)
	}
	d, ok := got[0].(*proto.Disconnect)
	if !ok || d.ReasonCode != code {
		t.Fatalf("got %s, want DISCONNECT %v", nodetest.String(got[0]), code)
	}
}
