package node_test

import (
	"slices"
	"testing"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// TestRetainedStore publishes a sequence of messages to one topic, then checks what
// the store holds (RetainedCount) and what a new subscriber gets.
func TestRetainedStore(t *testing.T) {
	t.Parallel()
	type pub struct {
		payload string
		retain  bool
	}
	cases := []struct {
		name      string
		pubs      []pub
		wantCount int
		want      []string // retained payloads a new subscriber gets
	}{
		// [MQTT-3.3.1-5] a retained message is stored and sent to future subscribers.
		{"store", []pub{{"v1", true}}, 1, []string{"v1"}},
		// [MQTT-3.3.1-5] it replaces the topic's previous retained message.
		{"replace", []pub{{"v1", true}, {"v2", true}}, 1, []string{"v2"}},
		// [MQTT-3.3.1-10] an empty retained payload removes the retained message.
		{"clear with empty payload", []pub{{"v1", true}, {"", true}}, 0, nil},
		// [MQTT-3.3.1-11] a zero-byte retained message is never stored.
		{"empty payload on a topic without one", []pub{{"", true}}, 0, nil},
		// [MQTT-3.3.1-12] a message without RETAIN neither stores nor replaces.
		{"non-retained publish keeps the stored one", []pub{{"v1", true}, {"v2", false}}, 1, []string{"v1"}},
		{"store again after a clear", []pub{{"v1", true}, {"", true}, {"v3", true}}, 1, []string{"v3"}},
	}
	for _, v := range itVersions {
		for _, tc := range cases {
			t.Run(v.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				b := nodetest.Start(t, node.DefaultConfig())
				p := nodetest.Connect(t, b.Addr, v, "pub")
				for i, m := range tc.pubs {
					// QoS 1: the PUBACK comes after the retained store was updated.
					p.Publish(&proto.Publish{Topic: "r/t", QoS: 1, PacketID: uint16(i + 1), Retain: m.retain, Payload: []byte(m.payload)})
				}
				if n := b.RetainedCount(); n != tc.wantCount {
					t.Errorf("RetainedCount = %d, want %d", n, tc.wantCount)
				}
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				sub.Subscribe(1, 1, "r/t")
				got := itDrain(t, sub)
				if !slices.Equal(itPayloads(got), tc.want) {
					t.Fatalf("new subscriber got %q, want %q", itPayloads(got), tc.want)
				}
				for _, m := range got {
					if !m.Retain { // [MQTT-3.3.1-8]
						t.Errorf("retained message %q sent with RETAIN 0", m.Payload)
					}
				}
			})
		}
	}
}

// TestRetainedClearReachesSubscribers: the empty retained PUBLISH that clears a topic
// is still delivered to its current subscribers as a normal message [MQTT-3.3.1-10].
func TestRetainedClearReachesSubscribers(t *testing.T) {
	t.Parallel()
	for _, v := range itVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			p := nodetest.Connect(t, b.Addr, v, "pub")
			p.Publish(&proto.Publish{Topic: "r/t", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("v1")})
			sub := nodetest.Connect(t, b.Addr, v, "sub")
			sub.Subscribe(1, 1, "r/t")
			sub.ExpectPublish("r/t", "v1")
			p.Publish(&proto.Publish{Topic: "r/t", QoS: 1, PacketID: 2, Retain: true})
			if got := sub.ExpectPublish("r/t", ""); got.Retain {
				t.Errorf("live message delivered with RETAIN 1, want 0 [MQTT-3.3.1-9]")
			}
			if n := b.RetainedCount(); n != 0 {
				t.Errorf("RetainedCount = %d, want 0", n)
			}
		})
	}
}

// TestRetainedOnSubscribe: a new subscription gets every retained message its filter
// matches, with RETAIN 1 [MQTT-3.3.1-6] [MQTT-3.3.1-8], and nothing else; messages
// published after the subscription reach it with RETAIN 0 [MQTT-3.3.1-9].
func TestRetainedOnSubscribe(t *testing.T) {
	t.Parallel()
	retained := []string{"r/1", "r/2", "r/x/3", "r", "other/1", "$sys/r/1"}
	cases := []struct {
		filter string
		want   []string
	}{
		{"r/#", []string{"r", "r/1", "r/2", "r/x/3"}}, // # matches the parent level too
		{"r/+", []string{"r/1", "r/2"}},
		{"+/1", []string{"other/1", "r/1"}},
		{"#", []string{"other/1", "r", "r/1", "r/2", "r/x/3"}}, // not $sys/r/1 [MQTT-4.7.2-1]
		{"$sys/#", []string{"$sys/r/1"}},
		{"r/x/3", []string{"r/x/3"}},
		{"none/#", nil},
	}
	for _, v := range itVersions {
		for _, tc := range cases {
			t.Run(v.String()+"/"+tc.filter, func(t *testing.T) {
				t.Parallel()
				b := nodetest.Start(t, node.DefaultConfig())
				p := nodetest.Connect(t, b.Addr, v, "pub")
				for i, topic := range retained {
					p.Publish(&proto.Publish{Topic: topic, QoS: 1, PacketID: uint16(i + 1), Retain: true, Payload: []byte(topic)})
				}
				if n := b.RetainedCount(); n != len(retained) {
					t.Fatalf("RetainedCount = %d, want %d", n, len(retained))
				}
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				sub.Subscribe(1, 0, tc.filter)
				got := itDrain(t, sub)
				var topics []string
				for _, m := range got {
					topics = append(topics, m.Topic)
					if !m.Retain || string(m.Payload) != m.Topic {
						t.Errorf("got %s %q retain %v, want the retained message with RETAIN 1", m.Topic, m.Payload, m.Retain)
					}
				}
				slices.Sort(topics) // the order of retained messages is not specified
				if !slices.Equal(topics, tc.want) {
					t.Fatalf("got retained %q, want %q", topics, tc.want)
				}
				if len(tc.want) == 0 {
					return
				}
				// A live retained publish to an existing subscription: RETAIN 0.
				p.Publish(&proto.Publish{Topic: tc.want[0], QoS: 1, PacketID: 99, Retain: true, Payload: []byte("live")})
				if m := sub.ExpectPublish(tc.want[0], "live"); m.Retain {
					t.Errorf("live message to an existing subscription has RETAIN 1 [MQTT-3.3.1-9]")
				}
			})
		}
	}
}

// TestRetainedQoS: a retained message is sent to a new subscription at the lower of
// the QoS it was published with and the QoS granted [MQTT-3.8.4-6] (5.0 [MQTT-3.8.4-8]).
func TestRetainedQoS(t *testing.T) {
	t.Parallel()
	cases := []struct {
		stored, granted, want byte
	}{
		{2, 1, 1},
		{1, 2, 1},
		{0, 2, 0},
		{2, 2, 2},
		{2, 0, 0},
	}
	for _, v := range itVersions {
		for _, tc := range cases {
			name := v.String() + "/stored " + string('0'+tc.stored) + " granted " + string('0'+tc.granted)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := nodetest.Start(t, node.DefaultConfig())
				p := nodetest.Connect(t, b.Addr, v, "pub")
				p.Publish(&proto.Publish{Topic: "r/q", QoS: tc.stored, PacketID: 1, Retain: true, Payload: []byte("m")})
				nodetest.Eventually(t, "the retained message", func() bool { return b.RetainedCount() == 1 })
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				if codes := sub.Subscribe(1, tc.granted, "r/q"); codes[0] != proto.ReasonCode(tc.granted) {
					t.Fatalf("granted %v, want %d", codes, tc.granted)
				}
				got := itCollect(t, sub, 1)[0]
				if got.QoS != tc.want || !got.Retain {
					t.Fatalf("retained message sent at QoS %d retain %v, want QoS %d retain true", got.QoS, got.Retain, tc.want)
				}
				sub.ExpectNothing(itQuiet)
			})
		}
	}
}

// TestRetainAsPublished (5.0): with Retain As Published set, live messages keep the
// RETAIN flag they were published with [MQTT-3.3.1-13]; without it they have RETAIN
// 0 [MQTT-3.3.1-12] (5.0 numbering).
func TestRetainAsPublished(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		rap    bool
		retain bool
		want   bool
	}{
		{"set, retained publish", true, true, true},
		{"set, plain publish", true, false, false},
		{"unset, retained publish", false, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
			itSubscribe(t, sub, &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{
				{Filter: "rap/t", QoS: 1, RetainAsPublished: tc.rap},
			}})
			p := nodetest.Connect(t, b.Addr, proto.V5, "pub")
			p.Publish(&proto.Publish{Topic: "rap/t", QoS: 1, PacketID: 1, Retain: tc.retain, Payload: []byte("m")})
			if got := sub.ExpectPublish("rap/t", "m"); got.Retain != tc.want {
				t.Fatalf("delivered with RETAIN %v, want %v", got.Retain, tc.want)
			}
		})
	}
}

// TestRetainHandling (5.0): Retain Handling 0 sends the retained messages at every
// subscribe [MQTT-3.3.1-9], 1 only when the subscription did not exist
// [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11] (5.0 numbering).
func TestRetainHandling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		handling      byte
		first, second int // retained messages sent at the first and second SUBSCRIBE
	}{
		{0, 1, 1},
		{1, 1, 0},
		{2, 0, 0},
	}
	for _, tc := range cases {
		t.Run("handling "+string('0'+tc.handling), func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			p := nodetest.Connect(t, b.Addr, proto.V5, "pub")
			p.Publish(&proto.Publish{Topic: "rh/t", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("kept")})
			sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
			for i, want := range []int{tc.first, tc.second} {
				itSubscribe(t, sub, &proto.Subscribe{PacketID: uint16(i + 1), Subscriptions: []proto.Subscription{
					{Filter: "rh/#", QoS: 1, RetainHandling: tc.handling},
				}})
				if got := itDrain(t, sub); len(got) != want {
					t.Fatalf("SUBSCRIBE %d: got %d retained messages, want %d", i+1, len(got), want)
				}
			}
			// The subscription itself works whatever the handling.
			p.Publish(&proto.Publish{Topic: "rh/t", QoS: 1, PacketID: 2, Payload: []byte("live")})
			sub.ExpectPublish("rh/t", "live")
		})
	}
}
