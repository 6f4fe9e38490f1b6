package session_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/skein-mq/skein/session"
)

// spoolOpen opens a spool on st with cfg.
func spoolOpen(t *testing.T, st *session.Store, cfg session.SpoolConfig) *session.Spool {
	t.Helper()
	sp, err := session.OpenSpool(st, cfg)
	if err != nil {
		t.Fatalf("OpenSpool: %v", err)
	}
	return sp
}

// spoolRead reads every record held for peer.
func spoolRead(t *testing.T, sp *session.Spool, peer string) []session.SpoolRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	recs, err := sp.Read(ctx, peer, 0, 1<<30, 1<<40)
	if err != nil {
		t.Fatalf("Read(%s): %v", peer, err)
	}
	return recs
}

// payloads returns the records' data as strings.
func payloads(recs []session.SpoolRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}

func TestSpoolAppendReadDelete(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
	sp := spoolOpen(t, st, session.DefaultSpoolConfig())
	var seqs []uint64
	for i := 1; i <= 5; i++ {
		seq, _ := sp.Append("n3", fmt.Appendf(nil, "m%d", i))
		seqs = append(seqs, seq)
		sp.Append("n2", fmt.Appendf(nil, "other%d", i)) // interleaved: seqs are shared
	}
	if !slices.IsSorted(seqs) {
		t.Fatalf("seqs not increasing: %v", seqs)
	}
	t.Run("in order from the oldest", func(t *testing.T) {
		if got, want := payloads(spoolRead(t, sp, "n3")), []string{"m1", "m2", "m3", "m4", "m5"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("after a seq, at most n", func(t *testing.T) {
		recs, err := sp.Read(context.Background(), "n3", seqs[1], 2, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if got := payloads(recs); !slices.Equal(got, []string{"m3", "m4"}) || recs[0].Seq != seqs[2] {
			t.Fatalf("got %v (%+v)", got, recs)
		}
	})
	t.Run("byte budget keeps the first", func(t *testing.T) {
		recs, err := sp.Read(context.Background(), "n3", 0, 10, 5)
		if err != nil {
			t.Fatal(err)
		}
		if got := payloads(recs); !slices.Equal(got, []string{"m1", "m2"}) {
			t.Fatalf("5 bytes: got %v", got)
		}
		recs, _ = sp.Read(context.Background(), "n3", 0, 10, 1)
		if got := payloads(recs); !slices.Equal(got, []string{"m1"}) {
			t.Fatalf("1 byte: got %v", got)
		}
	})
	t.Run("delete up to an acknowledged seq", func(t *testing.T) {
		storeWait(t, st, sp.Delete("n3", seqs[2]))
		if got := payloads(spoolRead(t, sp, "n3")); !slices.Equal(got, []string{"m4", "m5"}) {
			t.Fatalf("got %v", got)
		}
		if d, last := sp.Depth("n3"), sp.Last("n3"); d != 2 || last != seqs[4] {
			t.Fatalf("depth %d, last %d (want 2, %d)", d, last, seqs[4])
		}
		if tk := sp.Delete("n3", seqs[2]); tk != 0 {
			t.Fatalf("deleting again wrote (ticket %d)", tk)
		}
		storeWait(t, st, sp.Delete("n3", seqs[4]))
		if got := spoolRead(t, sp, "n3"); len(got) != 0 {
			t.Fatalf("left %v", payloads(got))
		}
		if last := sp.Last("n3"); last != 0 {
			t.Fatalf("last %d with nothing held", last)
		}
		if got := sp.Peers(); !slices.Equal(got, []string{"n2"}) {
			t.Fatalf("peers %v", got)
		}
	})
	t.Run("unknown peer", func(t *testing.T) {
		if got := spoolRead(t, sp, "nobody"); len(got) != 0 || sp.Depth("nobody") != 0 {
			t.Fatalf("got %v", got)
		}
	})
}

func TestSpoolReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st := storeOpen(t, path)
	sp := spoolOpen(t, st, session.DefaultSpoolConfig())
	id := sp.ID()
	var last uint64
	for i := 1; i <= 3; i++ {
		last, _ = sp.Append("n3", fmt.Appendf(nil, "m%d", i))
	}
	gone, _ := sp.Append("n4", []byte("x"))
	sp.Delete("n4", gone)   // n4 held nothing left: its seq must still not come back
	st = storeReopen(t, st) // Close commits what is queued, without any Wait

	sp = spoolOpen(t, st, session.DefaultSpoolConfig())
	if sp.ID() != id {
		t.Fatalf("spool id changed across a reopen: %s, then %s", id, sp.ID())
	}
	if got := sp.Peers(); !slices.Equal(got, []string{"n3"}) {
		t.Fatalf("peers after reopen %v", got)
	}
	if got := payloads(spoolRead(t, sp, "n3")); !slices.Equal(got, []string{"m1", "m2", "m3"}) {
		t.Fatalf("after reopen: %v", got)
	}
	if st := sp.Stats()["n3"]; st.Depth != 3 || st.Bytes != 6 || st.Spooled != 0 {
		t.Fatalf("stats after reopen %+v", st)
	}
	seq, _ := sp.Append("n3", []byte("m4"))
	if seq <= max(last, gone) {
		t.Fatalf("seq %d after reopen reuses one handed out before (%d)", seq, max(last, gone))
	}
	storeWait(t, st, sp.Drop("n3"))
	st = storeReopen(t, st)
	sp = spoolOpen(t, st, session.DefaultSpoolConfig())
	if got := sp.Peers(); len(got) != 0 {
		t.Fatalf("dropped spool came back: %v", got)
	}
	if seq2, _ := sp.Append("n3", []byte("m5")); seq2 <= seq {
		t.Fatalf("seq %d after dropping everything reuses %d", seq2, seq)
	}
}

func TestSpoolBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  session.SpoolConfig
		data []string
		want []string
	}{
		{"messages", session.SpoolConfig{MaxMessages: 3}, []string{"a", "b", "c", "d", "e"}, []string{"c", "d", "e"}},
		{"bytes", session.SpoolConfig{MaxMessages: 100, MaxBytes: 6}, []string{"aa", "bb", "cc", "dd"}, []string{"bb", "cc", "dd"}},
		{"newest kept when alone too big", session.SpoolConfig{MaxMessages: 100, MaxBytes: 2}, []string{"a", "toolarge"}, []string{"toolarge"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "skein.db")
			st := storeOpen(t, path)
			sp := spoolOpen(t, st, tc.cfg)
			for _, d := range tc.data {
				sp.Append("n3", []byte(d))
			}
			if got := payloads(spoolRead(t, sp, "n3")); !slices.Equal(got, tc.want) {
				t.Fatalf("held %v, want %v", got, tc.want)
			}
			stats := sp.Stats()["n3"]
			if wantDropped := uint64(len(tc.data) - len(tc.want)); stats.Dropped != wantDropped || stats.Depth != len(tc.want) || stats.Spooled != uint64(len(tc.data)) {
				t.Fatalf("stats %+v, want %d dropped, depth %d", stats, wantDropped, len(tc.want))
			}
			// The drops are on disk too.
			st = storeReopen(t, st)
			sp = spoolOpen(t, st, tc.cfg)
			if got := payloads(spoolRead(t, sp, "n3")); !slices.Equal(got, tc.want) {
				t.Fatalf("after reopen held %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("lowered bound at open", func(t *testing.T) {
		st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
		sp := spoolOpen(t, st, session.DefaultSpoolConfig())
		for i := range 10 {
			sp.Append("n3", fmt.Appendf(nil, "m%d", i))
		}
		st = storeReopen(t, st)
		sp = spoolOpen(t, st, session.SpoolConfig{MaxMessages: 4})
		if got := payloads(spoolRead(t, sp, "n3")); !slices.Equal(got, []string{"m6", "m7", "m8", "m9"}) {
			t.Fatalf("held %v", got)
		}
		if d := sp.Stats()["n3"].Dropped; d != 6 {
			t.Fatalf("dropped %d, want 6", d)
		}
	})
	t.Run("config errors", func(t *testing.T) {
		st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
		for _, cfg := range []session.SpoolConfig{{MaxMessages: 0}, {MaxMessages: 1, MaxBytes: -1}} {
			if _, err := session.OpenSpool(st, cfg); err == nil {
				t.Fatalf("OpenSpool(%+v) accepted", cfg)
			}
		}
	})
}

// TestSpoolConcurrent appends from several goroutines while one reads and deletes,
// as forwarding does: every record is read once, in seq order.
func TestSpoolConcurrent(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
	sp := spoolOpen(t, st, session.DefaultSpoolConfig())
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				sp.Append("n3", fmt.Appendf(nil, "w%d-%d", w, i))
			}
		})
	}
	seen := map[string]bool{}
	var after uint64
	ctx := context.Background()
	for len(seen) < writers*each {
		recs, err := sp.Read(ctx, "n3", after, 64, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Seq <= after {
				t.Fatalf("seq %d after %d", r.Seq, after)
			}
			after = r.Seq
			if seen[string(r.Data)] {
				t.Fatalf("%s read twice", r.Data)
			}
			seen[string(r.Data)] = true
		}
		if len(recs) > 0 {
			sp.Delete("n3", after)
		}
	}
	wg.Wait()
	storeWait(t, st, sp.Delete("n3", after))
	if d := sp.Depth("n3"); d != 0 {
		t.Fatalf("depth %d at the end", d)
	}
}

// TestSpoolCorruptKey: a record key that is not a seq fails the open with a message
// naming the file, instead of losing the records.
func TestSpoolCorruptKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st := storeOpen(t, path)
	sp := spoolOpen(t, st, session.DefaultSpoolConfig())
	storeWait(t, st, func() uint64 { _, tk := sp.Append("n3", []byte("x")); return tk }())
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("spool")).Bucket([]byte("n3")).Put([]byte("bad"), []byte("y"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	st = storeOpen(t, path)
	if _, err := session.OpenSpool(st, session.DefaultSpoolConfig()); err == nil {
		t.Fatal("a corrupt spool record key was accepted")
	} else if !strings.Contains(err.Error(), path) {
		t.Fatalf("error does not name the file: %v", err)
	}
}
