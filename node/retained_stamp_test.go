package node_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// TestRetainedStampClockSurvivesRestart: a node that stored a retained message
// stamped by a node whose clock runs 30 s ahead, and overwrote it (its clock moved
// past that stamp), overwrites it again after a restart. Its stamp clock started
// from zero again, so the new write was stamped with its own (behind) clock, lost
// to the stored one, and was dropped though its publisher got PUBACK.
func TestRetainedStampClockSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	base := time.Now()
	run := func(fn func(b *node.Broker, addr string)) {
		st, err := session.OpenStore(path, session.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := node.DefaultConfig()
		cfg.Store = st
		cfg.Cluster = &heldTakeOver{} // a cluster member: retained writes are stamped
		cfg.Now = func() time.Time { return base }
		b, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = b.Serve(ln) }()
		fn(b, ln.Addr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Shutdown(ctx)
		<-done
		_ = st.Close()
	}
	latest := func(addr, id string) string {
		sub := nodetest.Connect(t, addr, proto.V5, id)
		sub.Subscribe(1, 1, "r/t")
		p := nodetest.Expect[*proto.Publish](sub)
		sub.Disconnect()
		return string(p.Payload)
	}
	ahead := base.Add(30 * time.Second).UnixNano()
	run(func(b *node.Broker, addr string) {
		if _, err := b.StoreRetained(&session.Message{Topic: "r/t", Retain: true, QoS: 1, Payload: []byte("from the node ahead"), Stamp: ahead}); err != nil {
			t.Fatal(err)
		}
		pub := nodetest.Connect(t, addr, proto.V5, "pub1")
		pub.Publish(&proto.Publish{Topic: "r/t", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("before the restart")})
		if got := latest(addr, "sub1"); got != "before the restart" {
			t.Fatalf("retained before the restart: %q", got)
		}
	})
	run(func(b *node.Broker, addr string) {
		pub := nodetest.Connect(t, addr, proto.V5, "pub2")
		pub.Publish(&proto.Publish{Topic: "r/t", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("after the restart")})
		if got := latest(addr, "sub2"); got != "after the restart" {
			t.Fatalf("the acknowledged retained write after the restart was dropped: subscribers get %q", got)
		}
	})
}

// TestRetainedMessageCompleteWhenStored: in a cluster a retained message gets its
// id before the retained store holds it; it was set after, while a peer's snapshot
// could already read it (a data race, seen with -race).
func TestRetainedMessageCompleteWhenStored(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.Cluster = &heldTakeOver{}
	b := nodetest.Start(t, cfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
		for i := range 300 {
			pub.Send(&proto.Publish{Topic: "r/t", Retain: true, Payload: fmt.Appendf(nil, "%d", i)})
		}
		pub.Send(&proto.Pingreq{})
		nodetest.Expect[*proto.Pingresp](pub)
	}()
	stop := make(chan struct{})
	snap := make(chan int)
	go func() { // what a snapshot for a peer's catch-up does
		withoutID := 0
		defer func() { snap <- withoutID }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = b.EachRetained(func(m *session.Message) bool {
				if m.ID.IsZero() {
					withoutID++ // stored before it was complete
				}
				if _, err := session.MarshalMessage(m); err != nil {
					t.Errorf("encode a stored retained message: %v", err)
				}
				return true
			})
		}
	}()
	wg.Wait()
	close(stop)
	if n := <-snap; n > 0 {
		t.Errorf("a snapshot saw %d stored retained messages without their id", n)
	}
	var ids int
	_ = b.EachRetained(func(m *session.Message) bool {
		if !m.ID.IsZero() {
			ids++
		}
		return true
	})
	if ids != 1 {
		t.Fatalf("%d stored retained messages with an id, want 1", ids)
	}
}
