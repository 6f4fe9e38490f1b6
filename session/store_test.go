package session_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// storeTimeout bounds every wait in these tests.
const storeTimeout = 10 * time.Second

// storeOutbox is a fake connection: it records what the session pushes.
type storeOutbox struct {
	mu  sync.Mutex // guards got
	got []session.Outgoing
}

func (o *storeOutbox) Push(out session.Outgoing) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, out)
	return true
}

// take returns what was pushed since the last take.
func (o *storeOutbox) take() []session.Outgoing {
	o.mu.Lock()
	defer o.mu.Unlock()
	got := o.got
	o.got = nil
	return got
}

// storeLogWriter sends the store's log lines to t.Log; lines after the test ended
// are dropped.
type storeLogWriter struct{ t testing.TB }

func (w storeLogWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // t.Log panics once the test has completed
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func storeOptions(t testing.TB) session.StoreOptions {
	return session.StoreOptions{
		Logger:      slog.New(slog.NewTextHandler(storeLogWriter{t}, nil)),
		LockTimeout: time.Second,
	}
}

// storeOpen opens the store at path and closes it when the test ends (closing an
// already closed store is harmless).
func storeOpen(t testing.TB, path string) *session.Store {
	t.Helper()
	st, err := session.OpenStore(path, storeOptions(t))
	if err != nil {
		t.Fatalf("OpenStore(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = st.Close() }) // the test closed it already, or it is idle
	return st
}

// storeReopen closes st, as a broker does when it stops, and opens its file again.
func storeReopen(t testing.TB, st *session.Store) *session.Store {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return storeOpen(t, st.Path())
}

func storeWait(t testing.TB, st *session.Store, ticket uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := st.Wait(ctx, ticket); err != nil {
		t.Fatalf("Wait(%d): %v", ticket, err)
	}
}

func storeLoad(t testing.TB, st *session.Store, cfg session.Config, now time.Time) []session.Restored {
	t.Helper()
	restored, err := st.LoadSessions(cfg, now)
	if err != nil {
		t.Fatalf("LoadSessions: %v", err)
	}
	return restored
}

// storeLoadIDs returns the client ids of the stored sessions.
func storeLoadIDs(t testing.TB, st *session.Store) map[string]*session.Session {
	t.Helper()
	ids := map[string]*session.Session{}
	for _, r := range storeLoad(t, st, session.DefaultConfig(), storeT0) {
		ids[r.Session.ClientID] = r.Session
	}
	return ids
}

// storeReadFormat reads the stored format version with bbolt itself.
func storeReadFormat(t *testing.T, path string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open(%s): %v", path, err)
	}
	defer db.Close()
	var v []byte
	_ = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("meta")); b != nil {
			v = append([]byte(nil), b.Get([]byte("format"))...)
		}
		return nil
	})
	return v
}

// storeWriteFormat creates a bbolt file with meta/format = v, as a newer (or broken)
// release would have left it.
func storeWriteFormat(t *testing.T, path string, v []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open(%s): %v", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("format"), v)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("write format %v: %v", v, err)
	}
}

func TestStoreFormatVersion(t *testing.T) {
	t.Run("new file stores the format", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sub", "dir", "skein.db") // missing directories are created
		st := storeOpen(t, path)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if got := storeReadFormat(t, path); len(got) != 1 || got[0] != session.FormatVersion {
			t.Fatalf("meta/format = %v, want [%d]", got, session.FormatVersion)
		}
		storeOpen(t, path) // and a file of this format opens again
	})
	for _, c := range []struct {
		name   string
		format []byte
		want   string
	}{
		{"newer format refused", []byte{session.FormatVersion + 1}, "newer"},
		{"much newer format refused", []byte{255}, "newer"},
		{"malformed format refused", []byte{session.FormatVersion, 0}, "format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "skein.db")
			storeWriteFormat(t, path, c.format)
			st, err := session.OpenStore(path, storeOptions(t))
			if err == nil {
				st.Close()
				t.Fatalf("OpenStore of a file with format %v succeeded", c.format)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("OpenStore error %q: want it to name the file and say %q", err, c.want)
			}
			if got := storeReadFormat(t, path); string(got) != string(c.format) {
				t.Errorf("the refused file's format was rewritten to %v", got)
			}
		})
	}
}

func TestStoreLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st := storeOpen(t, path)
	start := time.Now()
	other, err := session.OpenStore(path, session.StoreOptions{LockTimeout: 200 * time.Millisecond})
	elapsed := time.Since(start)
	if err == nil {
		other.Close()
		t.Fatal("a second OpenStore of a file in use succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q: want it to name the file and say it is locked by another process", err)
	}
	if elapsed > 5*time.Second {
		t.Errorf("OpenStore took %v to give up with LockTimeout 200ms", elapsed)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	storeOpen(t, path) // the lock went with the first store
}

// storePopulate fills a store at path with sessions, deliveries and retained
// messages, in few transactions so that the live data fills most of the file.
func storePopulate(t *testing.T, path string) {
	t.Helper()
	st := storeOpen(t, path)
	r, err := session.OpenRetained(st, storeT0)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	payload := []byte(strings.Repeat("x", 400))
	for i := range 200 {
		s := session.New(fmt.Sprintf("client-%03d", i), session.DefaultConfig())
		s.SetExpiry(3600)
		s.Persist(st)
		s.Subscribe(session.Subscription{Subscription: proto.Subscription{Filter: fmt.Sprintf("t/%d/#", i), QoS: 1}})
		for j := range 20 {
			s.Deliver(session.Delivery{Msg: &session.Message{Topic: fmt.Sprintf("t/%d/%d", i, j), Payload: payload}, QoS: 1 + byte(j%2)}, storeT0)
		}
		last = max(last, s.Ticket())
		ticket, err := r.Set(&session.Message{Topic: fmt.Sprintf("r/%d", i), Payload: payload, Retain: true})
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, ticket)
	}
	storeWait(t, st, last)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// storeUsedSize returns the bytes of the file bbolt uses (its high-water mark) and
// the offset of the freelist page the newest meta page points at.
func storeUsedSize(t *testing.T, path string) (used, freelistAt int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		used = tx.Size()
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			if p.Type == "freelist" {
				freelistAt = int64(id) * int64(db.Info().PageSize)
			}
			id += p.OverflowCount
		}
	})
	if err != nil || freelistAt == 0 {
		t.Fatalf("read the file's layout: %v (freelist page at %d)", err, freelistAt)
	}
	return used, freelistAt
}

// storeDamagedEnv names the damaged file TestStoreDamagedFileHelper opens.
const storeDamagedEnv = "SKEIN_TEST_STORE_DAMAGED_FILE"

// TestStoreDamagedFileHelper is not a test: TestStoreDamagedFile runs it in a child
// process, so that a fault (a read past the end of a truncated, memory-mapped file
// is a SIGBUS, which recover cannot catch) shows as a failure instead of killing the
// whole test binary.
func TestStoreDamagedFileHelper(t *testing.T) {
	path := os.Getenv(storeDamagedEnv)
	if path == "" {
		t.Skip("helper process of TestStoreDamagedFile")
	}
	fmt.Printf("RESULT: %v\n", storeOpenEverything(path))
}

// storeOpenEverything opens the store and reads everything a broker reads at start.
// A panic that escapes the store is reported as "PANIC".
func storeOpenEverything(path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PANIC escaped the store: %v", r)
		}
	}()
	st, err := session.OpenStore(path, session.StoreOptions{LockTimeout: time.Second})
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.LoadSessions(session.DefaultConfig(), storeT0); err != nil {
		return err
	}
	_, err = session.OpenRetained(st, storeT0)
	return err
}

func TestStoreDamagedFile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, garbage(64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"short garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a skein file"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated to half its size", func(t *testing.T, path string) {
			storePopulate(t, path)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			used, _ := storeUsedSize(t, path)
			if fi.Size()/2 >= used {
				t.Fatalf("half the file (%d) keeps every used page (%d): not a damaged file", fi.Size()/2, used)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated to half its used pages", func(t *testing.T, path string) {
			storePopulate(t, path)
			used, _ := storeUsedSize(t, path)
			if err := os.Truncate(path, used/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated at the freelist page", func(t *testing.T, path string) {
			// What a crash while the file grows, or a copy cut short, leaves: the
			// meta pages point past the end of the file.
			storePopulate(t, path)
			_, freelistAt := storeUsedSize(t, path)
			if err := os.Truncate(path, freelistAt); err != nil {
				t.Fatal(err)
			}
		}},
		{"pages overwritten after the meta pages", func(t *testing.T, path string) {
			storePopulate(t, path)
			used, _ := storeUsedSize(t, path)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(garbage(int(used-8192)), 8192); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "skein.db")
			c.damage(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStoreDamagedFileHelper$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), storeDamagedEnv+"="+path)
			out, err := cmd.CombinedOutput()
			text := string(out)
			if err != nil || strings.Contains(text, "panic:") || strings.Contains(text, "fatal error") || strings.Contains(text, "PANIC") {
				t.Fatalf("opening the damaged file crashed (exit: %v); it must fail with an error instead:\n%s", err, storeHead(text, 40))
			}
			i := strings.Index(text, "RESULT: ")
			if i < 0 {
				t.Fatalf("helper printed no result:\n%s", text)
			}
			result, _, _ := strings.Cut(text[i+len("RESULT: "):], "\n")
			if result == "<nil>" {
				t.Fatalf("the damaged file opened and loaded without an error")
			}
			if !strings.Contains(result, path) {
				t.Errorf("error %q does not name the file", result)
			}
			t.Logf("error: %s", result)
		})
	}
}

// storeHead returns the first n lines of s.
func storeHead(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

func TestStoreWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st := storeOpen(t, path)
	if err := st.Wait(context.Background(), 0); err != nil {
		t.Fatalf("Wait(0) = %v: ticket 0 is always durable", err)
	}
	s := session.New("c1", session.DefaultConfig())
	s.SetExpiry(60)
	s.Persist(st)
	s.Subscribe(session.Subscription{Subscription: proto.Subscription{Filter: "waited/for", QoS: 1}})
	ticket := s.Ticket()
	if ticket == 0 {
		t.Fatal("a persistent session's write returned ticket 0")
	}
	storeWait(t, st, ticket)

	// Once Wait returned, the write is in the file: a copy taken now, which is what
	// a kill -9 at this moment leaves behind, has it.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	snap := storeLoadIDs(t, storeOpen(t, copyPath))
	if s := snap["c1"]; s == nil || len(s.Subscriptions()) != 1 || s.Subscriptions()[0].Filter != "waited/for" {
		t.Fatalf("the file after Wait has sessions %v, want c1 with its subscription", snap)
	}

	// A write never made is never durable: Wait gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := st.Wait(ctx, ticket+1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait(future ticket) = %v, want context.DeadlineExceeded", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Wait(context.Background(), ticket+1000); !errors.Is(err, session.ErrStoreClosed) {
		t.Errorf("Wait(future ticket) after Close = %v, want ErrStoreClosed", err)
	}
	if err := st.Wait(context.Background(), ticket); err != nil {
		t.Errorf("Wait(durable ticket) after Close = %v, want nil", err)
	}
}

func TestStoreCloseCommitsQueuedWrites(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
	s := session.New("c1", session.Config{MaxInflight: 10, MaxQueued: 1000})
	s.SetExpiry(60)
	s.Persist(st)
	for i := range 500 {
		s.Deliver(storeDelivery(fmt.Sprintf("t/%d", i), 1), storeT0) // never waited for
	}
	st = storeReopen(t, st)
	ids := storeLoadIDs(t, st)
	if s := ids["c1"]; s == nil {
		t.Fatal("session written before Close is gone")
	} else if _, queued, _ := s.Counts(); queued != 500 {
		t.Fatalf("restored %d queued messages, want the 500 written before Close", queued)
	}
}

func TestStoreGroupCommit(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
	const writers, each = 32, 20
	sessions := make([]*session.Session, writers)
	for i := range sessions {
		s := session.New(fmt.Sprintf("c%d", i), session.DefaultConfig())
		s.SetExpiry(60)
		s.Persist(st)
		storeWait(t, st, s.Ticket())
		sessions[i] = s
	}
	batches0, writes0 := st.CommitStats()
	start := make(chan struct{})
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			defer cancel()
			for j := range each {
				s.Subscribe(session.Subscription{Subscription: proto.Subscription{Filter: fmt.Sprintf("f/%d", j), QoS: 1}})
				if err := st.Wait(ctx, s.Ticket()); err != nil {
					errs <- fmt.Errorf("%s: Wait: %w", s.ClientID, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	batches1, writes1 := st.CommitStats()
	batches, writes := batches1-batches0, writes1-writes0
	t.Logf("%d writes in %d batches (%.1f per batch)", writes, batches, float64(writes)/float64(batches))
	if writes != writers*each {
		t.Errorf("CommitStats counted %d writes, want %d", writes, writers*each)
	}
	if batches >= writes {
		t.Errorf("%d concurrent writes took %d commits: no group commit", writes, batches)
	}

	st = storeReopen(t, st)
	for id, s := range storeLoadIDs(t, st) {
		if n := len(s.Subscriptions()); n != each {
			t.Errorf("%s restored with %d subscriptions, want %d", id, n, each)
		}
	}
}

func TestStoreUnpersist(t *testing.T) {
	st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
	var sessions []*session.Session
	for _, id := range []string{"gone", "kept"} {
		s := session.New(id, session.DefaultConfig())
		s.SetExpiry(60)
		s.Persist(st)
		s.Subscribe(session.Subscription{Subscription: proto.Subscription{Filter: "a", QoS: 1}})
		s.Deliver(storeDelivery("a", 1), storeT0)
		if _, err := s.ReceiveQoS2(5, 0); err != nil {
			t.Fatal(err)
		}
		storeWait(t, st, s.Ticket())
		sessions = append(sessions, s)
	}
	gone := sessions[0]
	gone.Unpersist()
	if gone.Persistent() {
		t.Fatal("Persistent() after Unpersist")
	}
	storeWait(t, st, gone.Ticket())

	// An ended session writes nothing more.
	_, writes0 := st.CommitStats()
	gone.Subscribe(session.Subscription{Subscription: proto.Subscription{Filter: "b", QoS: 1}})
	gone.Deliver(storeDelivery("a", 2), storeT0)
	_, _ = gone.ReceiveQoS2(6, 0)
	gone.Release(5)
	if t1 := gone.Ticket(); t1 != 0 {
		storeWait(t, st, t1)
	}
	if _, writes1 := st.CommitStats(); writes1 != writes0 {
		t.Errorf("a session no longer persistent made %d store writes", writes1-writes0)
	}

	st = storeReopen(t, st)
	ids := storeLoadIDs(t, st)
	if _, ok := ids["gone"]; ok || len(ids) != 1 || ids["kept"] == nil {
		t.Fatalf("stored sessions after Unpersist: %v, want kept only", ids)
	}
	if _, queued, _ := ids["kept"].Counts(); queued != 1 {
		t.Errorf("kept session restored with %d queued, want 1", queued)
	}
}

func TestStoreQueueBounds(t *testing.T) {
	// Messages of 10 bytes of topic and payload ("q" + 9 bytes): a bound of 30 bytes
	// holds three.
	ten := func(i int) session.Delivery {
		return session.Delivery{Msg: &session.Message{Topic: "q", Payload: fmt.Appendf(nil, "payload-%d", i)}, QoS: 1}
	}
	cases := []struct {
		name string
		cfg  session.Config
		send []session.Delivery
		want []session.DropReason
		// kept is the payloads left in the queue, in order; drops is Counts' drops.
		kept  []string
		drops uint64
	}{
		{
			name: "bytes bound drops newest",
			cfg:  session.Config{MaxInflight: 10, MaxQueued: 100, MaxQueuedBytes: 30},
			send: []session.Delivery{ten(1), ten(2), ten(3), ten(4), ten(5)},
			want: []session.DropReason{0, 0, 0, session.DropQueueFull, session.DropQueueFull},
			kept: []string{"payload-1", "payload-2", "payload-3"}, drops: 2,
		},
		{
			name: "bytes bound drops oldest",
			cfg:  session.Config{MaxInflight: 10, MaxQueued: 100, MaxQueuedBytes: 30, DropOldest: true},
			send: []session.Delivery{ten(1), ten(2), ten(3), ten(4), ten(5)},
			want: []session.DropReason{0, 0, 0, 0, 0},
			kept: []string{"payload-3", "payload-4", "payload-5"}, drops: 2,
		},
		{
			name: "drop oldest frees enough bytes for a larger message",
			cfg:  session.Config{MaxInflight: 10, MaxQueued: 100, MaxQueuedBytes: 30, DropOldest: true},
			send: []session.Delivery{ten(1), ten(2), ten(3), {Msg: &session.Message{Topic: "q", Payload: []byte("nineteen-bytes-long")}, QoS: 2}},
			want: []session.DropReason{0, 0, 0, 0},
			kept: []string{"payload-3", "nineteen-bytes-long"}, drops: 2,
		},
		{
			// A message that can never fit must not empty the queue on its way to
			// being dropped: that loses every queued message for nothing.
			name: "drop oldest keeps the queue for a message over the bound",
			cfg:  session.Config{MaxInflight: 10, MaxQueued: 100, MaxQueuedBytes: 30, DropOldest: true},
			send: []session.Delivery{ten(1), ten(2), ten(3), {Msg: &session.Message{Topic: "q", Payload: []byte(strings.Repeat("x", 40))}, QoS: 1}},
			want: []session.DropReason{0, 0, 0, session.DropQueueFull},
			kept: []string{"payload-1", "payload-2", "payload-3"}, drops: 1,
		},
		{
			name: "count bound drops oldest",
			cfg:  session.Config{MaxInflight: 10, MaxQueued: 2, DropOldest: true},
			send: []session.Delivery{ten(1), ten(2), ten(3)},
			want: []session.DropReason{0, 0, 0},
			kept: []string{"payload-2", "payload-3"}, drops: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := storeOpen(t, filepath.Join(t.TempDir(), "skein.db"))
			s := session.New("c1", c.cfg)
			s.SetExpiry(60)
			s.Persist(st) // offline: everything queues
			for i, d := range c.send {
				if got := s.Deliver(d, storeT0); got != c.want[i] {
					t.Errorf("Deliver #%d (%d bytes) = %v, want %v", i+1, len(d.Msg.Topic)+len(d.Msg.Payload), got, c.want[i])
				}
			}
			if _, queued, drops := s.Counts(); queued != len(c.kept) || drops != c.drops {
				t.Errorf("Counts: queued %d, drops %d; want %d, %d", queued, drops, len(c.kept), c.drops)
			}
			storeWait(t, st, s.Ticket())

			// Dropped messages are gone from disk too; the kept ones come back in order.
			st = storeReopen(t, st)
			restored := storeLoad(t, st, c.cfg, storeT0)
			if len(restored) != 1 {
				t.Fatalf("LoadSessions = %d sessions", len(restored))
			}
			out := &storeOutbox{}
			restored[0].Session.Attach(out, 0, storeT0)
			var got []string
			for _, o := range out.take() {
				got = append(got, string(o.Msg.Payload))
			}
			if strings.Join(got, ",") != strings.Join(c.kept, ",") {
				t.Errorf("after a restart the queue holds %q, want %q", got, c.kept)
			}
		})
	}
}
