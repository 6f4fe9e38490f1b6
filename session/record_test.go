package session_test

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// These tests check the records on disk through what the package promises: a session
// (or retained message) written, the store closed and opened again, and what comes
// back. Every record type is covered: session meta (expiry, disconnect time),
// subscriptions with their options, queued, inflight and released deliveries with
// their messages and properties, and incoming QoS 2 packet ids.

// storeT0 is the fixed "now" handed to the session: expiry is checked against the
// times passed in, so these tests do not depend on the clock.
var storeT0 = time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)

// storeRichMessage is a message with every field a record must carry.
func storeRichMessage(topic string) *session.Message {
	m := &session.Message{
		Topic:   topic,
		Payload: []byte("payload of " + topic + "\x00\xff"),
		QoS:     2,
		Retain:  true,
		From:    "publisher-" + topic,
		Expires: storeT0.Add(time.Hour),
	}
	m.Props.PayloadFormat = 1
	m.Props.Set(proto.PropPayloadFormat)
	m.Props.ContentType = "text/plain"
	m.Props.Set(proto.PropContentType)
	m.Props.ResponseTopic = "reply/" + topic
	m.Props.Set(proto.PropResponseTopic)
	m.Props.CorrelationData = []byte{0, 1, 2, 0xfe}
	m.Props.Set(proto.PropCorrelationData)
	m.Props.User = []proto.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}, {Key: "", Value: ""}}
	return m
}

// storeDelivery is a plain QoS qos delivery of a message on topic.
func storeDelivery(topic string, qos byte) session.Delivery {
	return session.Delivery{Msg: &session.Message{Topic: topic, Payload: []byte("p-" + topic), QoS: qos}, QoS: qos}
}

// storeSameMessage reports how two messages differ, "" when they do not.
func storeSameMessage(got, want *session.Message) string {
	switch {
	case got == nil || want == nil:
		if got != want {
			return fmt.Sprintf("message %v, want %v", got, want)
		}
	case got.Topic != want.Topic:
		return fmt.Sprintf("topic %q, want %q", got.Topic, want.Topic)
	case !bytes.Equal(got.Payload, want.Payload):
		return fmt.Sprintf("%s: payload %q, want %q", want.Topic, got.Payload, want.Payload)
	case got.QoS != want.QoS || got.Retain != want.Retain:
		return fmt.Sprintf("%s: published qos %d retain %v, want %d %v", want.Topic, got.QoS, got.Retain, want.QoS, want.Retain)
	case got.From != want.From:
		return fmt.Sprintf("%s: from %q, want %q", want.Topic, got.From, want.From)
	case !got.Expires.Equal(want.Expires):
		return fmt.Sprintf("%s: expires %v, want %v", want.Topic, got.Expires, want.Expires)
	case !reflect.DeepEqual(got.Props, want.Props):
		return fmt.Sprintf("%s: props %+v, want %+v", want.Topic, got.Props, want.Props)
	}
	return ""
}

// storeCheckResent compares what a restored session pushed on Attach with what the
// original session had pending. PUBRELs must come in the order of their PUBRECs and
// PUBLISHes in their original order [MQTT-4.6.0-1] [MQTT-4.6.0-3]; how the two kinds
// interleave is not specified, so they are compared separately.
func storeCheckResent(t *testing.T, got, want []session.Outgoing) {
	t.Helper()
	split := func(os []session.Outgoing) (rel, pub []session.Outgoing) {
		for _, o := range os {
			if o.Release {
				rel = append(rel, o)
			} else {
				pub = append(pub, o)
			}
		}
		return rel, pub
	}
	gotRel, gotPub := split(got)
	wantRel, wantPub := split(want)
	if len(gotRel) != len(wantRel) || len(gotPub) != len(wantPub) {
		t.Fatalf("resent %s, want %s", storeDescribeAll(got), storeDescribeAll(want))
	}
	for i := range wantRel {
		if g, w := gotRel[i], wantRel[i]; g.PacketID != w.PacketID || g.Msg != nil {
			t.Errorf("PUBREL %d: %s, want %s", i, storeDescribe(g), storeDescribe(w))
		}
	}
	for i := range wantPub {
		g, w := gotPub[i], wantPub[i]
		if g.PacketID != w.PacketID || g.QoS != w.QoS || g.Dup != w.Dup || g.Retain != w.Retain || !slices.Equal(g.SubIDs, w.SubIDs) {
			t.Errorf("PUBLISH %d: %s, want %s", i, storeDescribe(g), storeDescribe(w))
			continue
		}
		if d := storeSameMessage(g.Msg, w.Msg); d != "" {
			t.Errorf("PUBLISH %d: %s", i, d)
		}
	}
}

// storeDescribe renders an Outgoing: "a/1 q1 id1 dup retain sub[7]", "rel id2".
func storeDescribe(o session.Outgoing) string {
	if o.Release {
		return fmt.Sprintf("rel id%d", o.PacketID)
	}
	if o.Msg == nil {
		return fmt.Sprintf("<no message> q%d id%d", o.QoS, o.PacketID)
	}
	s := fmt.Sprintf("%s q%d id%d", o.Msg.Topic, o.QoS, o.PacketID)
	if o.Dup {
		s += " dup"
	}
	if o.Retain {
		s += " retain"
	}
	if len(o.SubIDs) > 0 {
		s += fmt.Sprintf(" sub%v", o.SubIDs)
	}
	return s
}

func storeDescribeAll(os []session.Outgoing) string {
	var parts []string
	for _, o := range os {
		parts = append(parts, storeDescribe(o))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func storeSortedSubs(s *session.Session) []session.Subscription {
	subs := s.Subscriptions()
	slices.SortFunc(subs, func(a, b session.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	return subs
}

func TestStoreSessionRoundTrip(t *testing.T) {
	// "persist first" writes every change through; "persist last" makes a session
	// that already has state persistent (a 5.0 client raising its expiry on a
	// takeover): Persist must write all of it.
	for _, persistFirst := range []bool{true, false} {
		name := map[bool]string{true: "persist first", false: "persist last"}[persistFirst]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "skein.db")
			st := storeOpen(t, path)
			s := session.New("c1", session.Config{MaxInflight: 2, MaxQueued: 100})
			if persistFirst {
				s.Persist(st)
			}
			s.SetExpiry(600)
			subs := []session.Subscription{
				{Subscription: proto.Subscription{Filter: "a/#", QoS: 2}},
				{Subscription: proto.Subscription{Filter: "b/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}, ID: 7},
				{Subscription: proto.Subscription{Filter: "$share/g/c", QoS: 0, RetainHandling: 1}, ID: 268435455},
				{Subscription: proto.Subscription{Filter: "gone", QoS: 1}},
			}
			for _, sub := range subs {
				s.Subscribe(sub)
			}
			s.Unsubscribe("gone")
			subs = subs[:3]

			out := &storeOutbox{}
			s.Attach(out, 0, storeT0)
			s.Deliver(storeDelivery("a/1", 2), storeT0) // inflight id1, released below
			m2 := storeRichMessage("a/2")
			s.Deliver(session.Delivery{Msg: m2, QoS: 1, Retain: true, SubIDs: []int{7, 9}}, storeT0) // inflight id2
			d3 := storeDelivery("a/3", 2)
			s.Deliver(d3, storeT0) // queued behind the window: id3
			d4 := storeDelivery("a/4", 1)
			d4.Msg.Expires = storeT0.Add(time.Hour)
			s.Deliver(d4, storeT0) // queued: id4
			if err := s.Pubrec(1, proto.Success, storeT0); err != nil {
				t.Fatalf("Pubrec(1): %v", err)
			}
			if got := storeDescribeAll(out.take()); got != "[a/1 q2 id1, a/2 q1 id2 retain sub[7 9]]" {
				t.Fatalf("first connection got %s", got)
			}
			detachedAt := storeT0.Add(time.Minute)
			s.Detach(out, detachedAt)
			d5 := storeDelivery("a/5", 1)
			s.Deliver(d5, detachedAt)                       // queued while offline: id5
			s.Deliver(storeDelivery("a/q0", 0), detachedAt) // QoS 0 offline: dropped, never stored
			for _, id := range []uint16{9, 10, 65535} {
				if isNew, err := s.ReceiveQoS2(id, 0); !isNew || err != nil {
					t.Fatalf("ReceiveQoS2(%d) = %v, %v", id, isNew, err)
				}
			}
			s.Release(10)
			persistedAt := time.Now()
			if !persistFirst {
				s.Persist(st)
			}
			storeWait(t, st, s.Ticket())

			st = storeReopen(t, st)
			loadAt := storeT0.Add(2 * time.Minute)
			restored := storeLoad(t, st, session.Config{MaxInflight: 10, MaxQueued: 100}, loadAt)
			if len(restored) != 1 || restored[0].Session.ClientID != "c1" {
				t.Fatalf("LoadSessions = %d sessions, want c1 only", len(restored))
			}
			r := restored[0]
			rs := r.Session
			if persistFirst && !r.DisconnectedAt.Equal(detachedAt) {
				t.Errorf("DisconnectedAt = %v, want the Detach time %v", r.DisconnectedAt, detachedAt)
			}
			if !persistFirst && (r.DisconnectedAt.Before(persistedAt.Add(-time.Second)) || r.DisconnectedAt.After(time.Now())) {
				t.Errorf("DisconnectedAt = %v, want about %v (Persist of an offline session)", r.DisconnectedAt, persistedAt)
			}
			if got := rs.Expiry(); got != 600 {
				t.Errorf("Expiry() = %d, want 600", got)
			}
			if !rs.Persistent() {
				t.Error("restored session does not write through to the store")
			}
			if got := storeSortedSubs(rs); !reflect.DeepEqual(got, storeSortedSubsOf(subs)) {
				t.Errorf("subscriptions = %+v, want %+v", got, storeSortedSubsOf(subs))
			}
			if inflight, queued, _ := rs.Counts(); inflight+queued != 5 {
				t.Errorf("restored %d inflight + %d queued, want 5 deliveries (a/1 released, a/2 .. a/5)", inflight, queued)
			}

			out2 := &storeOutbox{}
			rs.Attach(out2, 0, loadAt)
			storeCheckResent(t, out2.take(), []session.Outgoing{
				{Release: true, PacketID: 1},
				{Msg: m2, QoS: 1, PacketID: 2, Dup: true, Retain: true, SubIDs: []int{7, 9}},
				{Msg: d3.Msg, QoS: 2, PacketID: 3, Dup: true},
				// Expiring and never sent: the store records sends of expiring
				// messages, so this one is known to be new and carries no DUP.
				{Msg: d4.Msg, QoS: 1, PacketID: 4},
				// Never sent, but whether it was cannot be known after a restart: DUP is
				// harmless, a missing one on a real resend is not [MQTT-3.3.1-1].
				{Msg: d5.Msg, QoS: 1, PacketID: 5, Dup: true},
			})
			// Packet ids go on from the stored sequence numbers.
			rs.Deliver(storeDelivery("a/6", 1), loadAt)
			if got := storeDescribeAll(out2.take()); got != "[a/6 q1 id6]" {
				t.Errorf("next delivery after restore = %s, want [a/6 q1 id6]", got)
			}
			// Incoming QoS 2 ids awaiting PUBREL came back; the released one did not.
			for _, c := range []struct {
				id    uint16
				isNew bool
			}{{9, false}, {65535, false}, {10, true}} {
				if isNew, err := rs.ReceiveQoS2(c.id, 0); isNew != c.isNew || err != nil {
					t.Errorf("ReceiveQoS2(%d) after restore = %v, %v; want %v (a restored id is a duplicate)", c.id, isNew, err, c.isNew)
				}
			}
			// The released QoS 2 delivery completes with PUBCOMP, the others as usual.
			for _, c := range []struct {
				what string
				err  error
			}{
				{"Pubcomp(1)", rs.Pubcomp(1, loadAt)},
				{"Puback(2)", rs.Puback(2, loadAt)},
				{"Pubrec(3)", rs.Pubrec(3, proto.Success, loadAt)},
				{"Pubcomp(3)", rs.Pubcomp(3, loadAt)},
				{"Puback(4)", rs.Puback(4, loadAt)},
				{"Puback(5)", rs.Puback(5, loadAt)},
				{"Puback(6)", rs.Puback(6, loadAt)},
			} {
				if c.err != nil {
					t.Errorf("%s after restore: %v", c.what, c.err)
				}
			}
			storeWait(t, st, rs.Ticket())

			// The completions were written through: a second restart has nothing to send.
			st = storeReopen(t, st)
			restored = storeLoad(t, st, session.Config{MaxInflight: 10, MaxQueued: 100}, loadAt)
			if len(restored) != 1 {
				t.Fatalf("second LoadSessions = %d sessions, want 1", len(restored))
			}
			out3 := &storeOutbox{}
			restored[0].Session.Attach(out3, 0, loadAt)
			if got := out3.take(); len(got) != 0 {
				t.Errorf("after every ack and a restart the session resent %s", storeDescribeAll(got))
			}
		})
	}
}

func TestStoreResendAfterRestoreWithLaterRelease(t *testing.T) {
	// A QoS 1 message is inflight and unacknowledged (id1) when a later QoS 2 message
	// (id2) gets its PUBREC. After a restart the client reconnects: every
	// unacknowledged PUBLISH must be resent at once [MQTT-4.4.0-1], with room in the
	// window for all of them, not held back until the PUBREL exchange of id2 ends.
	st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
	s := session.New("c1", session.Config{MaxInflight: 10, MaxQueued: 100})
	s.SetExpiry(600)
	s.Persist(st)
	out := &storeOutbox{}
	s.Attach(out, 0, storeT0)
	s.Deliver(storeDelivery("a/1", 1), storeT0)
	s.Deliver(storeDelivery("a/2", 2), storeT0)
	if err := s.Pubrec(2, proto.Success, storeT0); err != nil {
		t.Fatal(err)
	}
	s.Detach(out, storeT0)
	storeWait(t, st, s.Ticket())

	// Without a restart, the session resends both.
	out.take()
	s.Attach(out, 0, storeT0)
	if got := storeDescribeAll(out.take()); got != "[a/1 q1 id1 dup, rel id2]" {
		t.Fatalf("reconnect without a restart resent %s", got)
	}

	st = storeReopen(t, st)
	restored := storeLoad(t, st, session.Config{MaxInflight: 10, MaxQueued: 100}, storeT0)
	if len(restored) != 1 {
		t.Fatalf("LoadSessions = %d sessions", len(restored))
	}
	out2 := &storeOutbox{}
	restored[0].Session.Attach(out2, 0, storeT0)
	storeCheckResent(t, out2.take(), []session.Outgoing{
		{Release: true, PacketID: 2},
		{Msg: &session.Message{Topic: "a/1", Payload: []byte("p-a/1"), QoS: 1}, QoS: 1, PacketID: 1, Dup: true},
	})
}

func storeSortedSubsOf(subs []session.Subscription) []session.Subscription {
	subs = slices.Clone(subs)
	slices.SortFunc(subs, func(a, b session.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	return subs
}

func TestStoreConnectedSessionDisconnectTime(t *testing.T) {
	// A session whose client was connected when the broker stopped (a kill -9) has
	// no disconnect time on disk: its expiry counts from the restart.
	st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
	s := session.New("online", session.DefaultConfig())
	s.Persist(st)
	s.SetExpiry(60)
	s.Attach(&storeOutbox{}, 0, storeT0)
	storeWait(t, st, s.Ticket())
	st = storeReopen(t, st)
	loadAt := storeT0.Add(time.Hour)
	restored := storeLoad(t, st, session.DefaultConfig(), loadAt)
	if len(restored) != 1 {
		t.Fatalf("LoadSessions = %d sessions, want 1", len(restored))
	}
	if r := restored[0]; !r.DisconnectedAt.Equal(loadAt) || r.Session.Online() {
		t.Errorf("restored DisconnectedAt = %v, online %v; want the load time %v, offline", r.DisconnectedAt, r.Session.Online(), loadAt)
	}
}

func TestStoreLoadDropsExpiredMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st := storeOpen(t, path)
	s := session.New("c1", session.DefaultConfig())
	s.SetExpiry(3600)
	s.Persist(st)
	short := storeDelivery("short", 1)
	short.Msg.Expires = storeT0.Add(10 * time.Second)
	long := storeDelivery("long", 2)
	long.Msg.Expires = storeT0.Add(time.Hour)
	never := storeDelivery("never", 1)
	shortQoS2 := storeDelivery("short2", 2)
	shortQoS2.Msg.Expires = storeT0.Add(time.Second)
	for _, d := range []session.Delivery{short, long, shortQoS2, never} {
		if r := s.Deliver(d, storeT0); r != session.NotDropped {
			t.Fatalf("Deliver(%s) = %v", d.Msg.Topic, r)
		}
	}
	storeWait(t, st, s.Ticket())

	st = storeReopen(t, st)
	loadAt := storeT0.Add(time.Minute) // "short" expired while the broker was down
	restored := storeLoad(t, st, session.DefaultConfig(), loadAt)
	if len(restored) != 1 {
		t.Fatalf("LoadSessions = %d sessions, want 1", len(restored))
	}
	out := &storeOutbox{}
	restored[0].Session.Attach(out, 0, loadAt)
	// "long" expires and was never sent (recorded), so it goes without DUP; for
	// "never", without expiry, the send is not recorded and DUP is assumed.
	if got, want := storeDescribeAll(out.take()), "[long q2 id2, never q1 id4 dup]"; got != want {
		t.Errorf("after a restart past the expiry, resent %s, want %s", got, want)
	}

	// The expired records were deleted from the file, not only skipped: loading with
	// a clock before their expiry does not bring them back.
	st = storeReopen(t, st)
	restored = storeLoad(t, st, session.DefaultConfig(), storeT0)
	out = &storeOutbox{}
	restored[0].Session.Attach(out, 0, storeT0)
	// The first Attach sent "long", and that send of an expiring message was
	// recorded: now it carries DUP.
	if got, want := storeDescribeAll(out.take()), "[long q2 id2 dup, never q1 id4 dup]"; got != want {
		t.Errorf("second load resent %s, want %s: expired records left on disk", got, want)
	}
}

func TestStoreRetainedSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st := storeOpen(t, path)
	r, err := session.OpenRetained(st, storeT0)
	if err != nil {
		t.Fatalf("OpenRetained on a new store: %v", err)
	}
	if r.Len() != 0 {
		t.Fatalf("new store has %d retained messages", r.Len())
	}
	rich := storeRichMessage("r/rich")
	rich.Expires = time.Time{}
	set := []*session.Message{
		{Topic: "r/replaced", Payload: []byte("v1"), QoS: 1, Retain: true},
		{Topic: "r/cleared", Payload: []byte("x"), QoS: 0, Retain: true},
		{Topic: "r/replaced", Payload: []byte("v2"), QoS: 2, Retain: true},
		{Topic: "r/cleared", Retain: true}, // empty payload clears [MQTT-3.3.1-10]
		{Topic: "r/expiring", Payload: []byte("e"), QoS: 1, Retain: true, Expires: storeT0.Add(time.Second)},
		{Topic: "r/never-set-cleared", Retain: true},
		rich,
	}
	var last uint64
	for _, m := range set {
		ticket, err := r.Set(m)
		if err != nil {
			t.Fatalf("Set(%s): %v", m.Topic, err)
		}
		if ticket == 0 {
			t.Fatalf("Set(%s) returned ticket 0: a retained message on a store must be written", m.Topic)
		}
		last = max(last, ticket)
	}
	storeWait(t, st, last)

	st = storeReopen(t, st)
	r, err = session.OpenRetained(st, storeT0.Add(time.Minute))
	if err != nil {
		t.Fatalf("OpenRetained after reopen: %v", err)
	}
	got := map[string]*session.Message{}
	if err := r.Match("#", func(m *session.Message) bool { got[m.Topic] = m; return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || r.Len() != 2 {
		t.Fatalf("retained after reopen: %v (Len %d), want r/replaced and r/rich", slices.Sorted(maps.Keys(got)), r.Len())
	}
	if d := storeSameMessage(got["r/replaced"], set[2]); d != "" {
		t.Errorf("replaced retained message: %s", d)
	}
	if d := storeSameMessage(got["r/rich"], rich); d != "" {
		t.Errorf("retained message with properties: %s", d)
	}

	// Clearing after a reopen is durable too, and the expired message was deleted at
	// load: an earlier clock does not bring it back.
	ticket, err := r.Set(&session.Message{Topic: "r/rich", Retain: true})
	if err != nil {
		t.Fatal(err)
	}
	storeWait(t, st, ticket)
	st = storeReopen(t, st)
	r, err = session.OpenRetained(st, storeT0)
	if err != nil {
		t.Fatalf("OpenRetained after second reopen: %v", err)
	}
	var topics []string
	_ = r.Match("#", func(m *session.Message) bool { topics = append(topics, m.Topic); return true })
	if !slices.Equal(topics, []string{"r/replaced"}) {
		t.Errorf("retained after clearing r/rich and a reopen: %v, want [r/replaced] (r/expiring deleted at load)", topics)
	}
}
