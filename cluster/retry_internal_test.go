package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/session"
)

// failingOnce fails its first WaitDurable, as a store whose commit failed does.
type failingOnce struct {
	countingLocal
	failed bool
}

func (l *failingOnce) WaitDurable(context.Context, uint64) error {
	if !l.failed {
		l.failed = true
		return errors.New("disk full")
	}
	return nil
}

// TestReceiverFailedBatchNotMarked: a spool batch whose deliveries did not become
// durable is answered with a retryable error and not marked applied, so the same
// records sent again are applied again. It used to be marked applied: the records
// sent again were skipped and acknowledged, and so lost.
func TestReceiverFailedBatchNotMarked(t *testing.T) {
	local := &failingOnce{countingLocal: countingLocal{got: map[string]int{}}}
	s := &server{c: &Cluster{local: local, applied: newAppliedBatches()}}
	first := &peerpb.ForwardBatch{Id: 5, From: "n1#a", Stream: 1, SpoolId: "s1", Deliveries: []*peerpb.Delivery{delivery(t, "m1", 1, "", 0)}}
	s.c.applied.enter(first.From, first.Stream)
	if ack := s.apply(context.Background(), first); !strings.HasPrefix(ack.Error, ackRetry) {
		t.Fatalf("ack of a batch that did not become durable: %q, want a %q error", ack.Error, ackRetry)
	}
	again := &peerpb.ForwardBatch{Id: 6, From: "n1#a", Stream: 2, SpoolId: "s1", Deliveries: []*peerpb.Delivery{delivery(t, "m1", 1, "", 0)}}
	s.c.applied.enter(again.From, again.Stream)
	if ack := s.apply(context.Background(), again); ack.Error != "" {
		t.Fatalf("second ack: %q", ack.Error)
	}
	if local.got["m1"] != 2 {
		t.Fatalf("m1 applied %d times: the record sent again was skipped", local.got["m1"])
	}
}

// TestSenderKeepsRecordsOnRetry: when the peer answers a batch from the spool with
// a retryable error, its records stay in the spool, later acks of the same stream
// delete none, and the stream is ended to send them again; a refusal for good
// deletes them. They used to be deleted on any error.
func TestSenderKeepsRecordsOnRetry(t *testing.T) {
	store, err := session.OpenStore(filepath.Join(t.TempDir(), "skein.db"), session.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sp, err := session.OpenSpool(store, session.DefaultSpoolConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{spool: sp, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	p := &peer{c: c, name: "n2", wake: make(chan struct{}, 1)}
	var last uint64
	for range 3 {
		last, _ = sp.Append("n2", []byte("record"))
	}
	cancelled := false
	p.cancel = func() { cancelled = true }
	p.sent = []sentBatch{{id: 1, fromSpool: true, spoolTo: last - 1, n: 2}, {id: 2, fromSpool: true, spoolTo: last, n: 1}}

	p.acked(&peerpb.ForwardAck{Id: 1, Error: ackRetry + "disk full"})
	p.acked(&peerpb.ForwardAck{Id: 2})
	if d := sp.Depth("n2"); d != 3 {
		t.Fatalf("after a retryable error the spool holds %d records, want all 3", d)
	}
	if !cancelled {
		t.Fatal("the stream was not ended to send the records again")
	}

	// The next stream sends them again; a refusal for good drops them.
	p.retrying = false
	p.sent = []sentBatch{{id: 3, fromSpool: true, spoolTo: last, n: 3}}
	p.acked(&peerpb.ForwardAck{Id: 3, Error: "corrupt message: bad"})
	if d := sp.Depth("n2"); d != 0 {
		t.Fatalf("after a refusal for good the spool holds %d records, want none", d)
	}
}

// TestEnqueueOnReplacedPeer: a delivery that reaches a peer after it was closed
// goes to the peer that replaced it at the node's new address; with none, it is
// answered at once. It used to sit in the closed peer's queue unanswered, and its
// publisher's acknowledgements stalled for good.
func TestEnqueueOnReplacedPeer(t *testing.T) {
	c := &Cluster{peers: map[string]*peer{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	old := &peer{c: c, name: "n2", closed: true, wake: make(chan struct{}, 1)}
	cur := &peer{c: c, name: "n2", wake: make(chan struct{}, 1)}
	c.peers["n2"] = cur
	answered := 0
	old.enqueue(delivery(t, "m1", 0, "", 0), func(error) { answered++ })
	if len(cur.queue) != 1 || answered != 0 {
		t.Fatalf("the new peer holds %d deliveries (answered %d), want the one sent to the old peer", len(cur.queue), answered)
	}

	c.peers["n2"] = old // closed with the cluster: nobody replaces it
	var err error
	old.enqueue(delivery(t, "m2", 0, "", 0), func(e error) { answered++; err = e })
	if answered != 1 || err == nil {
		t.Fatalf("a delivery to a closed peer nobody replaced: answered %d times, err %v", answered, err)
	}
}
