package route

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func matchKeys(t *Table, topic string) []string {
	var out []string
	t.Match(topic, func(filter string, k Key) bool {
		out = append(out, filter+"->"+k.Node+"/"+k.Group)
		return true
	})
	slices.Sort(out)
	return out
}

func TestTableApply(t *testing.T) {
	tb := NewTable()
	must := func(cmd []byte) {
		t.Helper()
		if err := tb.Apply(cmd); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	must(EncodeChanges([]Change{
		{OpAdd, "a/+", Key{"n1", ""}},
		{OpAdd, "a/#", Key{"n2", ""}},
		{OpAdd, "a/b", Key{"n2", "g"}},
		{OpAdd, "a/+", Key{"n1", ""}}, // again: no duplicate
	}))
	t.Run("match", func(t *testing.T) {
		got := matchKeys(tb, "a/b")
		want := []string{"a/#->n2/", "a/+->n1/", "a/b->n2/g"}
		if !slices.Equal(got, want) {
			t.Fatalf("Match(a/b) = %q, want %q", got, want)
		}
		if tb.Len() != 3 {
			t.Fatalf("Len = %d, want 3", tb.Len())
		}
	})
	t.Run("remove", func(t *testing.T) {
		must(EncodeChanges([]Change{{OpRemove, "a/+", Key{"n1", ""}}}))
		if got := matchKeys(tb, "a/x"); !slices.Equal(got, []string{"a/#->n2/"}) {
			t.Fatalf("after remove: %q", got)
		}
		if tb.Has("a/+", Key{"n1", ""}) {
			t.Fatal("removed route still there")
		}
	})
	t.Run("purge node", func(t *testing.T) {
		must(EncodeChanges([]Change{{OpAdd, "z", Key{"n3", ""}}}))
		must(EncodePurgeNode("n2"))
		if got := matchKeys(tb, "a/b"); len(got) != 0 {
			t.Fatalf("after purge of n2: %q", got)
		}
		counts := tb.NodeCounts()
		if counts["n2"] != 0 || counts["n3"] != 1 {
			t.Fatalf("NodeCounts = %v", counts)
		}
	})
	t.Run("ignorable unknown command", func(t *testing.T) {
		if err := tb.Apply([]byte{200, 1, 2, 3}); err != nil {
			t.Fatalf("ignorable command: %v", err)
		}
	})
	t.Run("unknown command panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("unknown non-ignorable command did not panic")
			}
		}()
		_ = tb.Apply([]byte{99})
	})
	t.Run("truncated command", func(t *testing.T) {
		cmd := EncodeChanges([]Change{{OpAdd, "long/filter", Key{"node", ""}}})
		for i := 1; i < len(cmd); i++ {
			if err := NewTable().Apply(cmd[:i]); err == nil {
				t.Fatalf("truncated at %d: no error", i)
			}
		}
	})
}

// TestTableSnapshotRestore: a restored replica matches exactly like the original,
// and the restore replaces (does not merge with) what the table held.
func TestTableSnapshotRestore(t *testing.T) {
	a := NewTable()
	var changes []Change
	for i, f := range []string{"a/#", "b/+/c", "c", "$SYS/#", "d/e"} {
		node := []string{"n1", "n2", "n3"}[i%3]
		changes = append(changes, Change{OpAdd, f, Key{node, ""}}, Change{OpAdd, f, Key{node, "grp"}})
	}
	if err := a.Apply(EncodeChanges(changes)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := a.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	// Changes after the snapshot must not leak into it.
	if err := a.Apply(EncodeChanges([]Change{{OpAdd, "late", Key{"n1", ""}}})); err != nil {
		t.Fatal(err)
	}
	b := NewTable()
	_ = b.Apply(EncodeChanges([]Change{{OpAdd, "stale", Key{"old", ""}}}))
	if err := b.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"a/x", "b/q/c", "c", "$SYS/x", "d/e", "late", "stale"} {
		want := matchKeys(a, topic)
		if topic == "late" {
			want = nil
		}
		if got := matchKeys(b, topic); !slices.Equal(got, want) {
			t.Fatalf("topic %q: restored %q, original %q", topic, got, want)
		}
	}
	if b.Len() != 10 {
		t.Fatalf("restored Len = %d, want 10", b.Len())
	}
	if err := NewTable().Restore(strings.NewReader("\x07junk")); err == nil {
		t.Fatal("restore of an unknown format: no error")
	}
}

// TestTableNodeRoutes: a node's routes as NodeRoutes and NodeLen report them
// follow adds, removes, purges and restores.
func TestTableNodeRoutes(t *testing.T) {
	tb := NewTable()
	must := func(cmd []byte) {
		t.Helper()
		if err := tb.Apply(cmd); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	routes := func(node string) []string {
		var out []string
		for _, c := range tb.NodeRoutes(node) {
			if c.Op != OpAdd || c.Key.Node != node {
				t.Fatalf("NodeRoutes(%s) gave %+v", node, c)
			}
			out = append(out, c.Filter+"/"+c.Key.Group)
		}
		slices.Sort(out)
		if len(out) != tb.NodeLen(node) {
			t.Fatalf("NodeLen(%s) = %d, NodeRoutes has %d", node, tb.NodeLen(node), len(out))
		}
		return out
	}
	must(EncodeChanges([]Change{
		{OpAdd, "a", Key{"n1", ""}}, {OpAdd, "a", Key{"n1", "g"}}, {OpAdd, "b/#", Key{"n1", ""}},
		{OpAdd, "a", Key{"n2", ""}},
	}))
	if got, want := routes("n1"), []string{"a/", "a/g", "b/#/"}; !slices.Equal(got, want) {
		t.Fatalf("n1 routes %q, want %q", got, want)
	}
	must(EncodeChanges([]Change{{OpRemove, "a", Key{"n1", "g"}}}))
	if got, want := routes("n1"), []string{"a/", "b/#/"}; !slices.Equal(got, want) {
		t.Fatalf("after remove: %q, want %q", got, want)
	}
	var buf bytes.Buffer
	if _, err := tb.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	must(EncodePurgeNode("n1"))
	if got := routes("n1"); len(got) != 0 {
		t.Fatalf("after purge: %q", got)
	}
	if got := routes("n2"); !slices.Equal(got, []string{"a/"}) {
		t.Fatalf("purge of n1 touched n2: %q", got)
	}
	if err := tb.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got, want := routes("n1"), []string{"a/", "b/#/"}; !slices.Equal(got, want) {
		t.Fatalf("after restore: %q, want %q", got, want)
	}
	if got := routes("nobody"); len(got) != 0 {
		t.Fatalf("unknown node: %q", got)
	}
}

// TestTableSnapshotAlongsideApply: snapshots taken and written while changes are
// applied (as Raft does: Persist runs alongside Apply) each restore to a state the
// table was in, never a mix; run with -race.
func TestTableSnapshotAlongsideApply(t *testing.T) {
	tb := NewTable()
	const n = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			// Each command adds route i and removes route i-1: the table always
			// holds exactly one route of n1 between commands.
			cmd := []Change{{OpAdd, "f/" + strconv.Itoa(i), Key{"n1", ""}}}
			if i > 0 {
				cmd = append(cmd, Change{OpRemove, "f/" + strconv.Itoa(i-1), Key{"n1", ""}})
			}
			if err := tb.Apply(EncodeChanges(cmd)); err != nil {
				panic(err) // not t.Fatal: another goroutine
			}
		}
	}()
	snaps := 0
	for running := true; running; snaps++ {
		select {
		case <-done:
			running = false
		default:
		}
		s := tb.Snapshot()
		var buf bytes.Buffer
		if _, err := s.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		r := NewTable()
		if err := r.Restore(&buf); err != nil {
			t.Fatal(err)
		}
		if l := r.Len(); l > 1 {
			t.Fatalf("snapshot %d holds %d routes: a command was split", snaps, l)
		}
	}
	if tb.Len() != 1 || !tb.Has("f/"+strconv.Itoa(n-1), Key{"n1", ""}) {
		t.Fatalf("final table: %d routes", tb.Len())
	}
}
