package node_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// TestStoreRetainedTombstones: a replicated clear (what another cluster node sends)
// stays as a tombstone that no subscriber, count or admin listing sees, that an older
// replicated set loses to and a newer one replaces, and that EachRetained hands to a
// node catching up.
func TestStoreRetainedTombstones(t *testing.T) {
	t.Parallel()
	st, err := session.OpenStore(filepath.Join(t.TempDir(), "skein.db"), session.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() }) // after the broker's shutdown (cleanups run last first)
	cfg := node.DefaultConfig()
	cfg.Store = st
	b := nodetest.Start(t, cfg)
	store := func(payload string, stamp int64) {
		t.Helper()
		m := &session.Message{Topic: "r/t", QoS: 1, Retain: true, Payload: []byte(payload), Stamp: stamp}
		if _, err := b.StoreRetained(m); err != nil {
			t.Fatalf("StoreRetained(%q@%d): %v", payload, stamp, err)
		}
	}
	expectNothingRetained := func(what string) {
		t.Helper()
		if n := b.RetainedCount(); n != 0 {
			t.Errorf("%s: RetainedCount = %d, want 0", what, n)
		}
		if got, err := b.RetainedMessages("#"); err != nil || len(got) != 0 {
			t.Errorf("%s: RetainedMessages(#) = %d messages, %v; want none", what, len(got), err)
		}
		sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
		sub.Subscribe(1, 1, "r/#")
		sub.ExpectNothing(100 * time.Millisecond)
		sub.Disconnect()
	}

	store("v1", 10)
	store("", 20)
	expectNothingRetained("after a newer clear")
	var seen []*session.Message
	_ = b.EachRetained(func(m *session.Message) bool { seen = append(seen, m); return true })
	if len(seen) != 1 || !seen[0].Tombstone() || seen[0].Topic != "r/t" || seen[0].Stamp != 20 {
		t.Fatalf("EachRetained visited %+v, want the tombstone of r/t at 20", seen)
	}

	store("late", 15)
	store("unstamped, from a node before stamps", 0)
	expectNothingRetained("after writes older than the tombstone")

	store("v2", 30)
	if n := b.RetainedCount(); n != 1 {
		t.Fatalf("after a newer set: RetainedCount = %d, want 1", n)
	}
	sub := nodetest.Connect(t, b.Addr, proto.V5, "sub2")
	sub.Subscribe(1, 1, "r/#")
	if p := sub.ExpectPublish("r/t", "v2"); !p.Retain {
		t.Errorf("retained message sent with RETAIN 0 [MQTT-3.3.1-8]")
	}
}
