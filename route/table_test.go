package route

import (
	"bytes"
	"slices"
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
