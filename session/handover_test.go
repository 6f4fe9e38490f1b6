package session_test

import (
	"slices"
	"testing"

	"github.com/skein-mq/skein/session"
)

func idMsg(topic string, seq uint64) *session.Message {
	m := msg(topic)
	m.ID = session.MessageID{Origin: 7, Seq: seq}
	return m
}

// TestExportAndSeal: what was delivered before the seal is in the export, what
// comes after goes to the relay, in order, and never into the sealed session.
func TestExportAndSeal(t *testing.T) {
	s := session.New("c", cfg(10, 10))
	s.SetExpiry(60)
	deliver(t, s, session.Delivery{Msg: idMsg("before", 1), QoS: 1}, session.NotDropped)
	var relayed []string
	state, err := s.ExportAndSeal(func(d session.Delivery) <-chan error { relayed = append(relayed, d.Msg.Topic); return nil })
	noErr(t, "export and seal", err)
	if !s.Sealed() {
		t.Fatal("not sealed")
	}
	deliver(t, s, session.Delivery{Msg: idMsg("after1", 2), QoS: 1}, session.NotDropped)
	deliver(t, s, session.Delivery{Msg: idMsg("after2", 3), QoS: 0}, session.NotDropped)
	if want := []string{"after1", "after2"}; !slices.Equal(relayed, want) {
		t.Fatalf("relayed %q, want %q", relayed, want)
	}
	wantCounts(t, s, 0, 1, 0) // only "before", queued offline
	moved, err := session.Import("c", cfg(10, 10), state, t0)
	noErr(t, "import", err)
	r := newRecorder()
	moved.Attach(r, 10, t0)
	wantSent(t, r, "before q1 id1")
}

// TestWatchDuplicates: while watching, a message id is delivered once, whether it
// came in the imported state or by another path; messages without an id, and every
// message once watching stops, are delivered as usual.
func TestWatchDuplicates(t *testing.T) {
	old := session.New("c", cfg(10, 10))
	old.SetExpiry(60)
	deliver(t, old, session.Delivery{Msg: idMsg("a", 1), QoS: 1}, session.NotDropped)
	state, err := old.ExportAndSeal(func(session.Delivery) <-chan error { return nil })
	noErr(t, "export", err)
	s, err := session.Import("c", cfg(10, 10), state, t0)
	noErr(t, "import", err)
	s.WatchDuplicates(0)
	r := newRecorder()
	s.Attach(r, 10, t0)
	wantSent(t, r, "a q1 id1")
	deliver(t, s, session.Delivery{Msg: idMsg("a", 1), QoS: 1}, session.NotDropped) // in the import already
	deliver(t, s, session.Delivery{Msg: idMsg("b", 2), QoS: 2}, session.NotDropped)
	deliver(t, s, session.Delivery{Msg: idMsg("b", 2), QoS: 2}, session.NotDropped) // relayed copy
	deliver(t, s, session.Delivery{Msg: idMsg("z", 3), QoS: 0}, session.NotDropped)
	deliver(t, s, session.Delivery{Msg: idMsg("z", 3), QoS: 0}, session.NotDropped)
	deliver(t, s, dlv("noid", 0), session.NotDropped)
	deliver(t, s, dlv("noid", 0), session.NotDropped)
	wantSent(t, r, "b q2 id2", "z q0", "noid q0", "noid q0")
	s.StopWatchingDuplicates()
	deliver(t, s, session.Delivery{Msg: idMsg("z", 3), QoS: 0}, session.NotDropped)
	wantSent(t, r, "z q0")
}

// TestWatchDuplicatesBound: the window remembers the newest ids only.
func TestWatchDuplicatesBound(t *testing.T) {
	s := session.New("c", cfg(10, 10))
	s.WatchDuplicates(2)
	r := newRecorder()
	s.Attach(r, 10, t0)
	for seq := uint64(1); seq <= 3; seq++ {
		deliver(t, s, session.Delivery{Msg: idMsg("m", seq), QoS: 0}, session.NotDropped)
	}
	r.take()
	deliver(t, s, session.Delivery{Msg: idMsg("m", 3), QoS: 0}, session.NotDropped) // remembered
	deliver(t, s, session.Delivery{Msg: idMsg("m", 1), QoS: 0}, session.NotDropped) // forgotten
	wantSent(t, r, "m q0")
}

// TestMessageIDRecord: the id travels in the message record, and a record written
// before ids existed still decodes, without one.
func TestMessageIDRecord(t *testing.T) {
	m := idMsg("t", 42)
	m.Stamp = 99
	b, err := session.MarshalMessage(m)
	noErr(t, "marshal", err)
	got, err := session.UnmarshalMessage(b)
	noErr(t, "unmarshal", err)
	if got.ID != m.ID || got.Stamp != 99 {
		t.Fatalf("decoded id %+v stamp %d, want %+v 99", got.ID, got.Stamp, m.ID)
	}
	old, err := session.UnmarshalMessage(b[:len(b)-16]) // the record as the release before ids wrote it
	noErr(t, "unmarshal an old record", err)
	if !old.ID.IsZero() || old.Stamp != 99 || old.Topic != "t" {
		t.Fatalf("old record decoded as %+v", old)
	}
}
