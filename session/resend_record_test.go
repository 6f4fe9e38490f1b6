package session_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// TestResentPubrelWaitsForItsRecord: the PUBREL that Attach sends again on a new
// connection carries the ticket of the PUBREC's record, as the first one did: sent
// before that record is on disk, a crash would bring the message back unreleased
// and resend it after the client completed the exchange [MQTT-4.3.3-6]. It used to
// carry none.
func TestResentPubrelWaitsForItsRecord(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "s.db"))
	s := session.New("c", session.DefaultConfig())
	s.SetExpiry(3600)
	s.Persist(st)
	first := &storeOutbox{}
	s.Attach(first, 0, t0)
	s.Deliver(session.Delivery{Msg: &session.Message{Topic: "a", Payload: []byte("x"), QoS: 2}, QoS: 2}, t0)
	storeWait(t, st, s.Ticket())
	p := first.take()[0]

	end := st.Group() // no commit meanwhile: the PUBREC's record is not on disk yet
	if err := s.Pubrec(p.PacketID, proto.Success, t0); err != nil {
		t.Fatal(err)
	}
	released := s.Ticket()
	s.Detach(first, t0) // the connection drops before its PUBREL
	second := &storeOutbox{}
	s.Attach(second, 0, t0)
	end()
	var rel *session.Outgoing
	for _, o := range second.take() {
		if o.Release {
			rel = &o
		}
	}
	if rel == nil {
		t.Fatal("no PUBREL sent again")
	}
	if rel.Ticket < released {
		t.Fatalf("PUBREL %d sent again with ticket %d, before its record (ticket %d) is on disk", rel.PacketID, rel.Ticket, released)
	}
}

// TestDropOldestKeepsSentAfterRestart: after a restart, the QoS 2 messages that
// were sent (the client holds them, awaiting PUBREL) are queued again; a full queue
// with DropOldest drops the oldest message not yet sent, not them
// [MQTT-4.4.0-1]. The first of them used to be dropped.
func TestDropOldestKeepsSentAfterRestart(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "s.db"))
	c := session.Config{MaxInflight: 10, MaxQueued: 2, DropOldest: true}
	s := session.New("c", c)
	s.SetExpiry(3600)
	s.Persist(st)
	out := &storeOutbox{}
	s.Attach(out, 0, t0)
	s.Deliver(session.Delivery{Msg: &session.Message{Topic: "a", Payload: []byte("1"), QoS: 2}, QoS: 2}, t0)
	s.Deliver(session.Delivery{Msg: &session.Message{Topic: "a", Payload: []byte("2"), QoS: 2}, QoS: 2}, t0)
	sent := out.take()
	storeWait(t, st, s.Ticket())
	st = storeReopen(t, st)

	restored := storeLoad(t, st, c, t0)[0].Session
	// Offline: a third message with the queue full of the two sent ones.
	restored.Deliver(session.Delivery{Msg: &session.Message{Topic: "a", Payload: []byte("3"), QoS: 2}, QoS: 2}, t0)
	again := &storeOutbox{}
	restored.Attach(again, 0, t0)
	got := again.take()
	if len(got) < 2 || got[0].PacketID != sent[0].PacketID || got[1].PacketID != sent[1].PacketID || !got[0].Dup {
		var ids []uint16
		for _, o := range got {
			ids = append(ids, o.PacketID)
		}
		t.Fatalf("after the restart sent %v, want ids %d and %d again (with DUP) first", ids, sent[0].PacketID, sent[1].PacketID)
	}
}

// TestExpiringSentRecordBeforeSend: an expiring QoS 2 message goes out only once
// the record that it was sent is on disk (its PUBLISH waits for that ticket), so a
// broker restarted past the expiry still holds it, to resend it to the client that
// has it [MQTT-4.3.3-7]. The PUBLISH used to wait only for the message's first
// record: a crash before the sent record reached the disk dropped it on restore as
// expired and never sent.
func TestExpiringSentRecordBeforeSend(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "s.db"))
	s := session.New("c", session.DefaultConfig())
	s.SetExpiry(3600)
	s.Persist(st)
	m := &session.Message{Topic: "a", Payload: []byte("x"), QoS: 2, Expires: t0.Add(10 * time.Second)}
	s.Deliver(session.Delivery{Msg: m, QoS: 2}, t0) // offline: queued
	storeWait(t, st, s.Ticket())

	out := &storeOutbox{}
	s.Attach(out, 0, t0)
	p := out.take()[0]
	if sent := s.Ticket(); p.Ticket < sent {
		t.Fatalf("the PUBLISH waits for ticket %d, not for the record that it was sent (%d)", p.Ticket, sent)
	}
	storeWait(t, st, p.Ticket) // the PUBLISH goes out now
	later := storeLoad(t, storeReopen(t, st), session.DefaultConfig(), t0.Add(time.Hour))
	if in, q, _ := later[0].Session.Counts(); in+q != 1 {
		t.Fatalf("restored past its expiry, the session holds %d messages, want the sent one", in+q)
	}
}
