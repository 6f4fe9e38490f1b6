package cluster

import (
	"slices"
	"testing"

	"github.com/skein-mq/skein/route"
)

// TestRouteBatcherCancelsUndoneChanges: a change undoing a pending one cancels it,
// so a quick unsubscribe and subscribe (or reconnect) never leaves the table without
// the route between two entries; a change being proposed is never touched.
func TestRouteBatcherCancelsUndoneChanges(t *testing.T) {
	add := func(f string) route.Change {
		return route.Change{Op: route.OpAdd, Filter: f, Key: route.Key{Node: "n1"}}
	}
	remove := func(f string) route.Change {
		return route.Change{Op: route.OpRemove, Filter: f, Key: route.Key{Node: "n1"}}
	}
	tests := []struct {
		name    string
		queue   []route.Change
		sending int // how many of queue are taken for proposing before the rest
		more    []route.Change
		want    [][]route.Change // the batches proposed, in order
	}{
		{name: "remove then add", queue: []route.Change{remove("a"), add("a")}, want: nil},
		{name: "add then remove", queue: []route.Change{add("a"), remove("a")}, want: nil},
		{name: "add remove add", queue: []route.Change{add("a"), remove("a"), add("a")},
			want: [][]route.Change{{add("a")}}},
		{name: "other filters stay", queue: []route.Change{add("a"), remove("b"), remove("a"), add("c")},
			want: [][]route.Change{{remove("b"), add("c")}}},
		{name: "a change being proposed is kept", queue: []route.Change{remove("a")}, sending: 1,
			more: []route.Change{add("a")}, want: [][]route.Change{{remove("a")}, {add("a")}}},
		{name: "cancel after a trim", queue: []route.Change{add("x")}, sending: 1,
			more: []route.Change{remove("a"), add("a"), add("b")}, want: [][]route.Change{{add("x")}, {add("b")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			b := newRouteBatcher(&Cluster{cfg: cfg})
			for _, ch := range tc.queue {
				b.add(ch)
			}
			var got [][]route.Change
			propose := func() {
				b.mu.Lock()
				batch, n := b.takeBatchLocked()
				if len(batch) > 0 {
					got = append(got, batch)
				}
				b.trimLocked(n)
				b.mu.Unlock()
			}
			if tc.sending > 0 {
				b.mu.Lock()
				batch, n := b.takeBatchLocked()
				b.mu.Unlock()
				for _, ch := range tc.more {
					b.add(ch) // while the first batch is being proposed
				}
				b.mu.Lock()
				got = append(got, batch)
				b.trimLocked(n)
				b.mu.Unlock()
			}
			propose()
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("proposed %v, want %v", got, tc.want)
			}
			if b.Pending() != 0 || len(b.last) != 0 {
				t.Fatalf("after proposing: %d pending, %d tracked", b.Pending(), len(b.last))
			}
		})
	}
}
