package session_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/skein-mq/skein/session"
)

// TestAppliedMarks: marks survive a reopen, the latest per sender wins, and a file
// without any loads none.
func TestAppliedMarks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st, err := session.OpenStore(path, storeOptions(t))
	noErr(t, "open", err)
	if m, err := st.LoadApplied(); err != nil || len(m) != 0 {
		t.Fatalf("fresh file: marks %v, %v", m, err)
	}
	st.PutApplied("n1", []byte("a"))
	st.PutApplied("n2", []byte("b"))
	tk := st.PutApplied("n1", []byte("c"))
	noErr(t, "wait", st.Wait(context.Background(), tk))
	noErr(t, "close", st.Close())
	st, err = session.OpenStore(path, storeOptions(t))
	noErr(t, "reopen", err)
	defer st.Close()
	m, err := st.LoadApplied()
	noErr(t, "load", err)
	if len(m) != 2 || string(m["n1"]) != "c" || string(m["n2"]) != "b" {
		t.Fatalf("marks after reopen: %q", m)
	}
}
