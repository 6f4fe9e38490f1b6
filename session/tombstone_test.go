package session_test

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// write is one retained write of the tombstone tests: payload "" clears.
type write struct {
	topic, payload string
	stamp          int64
	older          bool // Set must report IsOlder (the write changed nothing)
}

func (w write) msg() *session.Message {
	m := &session.Message{Topic: w.topic, Retain: true, Stamp: w.stamp, QoS: 1}
	if w.payload != "" {
		m.Payload = []byte(w.payload)
	}
	return m
}

// tombstones returns "topic@stamp" for every tombstone Each visits, sorted.
func tombstones(r session.RetainedStore) []string {
	var out []string
	r.Each(func(m *session.Message) bool {
		if m.Tombstone() {
			out = append(out, fmt.Sprintf("%s@%d", m.Topic, m.Stamp))
		}
		return true
	})
	slices.Sort(out)
	return out
}

// retainedState is what a store shows: messages (Match "#"), Len, and tombstones.
func retainedState(t *testing.T, r session.RetainedStore) string {
	t.Helper()
	return fmt.Sprintf("messages %q len %d tombstones %q", matchAll(t, r, "#"), r.Len(), tombstones(r))
}

// TestRetainedTombstoneLastWriterWins: in a cluster (stamped writes) a clear leaves a
// tombstone that an older set loses to and a newer set replaces; equal stamps pick
// the same winner in either order; a standalone clear (no stamp) leaves nothing. Each
// case runs on the memory store and on the bbolt one, whose state must come back the
// same after a reopen.
func TestRetainedTombstoneLastWriterWins(t *testing.T) {
	cases := []struct {
		name   string
		writes []write
		want   string
	}{
		{"newer clear leaves a tombstone", []write{{"t", "a", 10, false}, {"t", "", 20, false}},
			`messages [] len 0 tombstones ["t@20"]`},
		{"older set loses to a tombstone", []write{{"t", "a", 10, false}, {"t", "", 20, false}, {"t", "late", 15, true}},
			`messages [] len 0 tombstones ["t@20"]`},
		{"newer set replaces a tombstone", []write{{"t", "", 20, false}, {"t", "b", 30, false}},
			`messages ["t=b"] len 1 tombstones []`},
		{"older clear loses to a set", []write{{"t", "b", 30, false}, {"t", "", 20, true}},
			`messages ["t=b"] len 1 tombstones []`},
		{"clear of an unknown topic is kept", []write{{"u", "x", 5, false}, {"t", "", 20, false}},
			`messages ["u=x"] len 1 tombstones ["t@20"]`},
		{"older clear loses to a newer clear", []write{{"t", "", 20, false}, {"t", "", 10, true}},
			`messages [] len 0 tombstones ["t@20"]`},
		{"newer clear replaces an older clear", []write{{"t", "", 10, false}, {"t", "", 20, false}},
			`messages [] len 0 tombstones ["t@20"]`},
		{"equal stamps: greater payload wins, set first", []write{{"t", "a", 10, false}, {"t", "b", 10, false}},
			`messages ["t=b"] len 1 tombstones []`},
		{"equal stamps: greater payload wins, set second", []write{{"t", "b", 10, false}, {"t", "a", 10, true}},
			`messages ["t=b"] len 1 tombstones []`},
		{"equal stamps: a set beats a clear, clear first", []write{{"t", "", 10, false}, {"t", "a", 10, false}},
			`messages ["t=a"] len 1 tombstones []`},
		{"equal stamps: a set beats a clear, clear second", []write{{"t", "a", 10, false}, {"t", "", 10, true}},
			`messages ["t=a"] len 1 tombstones []`},
		{"the same write twice changes nothing", []write{{"t", "a", 10, false}, {"t", "a", 10, true}},
			`messages ["t=a"] len 1 tombstones []`},
		{"standalone clear leaves no tombstone", []write{{"t", "a", 0, false}, {"t", "", 0, false}},
			`messages [] len 0 tombstones []`},
		{"stamped set replaces an unstamped one", []write{{"t", "a", 0, false}, {"t", "b", 1, false}},
			`messages ["t=b"] len 1 tombstones []`},
	}
	for _, c := range cases {
		t.Run("memory/"+c.name, func(t *testing.T) {
			r := session.NewMemoryRetained()
			applyWrites(t, r, c.writes)
			if got := retainedState(t, r); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
		t.Run("bbolt/"+c.name, func(t *testing.T) {
			st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
			r, err := session.OpenRetained(st, storeT0)
			if err != nil {
				t.Fatal(err)
			}
			storeWait(t, st, applyWrites(t, r, c.writes))
			if got := retainedState(t, r); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			st = storeReopen(t, st)
			if r, err = session.OpenRetained(st, storeT0); err != nil {
				t.Fatal(err)
			}
			if got := retainedState(t, r); got != c.want {
				t.Fatalf("after reopen: got %s, want %s", got, c.want)
			}
		})
	}
}

// applyWrites applies ws in order, checking which are ignored as older, and returns
// the last store ticket.
func applyWrites(t *testing.T, r session.RetainedStore, ws []write) uint64 {
	t.Helper()
	var last uint64
	for i, w := range ws {
		ticket, err := r.Set(w.msg())
		if older := session.IsOlder(err); older != w.older || err != nil && !older {
			t.Fatalf("write %d %+v: err %v, want older=%v", i, w, err, w.older)
		}
		last = max(last, ticket)
	}
	return last
}

// TestRetainedTombstoneInvisible: tombstones are never matched by a subscription
// filter nor counted; Each visits messages and tombstones alike, '$' topics included
// (a snapshot must carry them all).
func TestRetainedTombstoneInvisible(t *testing.T) {
	r := session.NewMemoryRetained()
	applyWrites(t, r, []write{
		{"a/kept", "v", 1, false},
		{"a/gone", "v", 1, false},
		{"a/gone", "", 2, false},
		{"$app/kept", "v", 3, false},
		{"$app/gone", "", 4, false},
	})
	for _, filter := range []string{"#", "a/#", "a/+", "a/gone", "$app/#", "+/gone"} {
		if got := matchAll(t, r, filter); slices.ContainsFunc(got, func(s string) bool { return s == "a/gone=" || s == "$app/gone=" }) {
			t.Errorf("Match(%q) = %q: a tombstone matched", filter, got)
		}
	}
	if got := matchAll(t, r, "a/#"); !slices.Equal(got, []string{"a/kept=v"}) {
		t.Errorf("Match(a/#) = %q, want [a/kept=v]", got)
	}
	if n := r.Len(); n != 2 {
		t.Errorf("Len() = %d, want 2 (tombstones are not counted)", n)
	}
	var all []string
	r.Each(func(m *session.Message) bool {
		all = append(all, fmt.Sprintf("%s=%s@%d", m.Topic, m.Payload, m.Stamp))
		return true
	})
	slices.Sort(all)
	if want := []string{"$app/gone=@4", "$app/kept=v@3", "a/gone=@2", "a/kept=v@1"}; !slices.Equal(all, want) {
		t.Errorf("Each visited %q, want %q", all, want)
	}
	calls := 0
	r.Each(func(*session.Message) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Each called fn %d times after it returned false, want 1", calls)
	}
}

// TestRetainedTombstoneExpire: ExpireTombstones forgets the tombstones stamped before
// the horizon and only those, on disk too; once a tombstone is gone, an older set of
// its topic applies again (what the retention period trades away).
func TestRetainedTombstoneExpire(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
	r, err := session.OpenRetained(st, storeT0)
	if err != nil {
		t.Fatal(err)
	}
	storeWait(t, st, applyWrites(t, r, []write{
		{"old", "", 10, false},
		{"mid", "", 20, false},
		{"new", "", 30, false},
		{"msg", "v", 5, false},
	}))
	if n := r.ExpireTombstones(25); n != 2 {
		t.Fatalf("ExpireTombstones(25) = %d, want 2", n)
	}
	want := `messages ["msg=v"] len 1 tombstones ["new@30"]`
	if got := retainedState(t, r); got != want {
		t.Fatalf("after expiry: %s, want %s", got, want)
	}
	if n := r.ExpireTombstones(25); n != 0 {
		t.Fatalf("second ExpireTombstones(25) = %d, want 0", n)
	}
	// A message is never expired as a tombstone, whatever its stamp.
	if n := r.ExpireTombstones(1 << 62); n != 1 {
		t.Fatalf("ExpireTombstones(far future) = %d, want 1 (the tombstone of new only)", n)
	}
	ticket, err := r.Set(write{"old", "back", 15, false}.msg())
	if err != nil {
		t.Fatalf("set older than an expired tombstone: %v, want it applied", err)
	}
	storeWait(t, st, ticket)
	st = storeReopen(t, st)
	if r, err = session.OpenRetained(st, storeT0); err != nil {
		t.Fatal(err)
	}
	want = `messages ["msg=v" "old=back"] len 2 tombstones []`
	if got := retainedState(t, r); got != want {
		t.Fatalf("after reopen: %s, want %s (expired tombstones deleted from the file)", got, want)
	}
}

// v1Record is a retained record as releases before stamps wrote it: it ends after
// the PUBLISH.
func v1Record(t *testing.T, topic, payload string) []byte {
	t.Helper()
	pub, err := (&proto.Publish{Topic: topic, Payload: []byte(payload)}).Append(nil, proto.V5)
	if err != nil {
		t.Fatal(err)
	}
	rec := []byte{
		1,                      // record version 1
		0, 0, 0, 0, 0, 0, 0, 0, // expiry, unix nanoseconds: 0, none
		3, 'p', 'u', 'b', // publisher id, uvarint length first
		1, // QoS 1
		1, // retain flag
	}
	rec = binary.AppendUvarint(rec, uint64(len(pub))) // then the message as a 5.0 PUBLISH
	return append(rec, pub...)
}

// TestRetainedOldRecordDecodes: a retained record written before stamps existed
// still decodes and loads, as an unstamped message that any stamped write replaces;
// a record with the stamp after the PUBLISH loads with it.
func TestRetainedOldRecordDecodes(t *testing.T) {
	old := v1Record(t, "old/t", "from v1")
	stamped := binary.BigEndian.AppendUint64(v1Record(t, "old/stamped", "with stamp"), 77) // stamp 77

	m, err := session.UnmarshalMessage(old)
	if err != nil {
		t.Fatalf("UnmarshalMessage(old record): %v", err)
	}
	if m.Topic != "old/t" || string(m.Payload) != "from v1" || m.QoS != 1 || !m.Retain || m.From != "pub" || m.Stamp != 0 || m.Tombstone() {
		t.Fatalf("old record decoded as %+v", m)
	}

	path := filepath.Join(t.TempDir(), "skein.db")
	st := storeOpen(t, path)
	if err := st.Close(); err != nil { // the layout is created; free the file for bbolt
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("retained"))
		if err := b.Put([]byte("old/t"), old); err != nil {
			return err
		}
		return b.Put([]byte("old/stamped"), stamped)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	st = storeOpen(t, path)
	r, err := session.OpenRetained(st, storeT0)
	if err != nil {
		t.Fatalf("OpenRetained with old records: %v", err)
	}
	var got []string
	r.Each(func(m *session.Message) bool {
		got = append(got, fmt.Sprintf("%s=%s@%d", m.Topic, m.Payload, m.Stamp))
		return true
	})
	slices.Sort(got)
	if want := []string{"old/stamped=with stamp@77", "old/t=from v1@0"}; !slices.Equal(got, want) {
		t.Fatalf("loaded %q, want %q", got, want)
	}
	if _, err := r.Set(write{"old/t", "", 1, false}.msg()); err != nil {
		t.Fatalf("stamped clear of an unstamped old message: %v, want it applied", err)
	}
	if _, err := r.Set(write{"old/stamped", "", 76, true}.msg()); !session.IsOlder(err) {
		t.Fatalf("clear older than a loaded stamp: %v, want IsOlder", err)
	}
	if got, want := retainedState(t, r), `messages ["old/stamped=with stamp"] len 1 tombstones ["old/t@1"]`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
