package session

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestFailedCommitNeverReportedDurable: once a commit failed (here a write past the
// file's size limit; ENOSPC or EIO in production), a wait for one of its tickets
// fails, also after later writes committed. The committer counted the later
// batches on top of the failed one, so its tickets came to look durable though
// their records were rolled back.
func TestFailedCommitNeverReportedDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := initLayout(db); err != nil {
		t.Fatal(err)
	}
	st := &Store{db: db, c: newCommitter(db, slog.New(slog.NewTextHandler(io.Discard, nil))), path: path}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := st.Wait(ctx, st.putMeta("c", sessionMeta{expiry: 60})); err != nil {
		t.Fatalf("a first small write: %v", err)
	}
	big := st.put("c", bucketSubs, []byte("big"), make([]byte, 4<<20))
	if err := st.Wait(ctx, big); err == nil {
		t.Fatal("a write past the size limit reported durable")
	}
	for i := range 3 {
		st.put("c", bucketSubs, []byte{byte(i)}, []byte{1})
	}
	// A wait fails at once after a failure: wait for the three to be committed.
	for st.c.Writes.Load() < 5 {
		if ctx.Err() != nil {
			t.Fatalf("only %d of 5 writes went through a commit", st.c.Writes.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if err := st.Wait(ctx, big); err == nil {
		t.Fatalf("after later writes, the failed write's ticket %d is reported durable", big)
	}
}
