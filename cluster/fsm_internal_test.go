package cluster

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/skein-mq/skein/route"
)

// TestFSMApplySnapshotRestore: the Raft adapter applies commands (and only
// commands), reports a corrupt one as the entry's response, and a snapshot
// persisted through a Raft snapshot store restores an equal table.
func TestFSMApplySnapshotRestore(t *testing.T) {
	f := &fsm{table: route.NewTable()}
	cmd := route.EncodeChanges([]route.Change{
		{Op: route.OpAdd, Filter: "a/+", Key: route.Key{Node: "n1"}},
		{Op: route.OpAdd, Filter: "b/#", Key: route.Key{Node: "n2", Group: "g"}},
	})
	if res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: cmd}); res != nil {
		t.Fatalf("Apply = %v", res)
	}
	// A configuration entry is not a route command, even if its bytes look like one.
	if res := f.Apply(&raft.Log{Index: 2, Type: raft.LogConfiguration, Data: route.EncodePurgeNode("n1")}); res != nil {
		t.Fatalf("Apply(configuration) = %v", res)
	}
	res := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: cmd[:len(cmd)-2]})
	if err, ok := res.(error); !ok || !errors.Is(err, route.ErrCorrupt) {
		t.Fatalf("Apply(truncated) = %v, want ErrCorrupt", res)
	}
	if f.table.Len() != 2 {
		t.Fatalf("table has %d routes, want 2", f.table.Len())
	}

	store := raft.NewInmemSnapshotStore()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Applied after the snapshot was taken: not in it.
	f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: route.EncodePurgeNode("n2")})
	sink, err := store.Create(raft.SnapshotVersionMax, 3, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	metas, err := store.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("List = %v, %v", metas, err)
	}
	_, rc, err := store.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	g := &fsm{table: route.NewTable()}
	if err := g.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if g.table.Len() != 2 || !g.table.Has("b/#", route.Key{Node: "n2", Group: "g"}) || !g.table.Has("a/+", route.Key{Node: "n1"}) {
		t.Fatalf("restored table: %d routes", g.table.Len())
	}
}
