package cluster

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/skein-mq/skein/route"
)

// fsm adapts the route table to Raft. Apply returns the table's error as the log
// entry's response; a command that does not decode is a bug in the writer, and the
// table panics on a command type it cannot follow.
type fsm struct {
	table *route.Table
}

func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if err := f.table.Apply(l.Data); err != nil {
		return fmt.Errorf("apply route command at index %d: %w", l.Index, err)
	}
	return nil
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{s: f.table.Snapshot()}, nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	return f.table.Restore(r)
}

// fsmSnapshot writes a point-in-time copy of the table; Persist runs alongside
// Apply, on a copy taken under the table's lock.
type fsmSnapshot struct{ s *route.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel() // the write error is the one to report
		return fmt.Errorf("persist route snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
