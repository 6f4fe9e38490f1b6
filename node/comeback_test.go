package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// heldTakeOver is the cluster as one node sees it while it takes a session back
// from the node the session went to: its TakeOver waits until the test lets it
// return the session, and what the node relays is recorded. A real cluster cannot
// hold the node at that point; the window is as long as the other node's route
// takes to reach this node's replica, a few milliseconds.
type heldTakeOver struct {
	mu      sync.Mutex
	state   []byte        // the session TakeOver returns, once hold was called
	entered chan struct{} // closed when TakeOver is called after hold
	release chan struct{} // closed by the test: TakeOver returns state
	relayed []string      // payloads relayed
}

// hold makes the next TakeOver of "back" wait for release and return state.
func (h *heldTakeOver) hold(state []byte) {
	h.mu.Lock()
	h.state, h.entered, h.release = state, make(chan struct{}), make(chan struct{})
	h.mu.Unlock()
}

func (h *heldTakeOver) AddRoute(string, string)    {}
func (h *heldTakeOver) RemoveRoute(string, string) {}
func (h *heldTakeOver) Forward(*session.Message, bool) (map[string]bool, int, <-chan error) {
	return nil, 0, nil
}
func (h *heldTakeOver) HasRoute(string, string, string) bool            { return false }
func (h *heldTakeOver) ReplicateRetained(*session.Message) <-chan error { return nil }

func (h *heldTakeOver) TakeOver(ctx context.Context, clientID string, resume bool) ([]byte, bool, error) {
	h.mu.Lock()
	state, entered, release := h.state, h.entered, h.release
	h.mu.Unlock()
	if entered == nil || clientID != "back" {
		return nil, false, nil
	}
	close(entered)
	select {
	case <-release:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	return state, false, nil
}

func (h *heldTakeOver) Relay(to, clientID string, d *session.Delivery) <-chan error {
	if d != nil {
		h.mu.Lock()
		h.relayed = append(h.relayed, string(d.Msg.Payload))
		h.mu.Unlock()
	}
	ch := make(chan error, 1)
	ch <- nil
	return ch
}

// TestComebackKeepsSubscriptionsUntilImported: a session this node handed over to
// node B comes back (its client reconnects here) while this node's TakeOver of B
// is in flight. A QoS 1 message published here meanwhile still has its subscriber:
// the sealed session, which relays it to B, from where it follows the session
// back. The handoff used to drop the sealed session's subscriptions at once, so
// the message matched nothing (PUBACK 0x10) and was lost.
func TestComebackKeepsSubscriptionsUntilImported(t *testing.T) {
	cl := &heldTakeOver{}
	cfg := lcConfig()
	cfg.ConnectTimeout = 5 * time.Second
	cfg.Cluster = cl
	b := nodetest.Start(t, cfg)
	c, _ := lcAccepted(t, b.Addr, proto.V5, lcResumable(proto.V5, "back"))
	c.Subscribe(1, 1, "back/#")
	c.Disconnect()
	lcAwaitConnected(t, b, 0)
	state, found, _, err := b.ReleaseClient(context.Background(), "back", "B", true, false)
	if err != nil || !found || state == nil {
		t.Fatalf("hand the session over to B: %d bytes, found %v, %v", len(state), found, err)
	}
	cl.hold(state)

	back := nodetest.Dial(t, b.Addr, proto.V5)
	cp := lcResumable(proto.V5, "back")
	cp.Version = proto.V5
	back.Send(cp)
	cl.mu.Lock()
	entered, release := cl.entered, cl.release
	cl.mu.Unlock()
	<-entered // the node is taking the session back
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	code := pub.Publish(&proto.Publish{Topic: "back/x", QoS: 1, PacketID: 1, Payload: []byte("in between")})
	close(release)
	if ack := nodetest.Expect[*proto.Connack](back); !ack.SessionPresent {
		t.Fatalf("CONNACK %+v: the session did not come back", ack)
	}
	cl.mu.Lock()
	relayed := append([]string(nil), cl.relayed...)
	cl.mu.Unlock()
	if code != proto.Success || len(relayed) != 1 || relayed[0] != "in between" {
		t.Fatalf("message published while the session came back: PUBACK %v, relayed %q; want success and one relay", code, relayed)
	}
}

// TestReleaseAfterRequesterGaveUp: a takeover whose requester gave up (its context
// ended) leaves the session here: sealing and exporting it then handed the queued
// messages to nobody.
func TestReleaseAfterRequesterGaveUp(t *testing.T) {
	cfg := lcConfig()
	cfg.Cluster = &heldTakeOver{}
	b := nodetest.Start(t, cfg)
	c, _ := lcAccepted(t, b.Addr, proto.V5, lcResumable(proto.V5, "late"))
	c.Subscribe(1, 1, "late/#")
	c.Disconnect()
	lcAwaitConnected(t, b, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if state, _, _, err := b.ReleaseClient(ctx, "late", "B", true, false); err == nil || state != nil {
		t.Fatalf("ReleaseClient after the requester gave up: %d bytes, %v; want an error and no state", len(state), err)
	}
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	if code := pub.Publish(&proto.Publish{Topic: "late/x", QoS: 1, PacketID: 1, Payload: []byte("kept")}); code != proto.Success {
		t.Fatalf("publish to the session kept here: %v", code)
	}
	back, ack := lcAccepted(t, b.Addr, proto.V5, lcResumable(proto.V5, "late"))
	if !ack.SessionPresent {
		t.Fatal("the session was not kept")
	}
	if p := nodetest.Expect[*proto.Publish](back); string(p.Payload) != "kept" {
		t.Fatalf("got %q", p.Payload)
	}
}
