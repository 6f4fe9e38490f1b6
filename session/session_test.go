package session_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// t0 is the fixed "now" of these tests: the session takes the time as a parameter,
// so no test depends on the clock.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// recorder is a fake Outbox standing in for the node's connection: it records what
// the session pushes, and refuses pushes while refuse is set, as a full or closing
// connection does. Its own lock is taken under the session's lock, as the real
// connection's is.
type recorder struct {
	mu     sync.Mutex // guards got and refuse
	got    []session.Outgoing
	refuse bool
	// notify gets a token (non-blocking) after each accepted push, for tests that
	// wait for pushes from another goroutine.
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Push(o session.Outgoing) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse {
		return false
	}
	r.got = append(r.got, o)
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return true
}

func (r *recorder) setRefuse(v bool) {
	r.mu.Lock()
	r.refuse = v
	r.mu.Unlock()
}

// take returns what was pushed since the last take.
func (r *recorder) take() []session.Outgoing {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// sent describes what was pushed since the last take, one string per packet.
func (r *recorder) sent() []string {
	var out []string
	for _, o := range r.take() {
		out = append(out, describe(o))
	}
	return out
}

// describe renders an Outgoing compactly: "a q1 id3 dup", "rel id2". A packet id on a
// QoS 0 message, or a message on a PUBREL, shows up as a difference.
func describe(o session.Outgoing) string {
	if o.Release {
		s := fmt.Sprintf("rel id%d", o.PacketID)
		if o.Msg != nil {
			s += " with message " + o.Msg.Topic
		}
		return s
	}
	s := fmt.Sprintf("%s q%d", o.Msg.Topic, o.QoS)
	if o.QoS > 0 || o.PacketID != 0 {
		s += fmt.Sprintf(" id%d", o.PacketID)
	}
	if o.Dup {
		s += " dup"
	}
	if o.Retain {
		s += " retain"
	}
	return s
}

func msg(topic string) *session.Message {
	return &session.Message{Topic: topic, Payload: []byte("p-" + topic)}
}

func dlv(topic string, qos byte) session.Delivery {
	return session.Delivery{Msg: msg(topic), QoS: qos}
}

func cfg(inflight, queued int) session.Config {
	return session.Config{MaxInflight: inflight, MaxQueued: queued}
}

func wantSent(t *testing.T, r *recorder, want ...string) {
	t.Helper()
	got := r.sent()
	if !slices.Equal(got, want) {
		t.Fatalf("outbox got %q, want %q", got, want)
	}
}

func wantCounts(t *testing.T, s *session.Session, inflight, queued int, drops uint64) {
	t.Helper()
	i, q, d := s.Counts()
	if i != inflight || q != queued || d != drops {
		t.Fatalf("Counts() = inflight %d, queued %d, drops %d; want %d, %d, %d", i, q, d, inflight, queued, drops)
	}
}

func deliver(t *testing.T, s *session.Session, d session.Delivery, want session.DropReason) {
	t.Helper()
	if got := s.Deliver(d, t0); got != want {
		t.Fatalf("Deliver(%s q%d) = %v, want %v", d.Msg.Topic, d.QoS, got, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, session.ErrPacketIDNotFound) {
		t.Fatalf("%s = %v, want ErrPacketIDNotFound", what, err)
	}
}

func TestDeliverQoS0(t *testing.T) {
	cases := []struct {
		name       string
		queueQoS0  bool
		attach     bool // attach a connection before delivering
		detach     bool // and detach it again
		refuse     bool // the connection's queue is full
		want       session.DropReason
		wantSent   []string
		wantQueued int
		wantDrops  uint64
		// wantOnAttach is what a later Attach sends.
		wantOnAttach []string
	}{
		{name: "online goes straight to the outbox", attach: true, want: session.NotDropped, wantSent: []string{"a q0"}},
		{name: "online with a full outbox is dropped", attach: true, refuse: true, want: session.DropOutbox, wantDrops: 1},
		{name: "offline is dropped", want: session.DropOffline, wantDrops: 1},
		{name: "offline after detach is dropped", attach: true, detach: true, want: session.DropOffline, wantDrops: 1},
		{name: "offline with QueueQoS0 is queued", queueQoS0: true, want: session.NotDropped, wantQueued: 1, wantOnAttach: []string{"a q0"}},
		{name: "online with QueueQoS0 is not queued", queueQoS0: true, attach: true, want: session.NotDropped, wantSent: []string{"a q0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := cfg(10, 10)
			conf.QueueQoS0 = c.queueQoS0
			s := session.New("c", conf)
			r := newRecorder()
			if c.attach {
				s.Attach(r, 0, t0)
			}
			if c.detach {
				s.Detach(r, t0)
			}
			r.setRefuse(c.refuse)
			deliver(t, s, dlv("a", 0), c.want)
			wantSent(t, r, c.wantSent...)
			wantCounts(t, s, 0, c.wantQueued, c.wantDrops)
			if c.attach && !c.detach {
				return
			}
			r2 := newRecorder()
			s.Attach(r2, 0, t0)
			wantSent(t, r2, c.wantOnAttach...)
			wantCounts(t, s, 0, 0, c.wantDrops)
		})
	}
}

// TestDeliverCarriesOptions checks that the delivery's retain flag and subscription
// identifiers reach the outbox, for each QoS.
func TestDeliverCarriesOptions(t *testing.T) {
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			s := session.New("c", cfg(10, 10))
			r := newRecorder()
			s.Attach(r, 0, t0)
			m := msg("a")
			deliver(t, s, session.Delivery{Msg: m, QoS: qos, Retain: true, SubIDs: []int{3, 9}}, session.NotDropped)
			got := r.take()
			if len(got) != 1 {
				t.Fatalf("outbox got %d packets, want 1", len(got))
			}
			o := got[0]
			if o.Msg != m || o.QoS != qos || !o.Retain || !slices.Equal(o.SubIDs, []int{3, 9}) || o.Dup || o.Release {
				t.Fatalf("outbox got %+v, want the message at qos %d with retain and sub ids [3 9]", o, qos)
			}
			if (qos == 0) != (o.PacketID == 0) {
				t.Fatalf("qos %d sent with packet id %d", qos, o.PacketID)
			}
		})
	}
}

func TestPacketIDs(t *testing.T) {
	t.Run("count from 1 across qos 1 and 2", func(t *testing.T) {
		s := session.New("c", cfg(10, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		for i, qos := range []byte{1, 2, 0, 1, 2} {
			deliver(t, s, dlv(fmt.Sprint("t", i), qos), session.NotDropped)
		}
		wantSent(t, r, "t0 q1 id1", "t1 q2 id2", "t2 q0", "t3 q1 id3", "t4 q2 id4")
	})
	t.Run("keep counting after acks", func(t *testing.T) {
		s := session.New("c", cfg(10, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		deliver(t, s, dlv("a", 1), session.NotDropped)
		noErr(t, "Puback(1)", s.Puback(1, t0))
		deliver(t, s, dlv("b", 1), session.NotDropped)
		wantSent(t, r, "a q1 id1", "b q1 id2")
	})

	// wrap runs the id counter through 65535 while the message with id 1 is kept
	// inflight (or acked, when ackFirst), and returns the id taken after the wrap.
	wrap := func(t *testing.T, ackFirst bool) uint16 {
		s := session.New("c", cfg(2, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		deliver(t, s, dlv("first", 1), session.NotDropped)
		wantSent(t, r, "first q1 id1")
		for want := 2; want <= 65535; want++ {
			if s.Deliver(dlv("x", 1), t0) != session.NotDropped {
				t.Fatalf("delivery %d dropped", want)
			}
			got := r.take()
			if len(got) != 1 || int(got[0].PacketID) != want {
				t.Fatalf("delivery %d: outbox got %v, want one publish with id %d", want, got, want)
			}
			noErr(t, "Puback", s.Puback(got[0].PacketID, t0))
		}
		if ackFirst {
			noErr(t, "Puback(1)", s.Puback(1, t0))
		}
		deliver(t, s, dlv("after", 1), session.NotDropped)
		got := r.take()
		if len(got) != 1 {
			t.Fatalf("after the wrap: outbox got %d packets, want 1", len(got))
		}
		return got[0].PacketID
	}
	t.Run("wrap waits while the id is still inflight", func(t *testing.T) {
		// The 65536th delivery's id is 1 again (ids never take 0). While id 1 is
		// inflight it waits in the queue, and goes out with id 1 once that is acked.
		s := session.New("c", cfg(2, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		deliver(t, s, dlv("first", 1), session.NotDropped)
		wantSent(t, r, "first q1 id1")
		for want := 2; want <= 65535; want++ {
			deliver(t, s, dlv("x", 1), session.NotDropped)
			got := r.take()
			if len(got) != 1 || int(got[0].PacketID) != want {
				t.Fatalf("delivery %d: outbox got %v, want one publish with id %d", want, got, want)
			}
			noErr(t, "Puback", s.Puback(got[0].PacketID, t0))
		}
		deliver(t, s, dlv("after", 1), session.NotDropped)
		wantSent(t, r)
		wantCounts(t, s, 1, 1, 0)
		noErr(t, "Puback(1)", s.Puback(1, t0))
		wantSent(t, r, "after q1 id1")
	})
	t.Run("wrap skips 0 and reuses a freed id", func(t *testing.T) {
		if id := wrap(t, true); id != 1 {
			t.Fatalf("after 65535 with id 1 acked: id %d, want 1", id)
		}
	})
}

func TestWindow(t *testing.T) {
	t.Run("third message waits for a puback", func(t *testing.T) {
		s := session.New("c", cfg(2, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		for _, topic := range []string{"a", "b", "c", "d"} {
			deliver(t, s, dlv(topic, 1), session.NotDropped)
		}
		wantSent(t, r, "a q1 id1", "b q1 id2")
		wantCounts(t, s, 2, 2, 0)
		noErr(t, "Puback(2)", s.Puback(2, t0))
		wantSent(t, r, "c q1 id3")
		noErr(t, "Puback(1)", s.Puback(1, t0))
		wantSent(t, r, "d q1 id4")
		wantCounts(t, s, 2, 0, 0)
		noErr(t, "Puback(3)", s.Puback(3, t0))
		noErr(t, "Puback(4)", s.Puback(4, t0))
		wantSent(t, r)
		wantCounts(t, s, 0, 0, 0)
	})
	t.Run("qos 2 holds its slot until pubcomp", func(t *testing.T) {
		s := session.New("c", cfg(2, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		for _, topic := range []string{"a", "b", "c"} {
			deliver(t, s, dlv(topic, 2), session.NotDropped)
		}
		noErr(t, "Pubrec(1)", s.Pubrec(1, proto.Success, t0))
		noErr(t, "Pubcomp(1)", s.Pubcomp(1, t0))
		deliver(t, s, dlv("d", 2), session.NotDropped)
		wantSent(t, r, "a q2 id1", "b q2 id2", "c q2 id3")
		wantCounts(t, s, 2, 1, 0)
	})

	cases := []struct {
		name       string
		maxInfl    int
		receiveMax int
		wantSent   int
	}{
		{"receive maximum lowers the window", 5, 1, 1},
		{"receive maximum above max inflight does not raise it", 2, 100, 2},
		{"receive maximum 0 means none", 3, 0, 3},
		{"receive maximum equal to max inflight", 3, 3, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := session.New("c", cfg(c.maxInfl, 100))
			r := newRecorder()
			s.Attach(r, c.receiveMax, t0)
			for i := range 10 {
				deliver(t, s, dlv(fmt.Sprint("t", i), 1), session.NotDropped)
			}
			got := r.sent()
			if len(got) != c.wantSent {
				t.Fatalf("sent %q, want %d messages", got, c.wantSent)
			}
			wantCounts(t, s, c.wantSent, 10-c.wantSent, 0)
		})
	}

	t.Run("next attach without receive maximum restores the window", func(t *testing.T) {
		s := session.New("c", cfg(3, 10))
		r1 := newRecorder()
		s.Attach(r1, 1, t0)
		deliver(t, s, dlv("a", 1), session.NotDropped)
		deliver(t, s, dlv("b", 1), session.NotDropped)
		wantSent(t, r1, "a q1 id1")
		s.Detach(r1, t0)
		r2 := newRecorder()
		s.Attach(r2, 0, t0)
		deliver(t, s, dlv("c", 1), session.NotDropped)
		wantSent(t, r2, "a q1 id1 dup", "b q1 id2", "c q1 id3")
	})
	t.Run("refused message keeps its place", func(t *testing.T) {
		s := session.New("c", cfg(3, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		r.setRefuse(true)
		deliver(t, s, dlv("a", 1), session.NotDropped) // kept for the next connection
		wantCounts(t, s, 0, 1, 0)
		r.setRefuse(false)
		deliver(t, s, dlv("b", 1), session.NotDropped)
		wantSent(t, r) // b must not overtake a
		wantCounts(t, s, 0, 2, 0)
		s.Detach(r, t0)
		r2 := newRecorder()
		s.Attach(r2, 0, t0)
		got := r2.take()
		if len(got) != 2 || got[0].Msg.Topic != "a" || got[1].Msg.Topic != "b" ||
			got[0].PacketID == 0 || got[1].PacketID == 0 || got[0].PacketID == got[1].PacketID {
			t.Fatalf("on attach: %v, want a then b with distinct non-zero ids", got)
		}
		wantCounts(t, s, 2, 0, 0)
	})
}

func TestQueueBound(t *testing.T) {
	cases := []struct {
		name       string
		dropOldest bool
		maxQueued  int
		wantResult []session.DropReason // of delivering m1..m4 offline
		wantQueued int
		wantDrops  uint64
		wantOnline []string // what an Attach then acks send, in order
	}{
		{
			name: "drop newest", maxQueued: 2,
			wantResult: []session.DropReason{session.NotDropped, session.NotDropped, session.DropQueueFull, session.DropQueueFull},
			wantQueued: 2, wantDrops: 2,
			wantOnline: []string{"m1", "m2"},
		},
		{
			name: "drop oldest", dropOldest: true, maxQueued: 2,
			wantResult: []session.DropReason{session.NotDropped, session.NotDropped, session.NotDropped, session.NotDropped},
			wantQueued: 2, wantDrops: 2,
			wantOnline: []string{"m3", "m4"},
		},
		{
			name: "drop oldest with max queued 0 drops the new one", dropOldest: true, maxQueued: 0,
			wantResult: []session.DropReason{session.DropQueueFull, session.DropQueueFull, session.DropQueueFull, session.DropQueueFull},
			wantQueued: 0, wantDrops: 4,
		},
		{
			name: "room for all", maxQueued: 4,
			wantResult: []session.DropReason{session.NotDropped, session.NotDropped, session.NotDropped, session.NotDropped},
			wantQueued: 4, wantDrops: 0,
			wantOnline: []string{"m1", "m2", "m3", "m4"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := cfg(1, c.maxQueued)
			conf.DropOldest = c.dropOldest
			s := session.New("c", conf)
			for i, want := range c.wantResult {
				deliver(t, s, dlv(fmt.Sprint("m", i+1), 1), want)
			}
			wantCounts(t, s, 0, c.wantQueued, c.wantDrops)
			// Online with a window of 1: each ack lets the next one out.
			r := newRecorder()
			s.Attach(r, 0, t0)
			var got []string
			for {
				out := r.take()
				if len(out) == 0 {
					break
				}
				for _, o := range out {
					got = append(got, o.Msg.Topic)
					noErr(t, "Puback", s.Puback(o.PacketID, t0))
				}
			}
			if !slices.Equal(got, c.wantOnline) {
				t.Fatalf("sent %q, want %q", got, c.wantOnline)
			}
			wantCounts(t, s, 0, 0, c.wantDrops)
		})
	}

	t.Run("online with a full window", func(t *testing.T) {
		s := session.New("c", cfg(1, 1))
		r := newRecorder()
		s.Attach(r, 0, t0)
		deliver(t, s, dlv("a", 1), session.NotDropped) // inflight
		deliver(t, s, dlv("b", 1), session.NotDropped) // queued
		deliver(t, s, dlv("c", 2), session.DropQueueFull)
		wantCounts(t, s, 1, 1, 1)
	})
	t.Run("queued qos 0 counts against the bound", func(t *testing.T) {
		conf := cfg(1, 2)
		conf.QueueQoS0 = true
		s := session.New("c", conf)
		deliver(t, s, dlv("a", 0), session.NotDropped)
		deliver(t, s, dlv("b", 1), session.NotDropped)
		deliver(t, s, dlv("c", 0), session.DropQueueFull)
		wantCounts(t, s, 0, 2, 1)
	})
}

// TestReconnectResends covers [MQTT-4.4.0-1]: on a new connection, unacknowledged
// PUBLISH packets go again with DUP and the same ids, and PUBRELs go again for QoS 2
// messages past PUBREC; then the queue fills the window.
func TestReconnectResends(t *testing.T) {
	s := session.New("c", cfg(10, 10))
	r1 := newRecorder()
	s.Attach(r1, 0, t0)
	deliver(t, s, dlv("a", 1), session.NotDropped)
	deliver(t, s, dlv("b", 2), session.NotDropped)
	deliver(t, s, dlv("c", 2), session.NotDropped)
	deliver(t, s, dlv("d", 1), session.NotDropped)
	wantSent(t, r1, "a q1 id1", "b q2 id2", "c q2 id3", "d q1 id4")
	noErr(t, "Pubrec(2)", s.Pubrec(2, proto.Success, t0))
	noErr(t, "Puback(4)", s.Puback(4, t0))
	s.Detach(r1, t0)
	if s.Online() {
		t.Fatal("Online() after Detach")
	}
	deliver(t, s, dlv("e", 1), session.NotDropped)
	wantCounts(t, s, 3, 1, 0)

	r2 := newRecorder()
	s.Attach(r2, 0, t0)
	if !s.Online() {
		t.Fatal("not Online() after Attach")
	}
	wantSent(t, r2, "a q1 id1 dup", "rel id2", "c q2 id3 dup", "e q1 id5")
	wantSent(t, r1) // nothing more for the old connection

	noErr(t, "Puback(1)", s.Puback(1, t0))
	noErr(t, "Pubcomp(2)", s.Pubcomp(2, t0))
	noErr(t, "Pubrec(3)", s.Pubrec(3, proto.Success, t0))
	noErr(t, "Pubcomp(3)", s.Pubcomp(3, t0))
	noErr(t, "Puback(5)", s.Puback(5, t0))
	wantCounts(t, s, 0, 0, 0)
}

func TestDetachStaleOutbox(t *testing.T) {
	s := session.New("c", cfg(10, 10))
	old, cur := newRecorder(), newRecorder()
	s.Attach(old, 0, t0)
	s.Attach(cur, 0, t0) // a new connection took the session over
	s.Detach(old, t0)    // the old connection's late cleanup
	if !s.Online() {
		t.Fatal("Detach of the replaced outbox took the session offline")
	}
	deliver(t, s, dlv("a", 0), session.NotDropped)
	wantSent(t, cur, "a q0")
	wantSent(t, old)
}

func TestQoS2Acks(t *testing.T) {
	// Each case starts online with a window of 1, "a" sent at qos aQoS with id 1 and
	// "b" (qos 1) queued behind it.
	cases := []struct {
		name string
		aQoS byte
		run  func(s *session.Session) error // the step under test
		// wantErr: the step fails with ErrPacketIDNotFound and changes nothing.
		wantErr bool
		// wantFreed: the step freed the slot, so b went out with id 2.
		wantFreed bool
	}{
		{name: "puback completes qos 1", aQoS: 1, run: func(s *session.Session) error { return s.Puback(1, t0) }, wantFreed: true},
		{name: "pubrec keeps the slot", aQoS: 2, run: func(s *session.Session) error { return s.Pubrec(1, proto.Success, t0) }},
		{name: "pubrec then pubcomp frees the slot", aQoS: 2, run: func(s *session.Session) error {
			if err := s.Pubrec(1, proto.Success, t0); err != nil {
				return err
			}
			return s.Pubcomp(1, t0)
		}, wantFreed: true},
		{name: "pubrec with an error code ends the exchange", aQoS: 2, run: func(s *session.Session) error {
			return s.Pubrec(1, proto.UnspecifiedError, t0)
		}, wantFreed: true},
		{name: "pubrec no matching subscribers is not an error", aQoS: 2, run: func(s *session.Session) error {
			return s.Pubrec(1, proto.NoMatchingSubscribers, t0)
		}},
		{name: "pubcomp before pubrec", aQoS: 2, run: func(s *session.Session) error { return s.Pubcomp(1, t0) }, wantErr: true},
		{name: "puback on a qos 2 id", aQoS: 2, run: func(s *session.Session) error { return s.Puback(1, t0) }, wantErr: true},
		{name: "pubrec on a qos 1 id", aQoS: 1, run: func(s *session.Session) error { return s.Pubrec(1, proto.Success, t0) }, wantErr: true},
		{name: "pubcomp on a qos 1 id", aQoS: 1, run: func(s *session.Session) error { return s.Pubcomp(1, t0) }, wantErr: true},
		{name: "puback of an unknown id", aQoS: 1, run: func(s *session.Session) error { return s.Puback(7, t0) }, wantErr: true},
		{name: "pubrec of an unknown id", aQoS: 2, run: func(s *session.Session) error { return s.Pubrec(7, proto.Success, t0) }, wantErr: true},
		{name: "pubcomp of an unknown id", aQoS: 2, run: func(s *session.Session) error { return s.Pubcomp(7, t0) }, wantErr: true},
		{name: "puback of id 0", aQoS: 1, run: func(s *session.Session) error { return s.Puback(0, t0) }, wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := session.New("c", cfg(1, 10))
			r := newRecorder()
			s.Attach(r, 0, t0)
			deliver(t, s, dlv("a", c.aQoS), session.NotDropped)
			deliver(t, s, dlv("b", 1), session.NotDropped)
			wantSent(t, r, fmt.Sprintf("a q%d id1", c.aQoS))
			err := c.run(s)
			if c.wantErr {
				wantNotFound(t, "step", err)
			} else {
				noErr(t, "step", err)
			}
			if c.wantFreed {
				wantSent(t, r, "b q1 id2")
				wantCounts(t, s, 1, 0, 0)
			} else {
				wantSent(t, r)
				wantCounts(t, s, 1, 1, 0)
			}
		})
	}

	t.Run("second puback", func(t *testing.T) {
		s := session.New("c", cfg(1, 10))
		s.Attach(newRecorder(), 0, t0)
		deliver(t, s, dlv("a", 1), session.NotDropped)
		noErr(t, "Puback(1)", s.Puback(1, t0))
		wantNotFound(t, "second Puback(1)", s.Puback(1, t0))
	})
	t.Run("pubcomp after a failed pubrec", func(t *testing.T) {
		s := session.New("c", cfg(1, 10))
		s.Attach(newRecorder(), 0, t0)
		deliver(t, s, dlv("a", 2), session.NotDropped)
		noErr(t, "Pubrec(1, 0x80)", s.Pubrec(1, proto.UnspecifiedError, t0))
		wantNotFound(t, "Pubcomp(1)", s.Pubcomp(1, t0))
	})
	t.Run("pubrec forgets the message", func(t *testing.T) {
		// After PUBREC the message must not be sent again [MQTT-4.3.3-4]: a
		// reconnect sends PUBREL only, even while offline.
		s := session.New("c", cfg(1, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		deliver(t, s, dlv("a", 2), session.NotDropped)
		r.take()
		noErr(t, "Pubrec(1)", s.Pubrec(1, proto.Success, t0))
		s.Detach(r, t0)
		for range 2 {
			r2 := newRecorder()
			s.Attach(r2, 0, t0)
			wantSent(t, r2, "rel id1")
			s.Detach(r2, t0)
		}
	})
}

func TestDiscard(t *testing.T) {
	cases := []struct {
		name  string
		qos   byte
		setup func(s *session.Session) error
	}{
		{name: "qos 1", qos: 1},
		{name: "qos 2 before pubrec", qos: 2},
		{name: "qos 2 after pubrec", qos: 2, setup: func(s *session.Session) error { return s.Pubrec(1, proto.Success, t0) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := session.New("c", cfg(1, 10))
			r := newRecorder()
			s.Attach(r, 0, t0)
			deliver(t, s, dlv("a", c.qos), session.NotDropped)
			deliver(t, s, dlv("b", 1), session.NotDropped)
			if c.setup != nil {
				noErr(t, "setup", c.setup(s))
			}
			wantSent(t, r, fmt.Sprintf("a q%d id1", c.qos))
			noErr(t, "Discard(1)", s.Discard(1, t0))
			wantSent(t, r, "b q1 id2")
			wantCounts(t, s, 1, 0, 1)
			wantNotFound(t, "Puback(1) after Discard", s.Puback(1, t0))
			wantNotFound(t, "Discard(1) again", s.Discard(1, t0))
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		s := session.New("c", cfg(1, 10))
		wantNotFound(t, "Discard(5)", s.Discard(5, t0))
		wantCounts(t, s, 0, 0, 0)
	})
}

func TestReceiveQoS2(t *testing.T) {
	type step struct {
		op       string // "recv" or "release"
		id       uint16
		limit    int
		wantNew  bool // recv
		wantCode byte // recv: non-zero means the error's reason code
		wantOK   bool // release
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"new then duplicate", []step{
			{op: "recv", id: 1, wantNew: true},
			{op: "recv", id: 1, wantNew: false},
			{op: "recv", id: 2, wantNew: true},
		}},
		{"release makes the id new again", []step{
			{op: "recv", id: 1, wantNew: true},
			{op: "release", id: 1, wantOK: true},
			{op: "release", id: 1, wantOK: false},
			{op: "recv", id: 1, wantNew: true},
		}},
		{"release of an unknown id", []step{
			{op: "release", id: 9, wantOK: false},
		}},
		{"limit", []step{
			{op: "recv", id: 1, limit: 2, wantNew: true},
			{op: "recv", id: 2, limit: 2, wantNew: true},
			{op: "recv", id: 3, limit: 2, wantCode: byte(proto.ReceiveMaximumExceeded)},
			// A retransmission of an id already held is still recognised at the limit.
			{op: "recv", id: 2, limit: 2, wantNew: false},
			{op: "release", id: 1, wantOK: true},
			{op: "recv", id: 3, limit: 2, wantNew: true},
		}},
		{"limit 0 means none", []step{
			{op: "recv", id: 1, wantNew: true},
			{op: "recv", id: 2, wantNew: true},
			{op: "recv", id: 3, wantNew: true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := session.New("c", session.DefaultConfig())
			for i, st := range c.steps {
				switch st.op {
				case "recv":
					isNew, err := s.ReceiveQoS2(st.id, st.limit)
					if st.wantCode != 0 {
						if err == nil {
							t.Fatalf("step %d: ReceiveQoS2(%d, %d) = %v, nil; want an error", i, st.id, st.limit, isNew)
						}
						if got := proto.CodeOf(err, 0); got != proto.ReasonCode(st.wantCode) {
							t.Fatalf("step %d: error %v has code %#x, want %#x", i, err, byte(got), st.wantCode)
						}
						if isNew {
							t.Fatalf("step %d: isNew with an error", i)
						}
						continue
					}
					if err != nil || isNew != st.wantNew {
						t.Fatalf("step %d: ReceiveQoS2(%d, %d) = %v, %v; want %v, nil", i, st.id, st.limit, isNew, err, st.wantNew)
					}
				case "release":
					if got := s.Release(st.id); got != st.wantOK {
						t.Fatalf("step %d: Release(%d) = %v, want %v", i, st.id, got, st.wantOK)
					}
				}
			}
		})
	}
}

func TestExpiredQueuedMessages(t *testing.T) {
	expiring := func(topic string, at time.Time) session.Delivery {
		m := msg(topic)
		m.Expires = at
		return session.Delivery{Msg: m, QoS: 1}
	}
	t.Run("skipped when the window refills", func(t *testing.T) {
		s := session.New("c", cfg(1, 10))
		r := newRecorder()
		s.Attach(r, 0, t0)
		deliver(t, s, dlv("a", 1), session.NotDropped)
		deliver(t, s, expiring("gone", t0.Add(time.Second)), session.NotDropped)
		deliver(t, s, expiring("edge", t0.Add(5*time.Second)), session.NotDropped) // expires exactly at the ack
		deliver(t, s, expiring("alive", t0.Add(10*time.Second)), session.NotDropped)
		deliver(t, s, dlv("last", 1), session.NotDropped)
		wantSent(t, r, "a q1 id1")
		// Packet ids follow the routing order (they are durable with the delivery),
		// so the expired messages' ids 2 and 3 are skipped.
		noErr(t, "Puback(1)", s.Puback(1, t0.Add(5*time.Second)))
		wantSent(t, r, "alive q1 id4")
		wantCounts(t, s, 1, 1, 2)
		noErr(t, "Puback(4)", s.Puback(4, t0.Add(20*time.Second)))
		wantSent(t, r, "last q1 id5")
		wantCounts(t, s, 1, 0, 2)
	})
	t.Run("skipped on attach", func(t *testing.T) {
		s := session.New("c", cfg(10, 10))
		deliver(t, s, expiring("gone", t0.Add(time.Second)), session.NotDropped)
		deliver(t, s, dlv("kept", 1), session.NotDropped)
		wantCounts(t, s, 0, 2, 0)
		r := newRecorder()
		s.Attach(r, 0, t0.Add(time.Minute))
		wantSent(t, r, "kept q1 id2")
		wantCounts(t, s, 1, 0, 1)
	})
}

func TestMessageExpired(t *testing.T) {
	cases := []struct {
		name    string
		expires time.Time
		now     time.Time
		want    bool
	}{
		{"no expiry", time.Time{}, t0, false},
		{"before", t0.Add(time.Second), t0, false},
		{"at the instant", t0, t0, true},
		{"after", t0, t0.Add(time.Nanosecond), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &session.Message{Expires: c.expires}
			if got := m.Expired(c.now); got != c.want {
				t.Fatalf("Expired = %v, want %v", got, c.want)
			}
		})
	}
}

func TestRemainingExpiry(t *testing.T) {
	cases := []struct {
		name      string
		expires   time.Time
		want      uint32
		wantHasIt bool
	}{
		{"no expiry", time.Time{}, 0, false},
		{"one nanosecond left rounds up to 1", t0.Add(time.Nanosecond), 1, true},
		{"exactly one second", t0.Add(time.Second), 1, true},
		{"a bit over one second rounds up", t0.Add(time.Second + time.Nanosecond), 2, true},
		{"one and a half seconds", t0.Add(1500 * time.Millisecond), 2, true},
		{"a minute", t0.Add(time.Minute), 60, true},
		{"just under a minute", t0.Add(time.Minute - time.Millisecond), 60, true},
		{"largest interval", t0.Add(0xFFFFFFFF * time.Second), 0xFFFFFFFF, true},
		{"expired now", t0, 0, true},
		{"expired long ago", t0.Add(-time.Hour), 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &session.Message{Expires: c.expires}
			got, ok := m.RemainingExpiry(t0)
			if got != c.want || ok != c.wantHasIt {
				t.Fatalf("RemainingExpiry = %d, %v; want %d, %v", got, ok, c.want, c.wantHasIt)
			}
			if !m.Expired(t0) && ok && got == 0 {
				t.Fatal("a live message would be sent with expiry 0")
			}
		})
	}
}

func TestNewMessage(t *testing.T) {
	full := func() proto.Properties {
		var p proto.Properties
		p.Set(proto.PropPayloadFormat)
		p.PayloadFormat = 1
		p.Set(proto.PropMessageExpiry)
		p.MessageExpiry = 30
		p.Set(proto.PropContentType)
		p.ContentType = "text/x"
		p.Set(proto.PropResponseTopic)
		p.ResponseTopic = "r/t"
		p.Set(proto.PropCorrelationData)
		p.CorrelationData = []byte("abc")
		p.Set(proto.PropTopicAlias)
		p.TopicAlias = 3
		p.SubscriptionIDs = []int{7}
		p.User = []proto.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "v2"}, {Key: "a", Value: "b"}}
		return p
	}
	forwarded := func() proto.Properties {
		var p proto.Properties
		p.Set(proto.PropPayloadFormat)
		p.PayloadFormat = 1
		p.Set(proto.PropContentType)
		p.ContentType = "text/x"
		p.Set(proto.PropResponseTopic)
		p.ResponseTopic = "r/t"
		p.Set(proto.PropCorrelationData)
		p.CorrelationData = []byte("abc")
		p.User = []proto.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "v2"}, {Key: "a", Value: "b"}}
		return p
	}
	only := func(id proto.PropID, set func(*proto.Properties)) proto.Properties {
		var p proto.Properties
		p.Set(id)
		set(&p)
		return p
	}
	cases := []struct {
		name        string
		props       proto.Properties
		wantProps   proto.Properties
		wantExpires time.Time
	}{
		{"no properties", proto.Properties{}, proto.Properties{}, time.Time{}},
		{"all properties", full(), forwarded(), t0.Add(30 * time.Second)},
		{"topic alias only", only(proto.PropTopicAlias, func(p *proto.Properties) { p.TopicAlias = 5 }), proto.Properties{}, time.Time{}},
		{"subscription id only", proto.Properties{SubscriptionIDs: []int{1, 2}}, proto.Properties{}, time.Time{}},
		{"message expiry only", only(proto.PropMessageExpiry, func(p *proto.Properties) { p.MessageExpiry = 2 }), proto.Properties{}, t0.Add(2 * time.Second)},
		{"payload format 0 present", only(proto.PropPayloadFormat, func(p *proto.Properties) {}), only(proto.PropPayloadFormat, func(p *proto.Properties) {}), time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &proto.Publish{QoS: 2, Retain: true, Topic: "a/b", PacketID: 9, Props: c.props, Payload: []byte("data")}
			m := session.NewMessage(p, "pub-1", t0)
			if m.Topic != "a/b" || string(m.Payload) != "data" || m.QoS != 2 || !m.Retain || m.From != "pub-1" {
				t.Fatalf("NewMessage = %+v, want topic a/b, payload data, qos 2, retain, from pub-1", m)
			}
			if !m.Expires.Equal(c.wantExpires) {
				t.Fatalf("Expires = %v, want %v", m.Expires, c.wantExpires)
			}
			for _, id := range []proto.PropID{proto.PropTopicAlias, proto.PropSubscriptionID, proto.PropMessageExpiry} {
				if m.Props.Has(id) {
					t.Fatalf("property %#x forwarded; it is per connection or kept as Expires", byte(id))
				}
			}
			if !reflect.DeepEqual(m.Props, c.wantProps) {
				t.Fatalf("Props = %+v, want %+v", m.Props, c.wantProps)
			}
		})
	}
}

func TestSharedEncoding(t *testing.T) {
	t.Run("builds once per slot", func(t *testing.T) {
		m := msg("a")
		var calls [2]int
		build := func(slot int) func() ([]byte, error) {
			return func() ([]byte, error) {
				calls[slot]++
				return fmt.Appendf(nil, "enc%d", slot), nil
			}
		}
		for range 3 {
			for slot := range 2 {
				b, err := m.SharedEncoding(slot, build(slot))
				if err != nil || string(b) != fmt.Sprintf("enc%d", slot) {
					t.Fatalf("SharedEncoding(%d) = %q, %v", slot, b, err)
				}
			}
		}
		if calls != [2]int{1, 1} {
			t.Fatalf("build calls per slot = %v, want [1 1]", calls)
		}
	})
	t.Run("a failed build is not kept", func(t *testing.T) {
		m := msg("a")
		calls := 0
		boom := errors.New("boom")
		_, err := m.SharedEncoding(0, func() ([]byte, error) { calls++; return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		b, err := m.SharedEncoding(0, func() ([]byte, error) { calls++; return []byte("ok"), nil })
		if err != nil || string(b) != "ok" || calls != 2 {
			t.Fatalf("after a failure: %q, %v, %d calls; want ok, nil, 2", b, err, calls)
		}
	})
	t.Run("concurrent first use", func(t *testing.T) {
		m := msg("a")
		var calls atomic.Int32
		build := func() ([]byte, error) {
			calls.Add(1)
			// Every build gives the same bytes in a fresh slice, as an encoder does.
			return []byte("encoded"), nil
		}
		const n = 64
		results := make([][]byte, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				b, err := m.SharedEncoding(0, build)
				if err != nil {
					t.Errorf("SharedEncoding: %v", err)
				}
				results[i] = b
			})
		}
		close(start)
		wg.Wait()
		for i, b := range results {
			if !bytes.Equal(b, []byte("encoded")) {
				t.Fatalf("goroutine %d got %q", i, b)
			}
		}
		c := calls.Load()
		if c < 1 || c > n {
			t.Fatalf("%d builds for %d callers", c, n)
		}
		b, _ := m.SharedEncoding(0, build)
		if calls.Load() != c || string(b) != "encoded" {
			t.Fatalf("a call after the first use built again (%d -> %d builds)", c, calls.Load())
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		cfg     session.Config
		wantErr string // substring naming the setting; "" means valid
	}{
		{"default", session.DefaultConfig(), ""},
		{"smallest", session.Config{MaxInflight: 1, MaxQueued: 0}, ""},
		{"largest inflight", session.Config{MaxInflight: 65535, MaxQueued: 1}, ""},
		{"zero value", session.Config{}, "max inflight"},
		{"inflight 0", session.Config{MaxInflight: 0, MaxQueued: 10}, "max inflight"},
		{"inflight negative", session.Config{MaxInflight: -1, MaxQueued: 10}, "max inflight"},
		{"inflight 65536", session.Config{MaxInflight: 65536, MaxQueued: 10}, "max inflight"},
		{"queued negative", session.Config{MaxInflight: 10, MaxQueued: -1}, "max queued"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, c.wantErr)
			}
		})
	}
	if d := session.DefaultConfig(); d.MaxInflight != 100 || d.MaxQueued != 1000 || d.DropOldest || d.QueueQoS0 {
		t.Fatalf("DefaultConfig() = %+v, want 100 inflight, 1000 queued, drop newest, no qos 0 queueing", d)
	}
}

func TestDropReasonString(t *testing.T) {
	want := map[session.DropReason]string{
		session.NotDropped:    "none",
		session.DropQueueFull: "queue_full",
		session.DropOffline:   "offline",
		session.DropOutbox:    "outbox_full",
		session.DropExpired:   "expired",
		session.DropTooLarge:  "too_large",
	}
	for r, s := range want {
		if r.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(r), r.String(), s)
		}
	}
	if got := session.DropReasons(); len(got) != len(want) || got[session.DropExpired] != "expired" {
		t.Errorf("DropReasons() = %q", got)
	}
}

func TestSubscriptionsAndExpiry(t *testing.T) {
	s := session.New("c", session.DefaultConfig())
	sub := func(filter string, qos byte, id int) session.Subscription {
		return session.Subscription{Subscription: proto.Subscription{Filter: filter, QoS: qos}, ID: id}
	}
	steps := []struct {
		name string
		do   func() bool
		want bool
	}{
		{"first subscribe", func() bool { return s.Subscribe(sub("a/#", 1, 0)) }, false},
		{"shared subscribe", func() bool { return s.Subscribe(sub("$share/g/a/#", 0, 0)) }, false},
		{"replace", func() bool { return s.Subscribe(sub("a/#", 2, 5)) }, true},
		{"unsubscribe missing", func() bool { return s.Unsubscribe("b") }, false},
		{"unsubscribe shared", func() bool { return s.Unsubscribe("$share/g/a/#") }, true},
		{"unsubscribe again", func() bool { return s.Unsubscribe("$share/g/a/#") }, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if got := st.do(); got != st.want {
				t.Fatalf("got %v, want %v", got, st.want)
			}
		})
	}
	subs := s.Subscriptions()
	if len(subs) != 1 || subs[0].Filter != "a/#" || subs[0].QoS != 2 || subs[0].ID != 5 {
		t.Fatalf("Subscriptions() = %+v, want only a/# at qos 2 with id 5", subs)
	}
	subs[0].Filter = "changed"
	if s.Subscriptions()[0].Filter != "a/#" {
		t.Fatal("Subscriptions() returned the session's own storage")
	}
	if s.Expiry() != 0 {
		t.Fatalf("Expiry() of a new session = %d", s.Expiry())
	}
	s.SetExpiry(0xFFFFFFFF)
	if s.Expiry() != 0xFFFFFFFF {
		t.Fatalf("Expiry() = %d, want 0xFFFFFFFF", s.Expiry())
	}
}

// TestConcurrentDeliverAndAck runs many publishers against one session while another
// goroutine acknowledges what reaches the outbox (run with -race). Every message must
// arrive exactly once, each publisher's QoS 1/2 messages in its order (they share the
// queue) and its QoS 0 messages in their order, packet ids unique among those
// outstanding, and the window never exceeded.
func TestConcurrentDeliverAndAck(t *testing.T) {
	const (
		publishers = 8
		perPub     = 400
		window     = 16
	)
	s := session.New("c", cfg(window, publishers*perPub))
	r := newRecorder()
	s.Attach(r, 0, t0)

	qosOf := func(i int) byte { return byte(i % 3) }
	wantAcked := 0
	for i := range perPub {
		if qosOf(i) > 0 {
			wantAcked += publishers
		}
	}

	stop := make(chan struct{})
	var bg sync.WaitGroup
	// Readers of the session's state, for the race detector.
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			inflight, _, _ := s.Counts()
			if inflight > window {
				t.Errorf("%d inflight, window %d", inflight, window)
				return
			}
			_ = s.Online()
			_ = s.Subscriptions()
		}
	})

	// The acker answers every QoS 1/2 publish the outbox saw, in order.
	var seen []session.Outgoing
	ackerDone := make(chan error, 1)
	go func() {
		outstanding := map[uint16]bool{}
		acked := 0
		deadline := time.NewTimer(30 * time.Second)
		defer deadline.Stop()
		for acked < wantAcked {
			select {
			case <-r.notify:
			case <-deadline.C:
				ackerDone <- fmt.Errorf("acked %d of %d before the deadline", acked, wantAcked)
				return
			}
			for _, o := range r.take() {
				seen = append(seen, o)
				if o.Release || o.Dup {
					ackerDone <- fmt.Errorf("unexpected %s", describe(o))
					return
				}
				if o.QoS == 0 {
					continue
				}
				if o.PacketID == 0 || outstanding[o.PacketID] {
					ackerDone <- fmt.Errorf("packet id %d reused while outstanding", o.PacketID)
					return
				}
				outstanding[o.PacketID] = true
				if len(outstanding) > window {
					ackerDone <- fmt.Errorf("%d outstanding, window %d", len(outstanding), window)
					return
				}
				var err error
				if o.QoS == 1 {
					err = s.Puback(o.PacketID, t0)
				} else if err = s.Pubrec(o.PacketID, proto.Success, t0); err == nil {
					err = s.Pubcomp(o.PacketID, t0)
				}
				if err != nil {
					ackerDone <- fmt.Errorf("ack %s: %w", describe(o), err)
					return
				}
				delete(outstanding, o.PacketID)
				acked++
			}
		}
		ackerDone <- nil
	}()

	var pubs sync.WaitGroup
	for g := range publishers {
		pubs.Go(func() {
			for i := range perPub {
				d := session.Delivery{Msg: msg(fmt.Sprintf("g%d/%d", g, i)), QoS: qosOf(i)}
				if got := s.Deliver(d, t0); got != session.NotDropped {
					t.Errorf("Deliver %s = %v", d.Msg.Topic, got)
				}
			}
		})
	}
	pubs.Wait()
	err := <-ackerDone
	close(stop)
	bg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, r.take()...) // QoS 0 pushed after the last ack

	if len(seen) != publishers*perPub {
		t.Fatalf("outbox saw %d publishes, want %d", len(seen), publishers*perPub)
	}
	// Per publisher and class (QoS 0 / QoS 1+2), the sequence numbers must rise.
	last := map[string]int{}
	for _, o := range seen {
		var g, i int
		if _, err := fmt.Sscanf(o.Msg.Topic, "g%d/%d", &g, &i); err != nil {
			t.Fatalf("topic %q: %v", o.Msg.Topic, err)
		}
		if o.QoS != qosOf(i) {
			t.Fatalf("%s sent at qos %d, delivered at %d", o.Msg.Topic, o.QoS, qosOf(i))
		}
		key := fmt.Sprintf("g%d qos0=%v", g, o.QoS == 0)
		if prev, ok := last[key]; ok && i <= prev {
			t.Fatalf("%s: message %d sent after %d", key, i, prev)
		}
		last[key] = i
	}
	wantCounts(t, s, 0, 0, 0)
}

// TestQueueBytesBound covers MaxQueuedBytes: the topic and payload bytes of queued
// messages (inflight ones do not count). Every message here is 6 bytes ("mN" and
// "p-mN"), so 12 bytes hold two.
func TestQueueBytesBound(t *testing.T) {
	cases := []struct {
		name       string
		dropOldest bool
		deliveries []session.Delivery
		wantResult []session.DropReason
		wantQueued int
		wantDrops  uint64
		wantOnline []string // topics sent once online, acking each
	}{
		{
			name:       "drop newest",
			deliveries: []session.Delivery{dlv("m1", 1), dlv("m2", 1), dlv("m3", 1), dlv("m4", 2)},
			wantResult: []session.DropReason{session.NotDropped, session.NotDropped, session.DropQueueFull, session.DropQueueFull},
			wantQueued: 2, wantDrops: 2,
			wantOnline: []string{"m1", "m2"},
		},
		{
			name: "drop oldest", dropOldest: true,
			deliveries: []session.Delivery{dlv("m1", 1), dlv("m2", 1), dlv("m3", 1), dlv("m4", 2)},
			wantResult: []session.DropReason{session.NotDropped, session.NotDropped, session.NotDropped, session.NotDropped},
			wantQueued: 2, wantDrops: 2,
			wantOnline: []string{"m3", "m4"},
		},
		{
			name:       "a message larger than the bound is dropped",
			deliveries: []session.Delivery{dlv("m1", 1), dlv("m2", 1), {Msg: &session.Message{Topic: "big", Payload: make([]byte, 100)}, QoS: 1}},
			wantResult: []session.DropReason{session.NotDropped, session.NotDropped, session.DropQueueFull},
			wantQueued: 2, wantDrops: 1,
			wantOnline: []string{"m1", "m2"},
		},
		{
			// It can never fit, so evicting the queue for it only loses messages.
			name: "a message larger than the bound does not empty the queue", dropOldest: true,
			deliveries: []session.Delivery{dlv("m1", 1), dlv("m2", 1), {Msg: &session.Message{Topic: "big", Payload: make([]byte, 100)}, QoS: 1}},
			wantResult: []session.DropReason{session.NotDropped, session.NotDropped, session.DropQueueFull},
			wantQueued: 2, wantDrops: 1,
			wantOnline: []string{"m1", "m2"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := cfg(1, 100)
			conf.MaxQueuedBytes = 12
			conf.DropOldest = c.dropOldest
			s := session.New("c", conf)
			for i, d := range c.deliveries {
				deliver(t, s, d, c.wantResult[i])
			}
			wantCounts(t, s, 0, c.wantQueued, c.wantDrops)
			r := newRecorder()
			s.Attach(r, 0, t0)
			var got []string
			for out := r.take(); len(out) > 0; out = r.take() {
				for _, o := range out {
					got = append(got, o.Msg.Topic)
					if o.QoS == 2 {
						noErr(t, "Pubrec", s.Pubrec(o.PacketID, proto.Success, t0))
						noErr(t, "Pubcomp", s.Pubcomp(o.PacketID, t0))
					} else {
						noErr(t, "Puback", s.Puback(o.PacketID, t0))
					}
				}
			}
			if !slices.Equal(got, c.wantOnline) {
				t.Fatalf("sent %q, want %q", got, c.wantOnline)
			}
			wantCounts(t, s, 0, 0, c.wantDrops)
		})
	}

	t.Run("bytes are freed when a message leaves the queue", func(t *testing.T) {
		conf := cfg(1, 100)
		conf.MaxQueuedBytes = 12
		s := session.New("c", conf)
		r := newRecorder()
		s.Attach(r, 0, t0)
		deliver(t, s, dlv("m1", 1), session.NotDropped) // inflight: not counted
		deliver(t, s, dlv("m2", 1), session.NotDropped)
		deliver(t, s, dlv("m3", 1), session.NotDropped)
		deliver(t, s, dlv("m4", 1), session.DropQueueFull)
		noErr(t, "Puback(1)", s.Puback(1, t0)) // m2 goes inflight, its 6 bytes free up
		deliver(t, s, dlv("m5", 1), session.NotDropped)
		deliver(t, s, dlv("m6", 1), session.DropQueueFull)
		wantSent(t, r, "m1 q1 id1", "m2 q1 id2")
		wantCounts(t, s, 1, 2, 2)
	})
}

// TestTakeShared covers handing back the undelivered messages of shared
// subscriptions when their client leaves: queued ones and sent unacknowledged QoS 1
// ones go; QoS 2 ones once sent (before or past PUBREC) and ordinary
// subscriptions' messages stay.
func TestTakeShared(t *testing.T) {
	shared := func(topic string, qos byte) session.Delivery {
		d := dlv(topic, qos)
		d.Shared = "g/t/#"
		return d
	}
	s := session.New("c", cfg(3, 10))
	r := newRecorder()
	s.Attach(r, 0, t0)
	deliver(t, s, shared("a", 1), session.NotDropped) // inflight id1
	deliver(t, s, shared("b", 2), session.NotDropped) // inflight id2, then past PUBREC
	deliver(t, s, shared("e", 2), session.NotDropped) // inflight id3, sent, no PUBREC
	deliver(t, s, dlv("c", 1), session.NotDropped)    // queued, not shared
	deliver(t, s, shared("d", 2), session.NotDropped) // queued
	noErr(t, "Pubrec(2)", s.Pubrec(2, proto.Success, t0))
	wantSent(t, r, "a q1 id1", "b q2 id2", "e q2 id3")

	got := s.TakeShared(t0)
	var topics []string
	for _, d := range got {
		topics = append(topics, fmt.Sprintf("%s q%d %s", d.Msg.Topic, d.QoS, d.Shared))
	}
	if want := []string{"a q1 g/t/#", "d q2 g/t/#"}; !slices.Equal(topics, want) {
		t.Fatalf("TakeShared = %q, want %q", topics, want)
	}
	// a's slot went to the queued c.
	wantSent(t, r, "c q1 id4")
	wantCounts(t, s, 3, 0, 0)
	wantNotFound(t, "Puback(1) of a taken message", s.Puback(1, t0))
	noErr(t, "Pubcomp(2)", s.Pubcomp(2, t0))
	noErr(t, "Pubrec(3)", s.Pubrec(3, proto.Success, t0))
	noErr(t, "Pubcomp(3)", s.Pubcomp(3, t0))
	noErr(t, "Puback(4)", s.Puback(4, t0))
	if again := s.TakeShared(t0); len(again) != 0 {
		t.Fatalf("second TakeShared = %v, want nothing", again)
	}
	wantCounts(t, s, 0, 0, 0)
}
