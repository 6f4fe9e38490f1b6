package node_test

// Shared subscriptions, $share/{group}/{filter} (5.0 section 4.8.2), from 5.0 clients
// (paho and the project client) and from 3.1.1 clients, which use the same filter
// syntax.

import (
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// shrQuiet is how long a drain waits for one more message.
const shrQuiet = 300 * time.Millisecond

// shrMember is one subscriber of a test, whatever its client: drain returns the
// payloads it received, in order, acknowledging them, until nothing came for
// shrQuiet.
type shrMember struct {
	name  string
	drain func() []string
}

func shrPaho(t *testing.T, c *v5Paho, name string) shrMember {
	return shrMember{name, func() []string {
		var got []string
		for {
			select {
			case p := <-c.msgs:
				got = append(got, string(p.Payload))
			case <-time.After(shrQuiet):
				return got
			}
		}
	}}
}

func shrOwn(t *testing.T, o *v5Own, name string) shrMember {
	return shrMember{name, func() []string {
		var got []string
		for {
			select {
			case p := <-o.msgs:
				got = append(got, string(p.Payload))
			case <-time.After(shrQuiet):
				return got
			}
		}
	}}
}

func shrRaw(t *testing.T, c *nodetest.Client, name string) shrMember {
	return shrMember{name, func() []string {
		var got []string
		for {
			p, err := c.RecvWithin(shrQuiet)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return got
			}
			if err != nil {
				t.Fatalf("%s: read: %v", name, err)
			}
			pub, ok := p.(*proto.Publish)
			if !ok {
				t.Fatalf("%s: got %s, want PUBLISH", name, nodetest.String(p))
			}
			c.Ack(pub)
			got = append(got, string(pub.Payload))
		}
	}}
}

// shrSplit drains every member and returns who got each payload, failing the test
// if a payload reached two members or one of want reached none.
func shrSplit(t *testing.T, group string, members []shrMember, want []string) (owner map[string]string, counts map[string]int) {
	t.Helper()
	owner, counts = map[string]string{}, map[string]int{}
	for _, m := range members {
		for _, p := range m.drain() {
			if prev, dup := owner[p]; dup {
				t.Fatalf("group %s: message %s delivered to %s and %s", group, p, prev, m.name)
			}
			owner[p] = m.name
			counts[m.name]++
		}
	}
	for _, p := range want {
		if _, ok := owner[p]; !ok {
			t.Fatalf("group %s: message %s reached no member (%d of %d delivered)", group, p, len(owner), len(want))
		}
	}
	if len(owner) != len(want) {
		t.Fatalf("group %s: %d messages delivered, want %d", group, len(owner), len(want))
	}
	return owner, counts
}

// TestShrGroupsMixedVersions: each message goes to exactly one member of each group
// and to every ordinary subscriber; 3.1.1 and 5.0 members share a group; round robin
// (the default) visits the members in turn; a shared subscription gets no retained
// messages.
func TestShrGroupsMixedVersions(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig()) // SharedStrategy round_robin by default
	pub := v5PahoClean(t, b.Addr, "pub")
	pub.pub(&paho.Publish{Topic: "job/retained", QoS: 1, Retain: true, Payload: []byte("retained")})

	a1 := v5PahoClean(t, b.Addr, "a1")
	a1.sub(paho.SubscribeOptions{Topic: "$share/a/job/#", QoS: 1})
	a2 := v5ClientConnect(t, b.Addr, proto.V311, "a2")
	if ack := v5ClientSubscribe(t, a2.c, "$share/a/job/#", 1); !slices.Equal(ack.ReasonCodes, []proto.ReasonCode{1}) {
		t.Fatalf("3.1.1 shared SUBACK %v, want [1]", ack.ReasonCodes)
	}
	a3 := nodetest.Connect(t, b.Addr, proto.V311, "a3")
	if codes := a3.Subscribe(1, 2, "$share/a/job/#"); !slices.Equal(codes, []proto.ReasonCode{2}) {
		t.Fatalf("3.1.1 shared SUBACK %v, want [2]", codes)
	}
	b1 := v5PahoClean(t, b.Addr, "b1")
	b1.sub(paho.SubscribeOptions{Topic: "$share/b/job/+", QoS: 1})
	b2 := v5ClientConnect(t, b.Addr, proto.V5, "b2")
	v5ClientSubscribe(t, b2.c, "$share/b/job/+", 1)
	plain := v5PahoClean(t, b.Addr, "plain")
	plain.sub(paho.SubscribeOptions{Topic: "job/#", QoS: 1})
	if got := plain.expect("job/retained", "retained"); !got.Retain {
		t.Fatalf("ordinary subscription: retained message without the retain flag")
	}

	const n = 12
	var want []string
	for i := range n {
		p := strconv.Itoa(i)
		want = append(want, p)
		pub.pub(&paho.Publish{Topic: "job/" + p, QoS: 1, Payload: []byte(p)})
	}
	groupA := []shrMember{shrPaho(t, a1, "a1"), shrOwn(t, a2, "a2"), shrRaw(t, a3, "a3")}
	ownerA, countsA := shrSplit(t, "a", groupA, want)
	_, countsB := shrSplit(t, "b", []shrMember{shrPaho(t, b1, "b1"), shrOwn(t, b2, "b2")}, want)
	for _, m := range []string{"a1", "a2", "a3"} {
		if countsA[m] != n/3 {
			t.Errorf("round robin: %s got %d messages, want %d: %v", m, countsA[m], n/3, countsA)
		}
	}
	if countsB["b1"] != n/2 || countsB["b2"] != n/2 {
		t.Errorf("round robin: group b split %v, want %d each", countsB, n/2)
	}
	// In turn: message i goes where message i-3 went.
	for i := 3; i < n; i++ {
		if ownerA[strconv.Itoa(i)] != ownerA[strconv.Itoa(i-3)] {
			t.Fatalf("round robin: messages %d and %d went to %s and %s", i-3, i, ownerA[strconv.Itoa(i-3)], ownerA[strconv.Itoa(i)])
		}
	}
	if got := shrPaho(t, plain, "plain").drain(); !slices.Equal(got, want) {
		t.Fatalf("ordinary subscriber got %v, want every message in order", got)
	}
}

// TestShrStrategies: the SharedStrategy setting picks the member: random spreads
// messages over every member, hash_clientid keeps a publisher's messages on one
// member, hash_topic a topic's.
func TestShrStrategies(t *testing.T) {
	t.Parallel()
	// run starts a broker with strategy, three paho members in group g, and returns
	// the owner of each payload sent by sends (publisher id, topic, payload).
	type send struct{ from, topic, payload string }
	run := func(t *testing.T, strategy string, sends []send) (map[string]string, map[string]int) {
		cfg := node.DefaultConfig()
		cfg.SharedStrategy = strategy
		b := nodetest.Start(t, cfg)
		var members []shrMember
		for i := range 3 {
			name := "m" + strconv.Itoa(i)
			m := v5PahoClean(t, b.Addr, name)
			m.sub(paho.SubscribeOptions{Topic: "$share/g/s/#", QoS: 1})
			members = append(members, shrPaho(t, m, name))
		}
		pubs := map[string]*v5Paho{}
		var want []string
		for _, s := range sends {
			p := pubs[s.from]
			if p == nil {
				p = v5PahoClean(t, b.Addr, s.from)
				pubs[s.from] = p
			}
			p.pub(&paho.Publish{Topic: s.topic, QoS: 1, Payload: []byte(s.payload)})
			want = append(want, s.payload)
		}
		return shrSplit(t, "g", members, want)
	}
	t.Run("random", func(t *testing.T) {
		t.Parallel()
		var sends []send
		for i := range 60 {
			sends = append(sends, send{"p", "s/x", strconv.Itoa(i)})
		}
		owner, counts := run(t, "random", sends)
		// Each member misses all 60 with probability (2/3)^60, about 3e-11.
		if len(counts) != 3 {
			t.Fatalf("random: messages went to %v, want all three members", counts)
		}
		// Not round robin in disguise, which visits the members in a fixed cycle;
		// random does so with probability (1/3)^57.
		cyclic := true
		for i := 3; i < 60; i++ {
			cyclic = cyclic && owner[strconv.Itoa(i)] == owner[strconv.Itoa(i-3)]
		}
		if cyclic {
			t.Fatalf("random: the members took turns exactly, as round robin does")
		}
	})
	t.Run("hash_clientid", func(t *testing.T) {
		t.Parallel()
		var sends []send
		pubs := shrDistinctHashes("p")
		for _, from := range pubs {
			for i := range 4 {
				sends = append(sends, send{from, "s/" + strconv.Itoa(i), from + "-" + strconv.Itoa(i)})
			}
		}
		owner, _ := run(t, "hash_clientid", sends)
		members := map[string]bool{}
		for _, from := range pubs {
			first := owner[from+"-0"]
			members[first] = true
			for i := range 4 {
				if got := owner[from+"-"+strconv.Itoa(i)]; got != first {
					t.Fatalf("hash_clientid: %s's messages went to %s and %s", from, first, got)
				}
			}
		}
		if len(members) != len(pubs) {
			t.Fatalf("hash_clientid: publishers with different hashes shared a member: %v", owner)
		}
	})
	t.Run("hash_topic", func(t *testing.T) {
		t.Parallel()
		var sends []send
		topics := shrDistinctHashes("s/")
		for _, topic := range topics {
			for i, from := range []string{"p1", "p2", "p3"} {
				sends = append(sends, send{from, topic, topic + "-" + strconv.Itoa(i)})
			}
		}
		owner, _ := run(t, "hash_topic", sends)
		members := map[string]bool{}
		for _, topic := range topics {
			first := owner[topic+"-0"]
			members[first] = true
			for i := range 3 {
				if got := owner[topic+"-"+strconv.Itoa(i)]; got != first {
					t.Fatalf("hash_topic: messages on %s went to %s and %s", topic, first, got)
				}
			}
		}
		if len(members) != len(topics) {
			t.Fatalf("hash_topic: topics with different hashes shared a member: %v", owner)
		}
	})
}

// shrDistinctHashes returns three names starting with prefix whose FNV-1a hashes
// fall in different thirds: with three members, a hash strategy must then use every
// member.
func shrDistinctHashes(prefix string) []string {
	var out []string
	seen := map[uint64]bool{}
	for i := 0; len(out) < 3; i++ {
		name := prefix + strconv.Itoa(i)
		h := fnv.New64a()
		h.Write([]byte(name))
		if r := h.Sum64() % 3; !seen[r] {
			seen[r] = true
			out = append(out, name)
		}
	}
	return out
}

// TestShrRedelivery: messages a member received and did not acknowledge go to
// another member of its group when it leaves (section 4.8.2 allows it), whether it
// drops the connection or disconnects, and do not come back to it.
func TestShrRedelivery(t *testing.T) {
	t.Parallel()
	t.Run("paho member drops the connection", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		// m1 sorts first: round robin gives it messages 0, 2, 4...
		m1 := v5PahoConnect(t, b.Addr, v5PahoSession("m1", true, 60), func(cfg *paho.ClientConfig) {
			cfg.EnableManualAcknowledgment = true // and it never acknowledges
		})
		m1.sub(paho.SubscribeOptions{Topic: "$share/g/r", QoS: 1})
		m2 := v5PahoClean(t, b.Addr, "m2")
		m2.sub(paho.SubscribeOptions{Topic: "$share/g/r", QoS: 2})
		pub := v5PahoClean(t, b.Addr, "pub")
		const n = 10
		for i := range n {
			pub.pub(&paho.Publish{Topic: "r", QoS: byte(1 + i%2), Payload: []byte(strconv.Itoa(i))})
		}
		var held []string
		for range n / 2 {
			held = append(held, string(m1.next().Payload))
		}
		m1.drop()
		got := shrPaho(t, m2, "m2").drain()
		slices.Sort(got)
		want := make([]string, n)
		for i := range n {
			want[i] = strconv.Itoa(i)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("remaining member got %v, want all %d (its own and m1's unacknowledged %v)", got, n, held)
		}
		// m1 comes back to its session: the messages went elsewhere, not to it.
		back := v5PahoConnect(t, b.Addr, v5PahoSession("m1", false, 60))
		if !back.Connack.SessionPresent {
			t.Fatalf("m1's session is gone")
		}
		back.none(shrQuiet)
	})
	t.Run("3.1.1 member disconnects", func(t *testing.T) {
		t.Parallel()
		b := nodetest.Start(t, node.DefaultConfig())
		m1 := nodetest.Connect(t, b.Addr, proto.V311, "m1")
		m1.Subscribe(1, 1, "$share/g/r")
		m2 := nodetest.Connect(t, b.Addr, proto.V311, "m2")
		m2.Subscribe(1, 1, "$share/g/r")
		pub := nodetest.Connect(t, b.Addr, proto.V311, "pub")
		for i := range 6 {
			pub.Publish(&proto.Publish{Topic: "r", QoS: 1, PacketID: uint16(i + 1), Payload: []byte(strconv.Itoa(i))})
		}
		for range 3 {
			nodetest.Expect[*proto.Publish](m1) // not acknowledged
		}
		m1.Disconnect()
		got := shrRaw(t, m2, "m2").drain()
		slices.Sort(got)
		if want := []string{"0", "1", "2", "3", "4", "5"}; !slices.Equal(got, want) {
			t.Fatalf("remaining member got %v, want %v", got, want)
		}
		// From now on everything goes to the member left.
		pub.Publish(&proto.Publish{Topic: "r", QoS: 1, PacketID: 7, Payload: []byte("after")})
		m2.ExpectPublish("r", "after")
	})
}

// TestShrQoS2SentStaysWithItsMember: a QoS 2 message of a shared subscription that
// was sent to a member and not yet acknowledged (no PUBREC) stays with that member
// when it drops: the other member does not get it, and the member gets it again,
// with DUP, when it reconnects [MQTT-4.8.2-4] [MQTT-4.8.2-5]. It used to go to the
// other member too, so the group received it twice.
func TestShrQoS2SentStaysWithItsMember(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, node.DefaultConfig())
	m1, _ := lcAccepted(t, b.Addr, proto.V5, lcResumable(proto.V5, "m1"))
	m1.Subscribe(1, 2, "$share/g/q2")
	m2, _ := lcAccepted(t, b.Addr, proto.V5, lcResumable(proto.V5, "m2"))
	m2.Subscribe(1, 2, "$share/g/q2")
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "q2", QoS: 2, PacketID: 1, Payload: []byte("once")})

	first, other, firstID := m1, m2, "m1"
	p, err := m1.RecvWithin(lcQuiet)
	if err != nil {
		first, other, firstID = m2, m1, "m2"
		p = nodetest.Expect[*proto.Publish](m2)
	}
	got, ok := p.(*proto.Publish)
	if !ok || got.QoS != 2 {
		t.Fatalf("%s got %s, want the QoS 2 PUBLISH", firstID, nodetest.String(p))
	}
	first.Conn.Close() // before its PUBREC
	lcAwaitConnected(t, b, 2)
	other.ExpectNothing(lcQuiet)

	back, ack := lcAccepted(t, b.Addr, proto.V5, lcResumable(proto.V5, firstID))
	if !ack.SessionPresent {
		t.Fatalf("%s's session is gone", firstID)
	}
	again := nodetest.Expect[*proto.Publish](back)
	if again.PacketID != got.PacketID || !again.Dup || string(again.Payload) != "once" {
		t.Fatalf("%s got %s on reconnect, want packet id %d again with DUP", firstID, nodetest.String(again), got.PacketID)
	}
}
