package cluster

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/session"
)

// countingLocal is a Local that counts deliveries by payload. The methods these
// tests never reach are the nil embedded Local's (calling one panics).
type countingLocal struct {
	Local
	got    map[string]int
	ticket uint64
}

func (l *countingLocal) DeliverRemote(m *session.Message, _ []string) (uint64, <-chan error) {
	l.got[string(m.Payload)]++
	l.ticket++
	return l.ticket, nil
}
func (l *countingLocal) WaitDurable(context.Context, uint64) error { return nil }

// delivery builds a delivery of payload, from the spool (seq) or a sent batch.
func delivery(t *testing.T, payload string, seq uint64, sentFrom string, sentBatch uint64) *peerpb.Delivery {
	t.Helper()
	data, err := session.MarshalMessage(&session.Message{Topic: "t", Payload: []byte(payload), QoS: 2})
	if err != nil {
		t.Fatal(err)
	}
	return &peerpb.Delivery{Message: data, Deliver: true, SpoolSeq: seq, SentFrom: sentFrom, SentBatch: sentBatch}
}

// TestReceiverSkipsApplied: what a sender sends again is applied once, so QoS 2
// stays exactly once: a batch resent after a reconnect, spool records resent by
// the sender after it restarted (a new incarnation, the same spool), and the
// spooled copy of a batch the receiver had applied before the sender timed out. A
// new spool (a new data file) starts its seqs again and is applied.
func TestReceiverSkipsApplied(t *testing.T) {
	local := &countingLocal{got: map[string]int{}}
	s := &server{c: &Cluster{local: local, applied: newAppliedBatches()}}
	ctx := context.Background()
	apply := func(b *peerpb.ForwardBatch) {
		t.Helper()
		if !s.c.applied.enter(b.From, b.Stream) {
			t.Fatalf("batch %d of %s stream %d refused", b.Id, b.From, b.Stream)
		}
		if ack := s.apply(ctx, b); ack.Error != "" || ack.Id != b.Id {
			t.Fatalf("ack %+v", ack)
		}
	}
	// A batch, and the same batch again on the sender's next stream.
	b := &peerpb.ForwardBatch{Id: 1, From: "n1#a", Stream: 1, Deliveries: []*peerpb.Delivery{delivery(t, "m1", 0, "", 0)}}
	apply(b)
	b.Stream = 2
	apply(b)
	// The next batch timed out at the sender: its spooled copy names it.
	apply(&peerpb.ForwardBatch{Id: 2, From: "n1#a", Stream: 2, Deliveries: []*peerpb.Delivery{delivery(t, "m2", 0, "", 0)}})
	apply(&peerpb.ForwardBatch{Id: 3, From: "n1#a", Stream: 3, SpoolId: "s1", Deliveries: []*peerpb.Delivery{
		delivery(t, "m2", 1, "n1#a", 2), delivery(t, "m3", 2, "", 0)}})
	// The sender restarts before the acknowledgement: same spool, new incarnation.
	apply(&peerpb.ForwardBatch{Id: 1, From: "n1#b", Stream: 1, SpoolId: "s1", Deliveries: []*peerpb.Delivery{
		delivery(t, "m2", 1, "n1#a", 2), delivery(t, "m3", 2, "", 0), delivery(t, "m4", 3, "", 0)}})
	// Its data file was replaced: seqs start again.
	apply(&peerpb.ForwardBatch{Id: 1, From: "n1#c", Stream: 1, SpoolId: "s2", Deliveries: []*peerpb.Delivery{delivery(t, "m5", 1, "", 0)}})
	for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
		if local.got[m] != 1 {
			t.Errorf("%s delivered %d times, want once (all: %v)", m, local.got[m], local.got)
		}
	}
	if s.c.applied.enter("n1#a", 1) {
		t.Error("a batch of stream 1 was admitted after stream 3 of the same run")
	}
}

// TestReceiverSkipsAppliedAfterRestart: what this node applied is on disk with
// the deliveries, so after a restart it still skips a batch (or spool record) the
// sender sends again because the acknowledgement was lost in the crash.
func TestReceiverSkipsAppliedAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st, err := session.OpenStore(path, session.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	local := &countingLocal{got: map[string]int{}}
	ctx := context.Background()
	run := func(s *server, b *peerpb.ForwardBatch) {
		t.Helper()
		if !s.c.applied.enter(b.From, b.Stream) {
			t.Fatalf("batch %d of %s refused", b.Id, b.From)
		}
		if ack := s.apply(ctx, b); ack.Error != "" {
			t.Fatalf("ack %+v", ack)
		}
	}
	before := &server{c: &Cluster{local: local, applied: newAppliedBatches(), cfg: Config{Store: st}}}
	memory := &peerpb.ForwardBatch{Id: 7, From: "n1#a", Stream: 1, Deliveries: []*peerpb.Delivery{delivery(t, "m1", 0, "", 0)}}
	spooled := &peerpb.ForwardBatch{Id: 1, From: "n2#a", Stream: 1, SpoolId: "s1", Deliveries: []*peerpb.Delivery{delivery(t, "m2", 4, "", 0)}}
	run(before, memory)
	run(before, spooled)
	if err := st.Close(); err != nil { // the crash: what was enqueued is on disk
		t.Fatal(err)
	}

	st, err = session.OpenStore(path, session.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	marks, err := st.LoadApplied()
	if err != nil {
		t.Fatal(err)
	}
	applied := newAppliedBatches()
	if err := applied.loadMarks(marks); err != nil {
		t.Fatal(err)
	}
	after := &server{c: &Cluster{local: local, applied: applied, cfg: Config{Store: st}}}
	run(after, memory) // the same run of n1 resends its unacknowledged batch
	spooled.From, spooled.Id = "n2#b", 1
	run(after, spooled) // n2 restarted too: from its spool
	run(after, &peerpb.ForwardBatch{Id: 8, From: "n1#a", Stream: 2, Deliveries: []*peerpb.Delivery{delivery(t, "m3", 0, "", 0)}})
	for _, m := range []string{"m1", "m2", "m3"} {
		if local.got[m] != 1 {
			t.Errorf("%s delivered %d times, want once (all: %v)", m, local.got[m], local.got)
		}
	}
}

// TestAppliedRecordRoundTrip: the mark decodes as written, and damage is an error.
func TestAppliedRecordRoundTrip(t *testing.T) {
	r := appliedRecord{from: "n1#x", batch: 9, spoolID: "abc", spoolSeq: 12}
	got, err := decodeAppliedRecord(r.encode())
	if err != nil || got != r {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, r)
	}
	b := r.encode()
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(append([]byte(nil), b...), 0), append([]byte{9}, b[1:]...)} {
		if _, err := decodeAppliedRecord(bad); err == nil {
			t.Errorf("%x decoded without error", bad)
		}
	}
}

// TestReceiverSpoolBatchIDsDoNotSkip: memory batches 10 and 11 were on the wire,
// never applied, and moved to the spool (their records carry SentFrom and
// SentBatch 10 and 11). The spool is drained in two batches, whose ids (20, 21)
// come after 10 and 11. Both records are applied: the id of spool batch 20 used to
// become the sender's mark, so the record of memory batch 11 in spool batch 21
// looked applied and was skipped, an acknowledged message lost.
func TestReceiverSpoolBatchIDsDoNotSkip(t *testing.T) {
	local := &countingLocal{got: map[string]int{}}
	s := &server{c: &Cluster{local: local, applied: newAppliedBatches()}}
	apply := func(b *peerpb.ForwardBatch) {
		t.Helper()
		if !s.c.applied.enter(b.From, b.Stream) {
			t.Fatalf("batch %d refused", b.Id)
		}
		if ack := s.apply(context.Background(), b); ack.Error != "" {
			t.Fatalf("batch %d: %s", b.Id, ack.Error)
		}
	}
	apply(&peerpb.ForwardBatch{Id: 20, From: "n1#a", Stream: 2, SpoolId: "s1", Deliveries: []*peerpb.Delivery{delivery(t, "m1", 1, "n1#a", 10)}})
	apply(&peerpb.ForwardBatch{Id: 21, From: "n1#a", Stream: 2, SpoolId: "s1", Deliveries: []*peerpb.Delivery{delivery(t, "m2", 2, "n1#a", 11)}})
	// A memory batch sent after them is applied once, and skipped when sent again.
	apply(&peerpb.ForwardBatch{Id: 22, From: "n1#a", Stream: 2, Deliveries: []*peerpb.Delivery{delivery(t, "m3", 0, "", 0)}})
	apply(&peerpb.ForwardBatch{Id: 22, From: "n1#a", Stream: 2, Deliveries: []*peerpb.Delivery{delivery(t, "m3", 0, "", 0)}})
	for _, m := range []string{"m1", "m2", "m3"} {
		if local.got[m] != 1 {
			t.Errorf("%s delivered %d times, want once (all: %v)", m, local.got[m], local.got)
		}
	}
}
