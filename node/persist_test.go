package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// These tests run brokers on a real bbolt file in t.TempDir. "Restart" is what skein
// serve does on SIGTERM and start: Shutdown the broker, Close the store, open the
// file again and start a new broker on it.

// persistNode is a broker serving from a store file.
type persistNode struct {
	*nodetest.Broker
	path       string
	cfg        node.Config
	store      *session.Store
	closeStore func()
}

func persistConfig() node.Config {
	cfg := node.DefaultConfig()
	cfg.SysInterval = 0
	return cfg
}

// persistStart opens the store at path and starts a broker on it. The store is
// closed after the broker shut down: its Cleanup is registered first, and Cleanup
// runs last-in first-out.
func persistStart(t *testing.T, path string, cfg node.Config) *persistNode {
	t.Helper()
	st, err := session.OpenStore(path, session.StoreOptions{
		Logger:      slog.New(slog.NewTextHandler(nodetest.LogWriter(t), nil)),
		LockTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	var once sync.Once
	closeStore := func() {
		once.Do(func() {
			if err := st.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
	}
	t.Cleanup(closeStore)
	cfg.Store = st
	return &persistNode{Broker: nodetest.Start(t, cfg), path: path, cfg: cfg, store: st, closeStore: closeStore}
}

// stop shuts the broker down gracefully and closes its store.
func (n *persistNode) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	n.closeStore()
}

// restart stops the broker and starts a new one on the same file.
func (n *persistNode) restart(t *testing.T) *persistNode {
	t.Helper()
	n.stop(t)
	return persistStart(t, n.path, n.cfg)
}

func persistNewNode(t *testing.T) *persistNode {
	return persistStart(t, filepath.Join(t.TempDir(), "skein.db"), persistConfig())
}

// persistConnect connects id: in 3.1.1 with the clean session flag clean; in 5.0
// with Clean Start clean and, when expiry > 0, a session expiry interval.
func persistConnect(t *testing.T, addr string, v proto.Version, id string, clean bool, expiry uint32) (*nodetest.Client, *proto.Connack) {
	t.Helper()
	c := nodetest.Dial(t, addr, v)
	cp := &proto.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	if v == proto.V5 && expiry > 0 {
		cp.Props.SessionExpiry = expiry
		cp.Props.Set(proto.PropSessionExpiry)
	}
	ack := c.Connect(cp)
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNECT %q refused: %v", id, ack.ReasonCode)
	}
	return c, ack
}

// persistResume connects id resuming its persistent session and checks session
// present is want.
func persistResume(t *testing.T, addr string, v proto.Version, id string, want bool) *nodetest.Client {
	t.Helper()
	c, ack := persistConnect(t, addr, v, id, false, 3600)
	if ack.SessionPresent != want {
		t.Fatalf("%s reconnected with session present %v, want %v", id, ack.SessionPresent, want)
	}
	return c
}

// persistSettled waits until n clients are connected and the broker has settled the
// sessions of those that left.
func persistSettled(t *testing.T, b *persistNode, n int64) {
	t.Helper()
	nodetest.Eventually(t, fmt.Sprintf("%d connected clients", n), func() bool {
		if b.Stats.Connected.Load() != n {
			return false
		}
		b.SessionCount() // takes Broker.mu: the section that detached the session is over
		return true
	})
}

// persistExpectPublish reads the next packet, which must be a PUBLISH of topic and
// payload at qos; it is not acknowledged.
func persistExpectPublish(t *testing.T, c *nodetest.Client, topic, payload string, qos byte) *proto.Publish {
	t.Helper()
	p := nodetest.Expect[*proto.Publish](c)
	if p.Topic != topic || string(p.Payload) != payload || p.QoS != qos {
		t.Fatalf("got %s, want PUBLISH %q %q qos %d", nodetest.String(p), topic, payload, qos)
	}
	return p
}

// persistSentinel publishes a QoS 1 message on topic from pub and checks that it is
// the next thing sub receives: whatever sub was not to receive before it did not
// come, since deliveries on one topic keep their order [MQTT-4.6.0-5].
func persistSentinel(t *testing.T, pub, sub *nodetest.Client, topic string, id uint16) {
	t.Helper()
	pub.Publish(&proto.Publish{Topic: topic, QoS: 1, PacketID: id, Payload: []byte("sentinel")})
	p := persistExpectPublish(t, sub, topic, "sentinel", 1)
	sub.Ack(p)
	persistSync(t, sub) // the PUBACK was handled: a restart now does not resend it
}

// persistCollect receives n PUBLISH packets on c and completes every QoS flow they
// start (PUBACK; PUBREC, then PUBCOMP for the PUBREL, which may come after later
// PUBLISHes), returning the PUBLISHes in arrival order.
func persistCollect(t *testing.T, c *nodetest.Client, n int) []*proto.Publish {
	t.Helper()
	var got []*proto.Publish
	awaitingRel := map[uint16]bool{}
	for len(got) < n || len(awaitingRel) > 0 {
		switch p := c.Recv().(type) {
		case *proto.Publish:
			got = append(got, p)
			switch p.QoS {
			case 1:
				c.Send(&proto.Puback{PacketID: p.PacketID})
			case 2:
				awaitingRel[p.PacketID] = true
				c.Send(&proto.Pubrec{PacketID: p.PacketID})
			}
		case *proto.Pubrel:
			if !awaitingRel[p.PacketID] {
				t.Fatalf("PUBREL %d without a PUBREC", p.PacketID)
			}
			delete(awaitingRel, p.PacketID)
			c.Send(&proto.Pubcomp{PacketID: p.PacketID})
		default:
			t.Fatalf("unexpected %s", nodetest.String(p))
		}
	}
	return got
}

// persistSync returns once the broker has handled everything c sent before: packets
// of one connection are handled in order, and PINGREQ is answered at once.
func persistSync(t *testing.T, c *nodetest.Client) {
	t.Helper()
	c.Send(&proto.Pingreq{})
	nodetest.Expect[*proto.Pingresp](c)
}

var persistVersions = []proto.Version{proto.V311, proto.V5}

func TestPersistSubscriptionSurvivesRestart(t *testing.T) {
	for _, v := range persistVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := persistNewNode(t)
			sub, ack := persistConnect(t, b.Addr, v, "sub", false, 3600)
			if ack.SessionPresent {
				t.Fatal("first connection: session present 1")
			}
			sub.Subscribe(1, 1, "p/+")
			sub.Disconnect()
			persistSettled(t, b, 0)

			b = b.restart(t)
			if n := b.SessionCount(); n != 1 {
				t.Fatalf("restarted broker has %d sessions, want 1", n)
			}
			sub = persistResume(t, b.Addr, v, "sub", true)
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			pub.Publish(&proto.Publish{Topic: "p/x", QoS: 1, PacketID: 1, Payload: []byte("after restart")})
			// Delivered without subscribing again, at the subscription's QoS.
			p := persistExpectPublish(t, sub, "p/x", "after restart", 1)
			sub.Ack(p)
		})
	}
}

func TestPersistOfflineQueueSurvivesRestart(t *testing.T) {
	for _, v := range persistVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := persistNewNode(t)
			sub, _ := persistConnect(t, b.Addr, v, "sub", false, 3600)
			sub.Subscribe(1, 2, "q/#")
			sub.Disconnect()
			persistSettled(t, b, 0)

			pub := nodetest.Connect(t, b.Addr, v, "pub")
			msgs := []struct {
				payload string
				qos     byte
			}{{"1", 1}, {"2", 2}, {"zero", 0}, {"3", 1}, {"4", 2}, {"5", 2}, {"6", 1}}
			for i, m := range msgs {
				pub.Publish(&proto.Publish{Topic: "q/t", QoS: m.qos, PacketID: uint16(i + 1), Payload: []byte(m.payload)})
			}

			b = b.restart(t)
			sub = persistResume(t, b.Addr, v, "sub", true)
			var want []string
			for _, m := range msgs {
				if m.qos > 0 { // QoS 0 is not queued for an offline session
					want = append(want, fmt.Sprintf("%s q%d", m.payload, m.qos))
				}
			}
			got := persistCollect(t, sub, len(want))
			ids := map[uint16]bool{}
			for i, p := range got {
				if d := fmt.Sprintf("%s q%d", p.Payload, p.QoS); d != want[i] {
					t.Errorf("delivery %d after the restart: %s, want %s (all: %v)", i, d, want[i], want)
				}
				if ids[p.PacketID] {
					t.Errorf("packet id %d used twice", p.PacketID)
				}
				ids[p.PacketID] = true
			}
			pub = nodetest.Connect(t, b.Addr, v, "pub")
			persistSentinel(t, pub, sub, "q/t", 100)
		})
	}
}

func TestPersistInflightResentAfterRestart(t *testing.T) {
	// [MQTT-4.4.0-1] unacknowledged PUBLISH packets are resent on reconnect with their
	// original packet ids, DUP set [MQTT-3.3.1-1], in order [MQTT-4.6.0-1] — after a
	// restart of the broker too.
	for _, v := range persistVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := persistNewNode(t)
			sub, _ := persistConnect(t, b.Addr, v, "sub", false, 3600)
			sub.Subscribe(1, 2, "i/#")
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			pub.Publish(&proto.Publish{Topic: "i/t", QoS: 1, PacketID: 1, Payload: []byte("one")})
			pub.Publish(&proto.Publish{Topic: "i/t", QoS: 2, PacketID: 2, Payload: []byte("two")})
			one := persistExpectPublish(t, sub, "i/t", "one", 1)
			two := persistExpectPublish(t, sub, "i/t", "two", 2)
			// No PUBACK, no PUBREC: both stay inflight while the broker restarts.

			b = b.restart(t)
			sub = persistResume(t, b.Addr, v, "sub", true)
			for _, want := range []*proto.Publish{one, two} {
				p := persistExpectPublish(t, sub, "i/t", string(want.Payload), want.QoS)
				if p.PacketID != want.PacketID || !p.Dup {
					t.Errorf("resent %s, want packet id %d with DUP", nodetest.String(p), want.PacketID)
				}
				sub.Ack(p)
			}
			pub = nodetest.Connect(t, b.Addr, v, "pub")
			persistSentinel(t, pub, sub, "i/t", 3)
		})
	}
}

func TestPersistReleasedQoS2AfterRestart(t *testing.T) {
	// A QoS 2 message whose PUBREC the broker got is delivered: after a restart only
	// its PUBREL is sent again, never the PUBLISH [MQTT-4.3.3-4] [MQTT-4.4.0-1].
	for _, v := range persistVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			b := persistNewNode(t)
			sub, _ := persistConnect(t, b.Addr, v, "sub", false, 3600)
			sub.Subscribe(1, 2, "r/#")
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			pub.Publish(&proto.Publish{Topic: "r/t", QoS: 2, PacketID: 1, Payload: []byte("once")})
			p := persistExpectPublish(t, sub, "r/t", "once", 2)
			sub.Send(&proto.Pubrec{PacketID: p.PacketID})
			if rel := nodetest.Expect[*proto.Pubrel](sub); rel.PacketID != p.PacketID {
				t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p.PacketID)
			}
			// No PUBCOMP.

			b = b.restart(t)
			sub = persistResume(t, b.Addr, v, "sub", true)
			got := sub.Recv()
			rel, ok := got.(*proto.Pubrel)
			if !ok || rel.PacketID != p.PacketID {
				t.Fatalf("after the restart got %s, want PUBREL %d", nodetest.String(got), p.PacketID)
			}
			sub.Send(&proto.Pubcomp{PacketID: p.PacketID})
			pub = nodetest.Connect(t, b.Addr, v, "pub")
			persistSentinel(t, pub, sub, "r/t", 2)
		})
	}
}

func TestPersistResendBehindReleasedQoS2(t *testing.T) {
	// An older QoS 1 message is unacknowledged while a later QoS 2 one got its
	// PUBREC. On reconnect after a restart both are resent at once, the PUBLISH with
	// its id and DUP and the PUBREL [MQTT-4.4.0-1]: the PUBLISH must not wait for the
	// client to finish the PUBREL exchange first (it has no reason to).
	b := persistNewNode(t)
	sub, _ := persistConnect(t, b.Addr, proto.V311, "sub", false, 0)
	sub.Subscribe(1, 2, "o/#")
	pub := nodetest.Connect(t, b.Addr, proto.V311, "pub")
	pub.Publish(&proto.Publish{Topic: "o/t", QoS: 1, PacketID: 1, Payload: []byte("older")})
	pub.Publish(&proto.Publish{Topic: "o/t", QoS: 2, PacketID: 2, Payload: []byte("newer")})
	older := persistExpectPublish(t, sub, "o/t", "older", 1)
	newer := persistExpectPublish(t, sub, "o/t", "newer", 2)
	sub.Send(&proto.Pubrec{PacketID: newer.PacketID})
	nodetest.Expect[*proto.Pubrel](sub)

	b = b.restart(t)
	sub = persistResume(t, b.Addr, proto.V311, "sub", true)
	var gotPublish, gotPubrel bool
	for !gotPublish || !gotPubrel {
		p, err := sub.RecvWithin(3 * time.Second)
		if err != nil {
			t.Fatalf("after the restart: resent PUBLISH %v, PUBREL %v; then %v", gotPublish, gotPubrel, err)
		}
		switch p := p.(type) {
		case *proto.Pubrel:
			gotPubrel = p.PacketID == newer.PacketID
		case *proto.Publish:
			if p.PacketID != older.PacketID || !p.Dup || string(p.Payload) != "older" {
				t.Fatalf("resent %s, want %q with id %d and DUP", nodetest.String(p), older.Payload, older.PacketID)
			}
			gotPublish = true
		default:
			t.Fatalf("unexpected %s", nodetest.String(p))
		}
	}
}

func TestPersistIncomingQoS2IDSurvivesRestart(t *testing.T) {
	// A QoS 2 id received and acknowledged with PUBREC, awaiting PUBREL, is part of
	// the publisher's session [MQTT-4.1.0-1]: after a restart the broker still knows
	// it, so a retransmission is acknowledged but not delivered again
	// [MQTT-4.3.3-9].
	b := persistNewNode(t)
	sub, _ := persistConnect(t, b.Addr, proto.V311, "sub", false, 0)
	sub.Subscribe(1, 2, "x/#")
	pub, _ := persistConnect(t, b.Addr, proto.V311, "pub", false, 0)
	msg := &proto.Publish{Topic: "x/t", QoS: 2, PacketID: 9, Payload: []byte("exactly once")}
	pub.Send(msg)
	if rec := nodetest.Expect[*proto.Pubrec](pub); rec.PacketID != 9 {
		t.Fatalf("PUBREC for %d, want 9", rec.PacketID)
	}
	sub.Ack(persistExpectPublish(t, sub, "x/t", "exactly once", 2))
	persistSync(t, sub) // the PUBCOMP was handled

	b = b.restart(t)
	sub = persistResume(t, b.Addr, proto.V311, "sub", true)
	pub = persistResume(t, b.Addr, proto.V311, "pub", true)
	msg.Dup = true
	pub.Send(msg)
	if rec := nodetest.Expect[*proto.Pubrec](pub); rec.PacketID != 9 {
		t.Fatalf("PUBREC for the retransmission: id %d, want 9", rec.PacketID)
	}
	pub.Send(&proto.Pubrel{PacketID: 9})
	if comp := nodetest.Expect[*proto.Pubcomp](pub); comp.PacketID != 9 || comp.ReasonCode != 0 {
		t.Fatalf("PUBCOMP %d code %v, want 9 success", comp.PacketID, comp.ReasonCode)
	}
	// The retransmission was not delivered: the next message is the sentinel.
	persistSentinel(t, pub, sub, "x/t", 10)

	// The PUBREL released the id on disk too: after another restart, id 9 carries a
	// new message, which is delivered.
	b = b.restart(t)
	sub = persistResume(t, b.Addr, proto.V311, "sub", true)
	pub = persistResume(t, b.Addr, proto.V311, "pub", true)
	pub.Publish(&proto.Publish{Topic: "x/t", QoS: 2, PacketID: 9, Payload: []byte("new message, old id")})
	sub.Ack(persistExpectPublish(t, sub, "x/t", "new message, old id", 2))
}

func TestPersistCleanSessionsLeaveNothing(t *testing.T) {
	// Clean sessions (3.1.1 clean session 1, 5.0 session expiry 0) end with their
	// connection [MQTT-3.1.2-6]: nothing of them is written, and QoS 0 is never
	// written either, whoever receives it.
	b := persistNewNode(t)
	type client struct {
		v     proto.Version
		id    string
		clean bool
	}
	clients := []client{{proto.V311, "clean311", true}, {proto.V5, "expiry0", false}, {proto.V5, "clean5", true}}
	var subs []*nodetest.Client
	for _, c := range clients {
		sub, _ := persistConnect(t, b.Addr, c.v, c.id, c.clean, 0)
		sub.Subscribe(1, 2, "c/#")
		subs = append(subs, sub)
	}
	durable, _ := persistConnect(t, b.Addr, proto.V311, "durable", false, 0)
	durable.Subscribe(1, 0, "c/#") // a persistent session, granted QoS 0 only
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	_, writes0 := b.store.CommitStats()

	for qos := byte(0); qos <= 2; qos++ {
		payload := fmt.Sprintf("qos %d", qos)
		pub.Publish(&proto.Publish{Topic: "c/t", QoS: qos, PacketID: uint16(qos + 1), Payload: []byte(payload)})
		for _, sub := range subs {
			sub.Ack(persistExpectPublish(t, sub, "c/t", payload, qos))
		}
		persistExpectPublish(t, durable, "c/t", payload, 0)
	}
	if _, writes1 := b.store.CommitStats(); writes1 != writes0 {
		t.Errorf("publishing among clean sessions and at QoS 0 made %d store writes, want 0", writes1-writes0)
	}
	for _, sub := range subs {
		sub.Disconnect()
	}
	durable.Disconnect()
	persistSettled(t, b, 1)

	b = b.restart(t)
	if n := b.SessionCount(); n != 1 {
		t.Errorf("restarted broker has %d sessions, want 1 (durable)", n)
	}
	for _, c := range clients {
		_, ack := persistConnect(t, b.Addr, c.v, c.id, false, 60)
		if ack.SessionPresent {
			t.Errorf("%s (clean) after a restart: session present 1", c.id)
		}
	}
}

// persistDowntime keeps the broker down for d: the expiry tests are about time
// passing while nothing runs, so this is the one wait on the clock rather than on
// a condition.
func persistDowntime(d time.Duration) {
	<-time.After(d)
}

func TestPersistSessionExpiryCountsDowntime(t *testing.T) {
	// The session expiry interval counts from the disconnect [MQTT-3.1.2-23], and
	// the time the broker was down counts too: a session whose interval ran out while
	// the broker was stopped is gone after the restart, from disk as well.
	t.Parallel()
	b := persistNewNode(t)
	for _, c := range []struct {
		id     string
		expiry uint32
	}{{"short", 2}, {"long", 3600}} {
		cl, _ := persistConnect(t, b.Addr, proto.V5, c.id, true, c.expiry)
		cl.Subscribe(1, 1, "e/"+c.id)
		cl.Disconnect()
	}
	persistSettled(t, b, 0)
	b.stop(t)
	persistDowntime(3 * time.Second)

	b = persistStart(t, b.path, b.cfg)
	if n := b.SessionCount(); n != 1 {
		t.Errorf("after 3 s down, the broker restored %d sessions, want 1 (long)", n)
	}
	if n := b.Stats.SessionsExpired.Load(); n != 1 {
		t.Errorf("SessionsExpired = %d, want 1", n)
	}
	// The expired session was purged from the file: a broker started on it with a
	// clock from before the expiry does not bring it back.
	b.stop(t)
	cfg := b.cfg
	start := time.Now()
	cfg.Now = func() time.Time { return start.Add(-time.Hour) }
	b = persistStart(t, b.path, cfg)
	if n := b.SessionCount(); n != 1 {
		t.Errorf("after the purge, the file holds %d sessions, want 1 (long)", n)
	}
	b.stop(t)

	b = persistStart(t, b.path, persistConfig())
	if _, ack := persistConnect(t, b.Addr, proto.V5, "short", false, 60); ack.SessionPresent {
		t.Error("short (expiry 2 s) after 3 s down: session present 1")
	}
	if _, ack := persistConnect(t, b.Addr, proto.V5, "long", false, 60); !ack.SessionPresent {
		t.Error("long (expiry 3600 s) after 3 s down: session present 0")
	}
}

func TestPersistMessageExpiryCountsDowntime(t *testing.T) {
	// A queued message whose expiry interval passed is not delivered
	// [MQTT-3.3.2-5], when it passed while the broker was down too; one still alive
	// goes out with what is left of its interval [MQTT-3.3.2-6].
	t.Parallel()
	b := persistNewNode(t)
	sub, _ := persistConnect(t, b.Addr, proto.V5, "sub", true, 3600)
	sub.Subscribe(1, 1, "m/#")
	sub.Disconnect()
	persistSettled(t, b, 0)
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	for i, m := range []struct {
		payload string
		expiry  uint32
	}{{"short", 2}, {"long", 60}, {"none", 0}} {
		p := &proto.Publish{Topic: "m/t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte(m.payload)}
		if m.expiry > 0 {
			p.Props.MessageExpiry = m.expiry
			p.Props.Set(proto.PropMessageExpiry)
		}
		pub.Publish(p)
	}
	b.stop(t)
	persistDowntime(3 * time.Second)

	b = persistStart(t, b.path, b.cfg)
	sub = persistResume(t, b.Addr, proto.V5, "sub", true)
	// "short" came first: had it survived, it would be the first delivery.
	long := persistExpectPublish(t, sub, "m/t", "long", 1)
	if !long.Props.Has(proto.PropMessageExpiry) || long.Props.MessageExpiry > 57 || long.Props.MessageExpiry == 0 {
		t.Errorf("long delivered with message expiry %d (present %v), want at most 57 after 3 s down",
			long.Props.MessageExpiry, long.Props.Has(proto.PropMessageExpiry))
	}
	sub.Ack(long)
	none := persistExpectPublish(t, sub, "m/t", "none", 1)
	if none.Props.Has(proto.PropMessageExpiry) {
		t.Errorf("message without expiry delivered with expiry %d", none.Props.MessageExpiry)
	}
	sub.Ack(none)
}

func TestPersistExpiredInflightResentAfterRestart(t *testing.T) {
	// Message expiry only deletes a copy whose onward delivery has not started
	// [MQTT-3.3.2-5]; an unacknowledged PUBLISH is resent on reconnect with its id
	// [MQTT-4.4.0-1], as the session does without a restart. For QoS 2 this matters:
	// the subscriber may hold the id awaiting PUBREL, and a broker that drops the
	// message never releases it, so a later message with that id is taken for a
	// duplicate and lost.
	t.Parallel()
	b := persistNewNode(t)
	sub, _ := persistConnect(t, b.Addr, proto.V5, "sub", true, 3600)
	sub.Subscribe(1, 2, "x/#")
	pub := nodetest.Connect(t, b.Addr, proto.V5, "pub")
	p := &proto.Publish{Topic: "x/t", QoS: 2, PacketID: 1, Payload: []byte("expiring")}
	p.Props.MessageExpiry = 2
	p.Props.Set(proto.PropMessageExpiry)
	pub.Publish(p)
	sent := persistExpectPublish(t, sub, "x/t", "expiring", 2) // no PUBREC: onward delivery started, not finished
	b.stop(t)
	persistDowntime(3 * time.Second)

	b = persistStart(t, b.path, b.cfg)
	sub = persistResume(t, b.Addr, proto.V5, "sub", true)
	pub = nodetest.Connect(t, b.Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "x/t", QoS: 1, PacketID: 2, Payload: []byte("sentinel")})
	got := nodetest.Expect[*proto.Publish](sub)
	if string(got.Payload) != "expiring" || got.PacketID != sent.PacketID || !got.Dup {
		t.Fatalf("after the restart got %s first, want the unacknowledged PUBLISH %d resent with DUP", nodetest.String(got), sent.PacketID)
	}
}

func TestPersistRetainedSurvivesRestart(t *testing.T) {
	b := persistNewNode(t)
	pub := nodetest.Connect(t, b.Addr, proto.V311, "pub")
	for i, m := range []struct {
		topic, payload string
		qos            byte
	}{
		{"ret/a", "1", 1}, {"ret/b", "2", 0}, {"ret/c", "3", 2},
		{"ret/a", "replaced", 1}, {"ret/b", "", 1}, // an empty retained payload clears [MQTT-3.3.1-10]
	} {
		pub.Publish(&proto.Publish{Topic: m.topic, QoS: m.qos, Retain: true, PacketID: uint16(i + 1), Payload: []byte(m.payload)})
	}
	b = b.restart(t)
	if n := b.RetainedCount(); n != 2 {
		t.Errorf("restarted broker has %d retained messages, want 2", n)
	}
	sub := nodetest.Connect(t, b.Addr, proto.V311, "sub")
	sub.Subscribe(1, 2, "ret/#")
	got := map[string]string{}
	for _, p := range persistCollect(t, sub, 2) {
		if !p.Retain {
			t.Errorf("%s: retained message sent without the retain flag [MQTT-3.3.1-8]", nodetest.String(p))
		}
		got[p.Topic] = string(p.Payload)
	}
	if got["ret/a"] != "replaced" || got["ret/c"] != "3" {
		t.Errorf("retained after restart: %v, want ret/a=replaced ret/c=3", got)
	}
	pub = nodetest.Connect(t, b.Addr, proto.V311, "pub")
	persistSentinel(t, pub, sub, "ret/zz", 10) // ret/b stayed cleared

	// Clearing after a restart survives the next one. The clears reach the current
	// subscriber as empty messages; the sentinel after them shows both were handled.
	pub.Publish(&proto.Publish{Topic: "ret/a", QoS: 1, Retain: true, PacketID: 11})
	pub.Publish(&proto.Publish{Topic: "ret/c", QoS: 0, Retain: true})
	sub.Ack(persistExpectPublish(t, sub, "ret/a", "", 1))
	persistExpectPublish(t, sub, "ret/c", "", 0)
	persistSentinel(t, pub, sub, "ret/zz", 12)
	b = b.restart(t)
	if n := b.RetainedCount(); n != 0 {
		t.Errorf("after clearing every retained message and a restart: %d left", n)
	}
}

func TestPersistExpiryZeroAtDisconnect(t *testing.T) {
	// A 5.0 client may end its session by setting the expiry to 0 in DISCONNECT
	// [MQTT-3.14.2-2 allows lowering it]: the session is deleted, from disk too.
	b := persistNewNode(t)
	for _, id := range []string{"ends", "stays"} {
		c, _ := persistConnect(t, b.Addr, proto.V5, id, true, 3600)
		c.Subscribe(1, 1, "z/"+id)
		d := &proto.Disconnect{}
		if id == "ends" {
			d.Props.SessionExpiry = 0
			d.Props.Set(proto.PropSessionExpiry)
		}
		c.Send(d)
		c.Conn.Close()
	}
	persistSettled(t, b, 0)
	b = b.restart(t)
	if n := b.SessionCount(); n != 1 {
		t.Errorf("restarted broker has %d sessions, want 1 (stays)", n)
	}
	if _, ack := persistConnect(t, b.Addr, proto.V5, "ends", false, 60); ack.SessionPresent {
		t.Error("session ended with expiry 0 at DISCONNECT is present after a restart")
	}
	if _, ack := persistConnect(t, b.Addr, proto.V5, "stays", false, 60); !ack.SessionPresent {
		t.Error("session that kept its expiry at DISCONNECT is gone after a restart")
	}
}

func TestPersistPubrelWaitsForDisk(t *testing.T) {
	// Once the broker has sent PUBREL, it must never send that QoS 2 PUBLISH again
	// [MQTT-4.3.3-4]: the subscriber has answered PUBCOMP and forgotten the id, so a
	// resend would be a second delivery. The "released" state must therefore be on
	// disk before PUBREL leaves, as PUBACK and PUBREC wait for theirs.
	//
	// A copy of the data file taken when the subscriber receives PUBREL is exactly what
	// a kill -9 at that moment leaves. To make the moment observable, a large retained
	// message is committing when the PUBREC arrives, so the PUBREC's write must wait
	// for the next commit.
	cfg := persistConfig()
	cfg.MaxPacketSize = 64 << 20
	b := persistStart(t, filepath.Join(t.TempDir(), "skein.db"), cfg)
	sub, _ := persistConnect(t, b.Addr, proto.V311, "sub", false, 0)
	sub.Subscribe(1, 2, "s/#")
	pub := nodetest.Connect(t, b.Addr, proto.V311, "pub")
	pub.Publish(&proto.Publish{Topic: "s/t", QoS: 2, PacketID: 1, Payload: []byte("once")})
	p := persistExpectPublish(t, sub, "s/t", "once", 2)

	persistStallCommits(t, b)
	sub.Send(&proto.Pubrec{PacketID: p.PacketID})
	if rel := nodetest.Expect[*proto.Pubrel](sub); rel.PacketID != p.PacketID {
		t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p.PacketID)
	}
	snapshot, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}

	crashed := filepath.Join(t.TempDir(), "crashed.db")
	if err := os.WriteFile(crashed, snapshot, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := session.OpenStore(crashed, session.StoreOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer st.Close()
	restored, err := st.LoadSessions(session.DefaultConfig(), time.Now())
	if err != nil {
		t.Fatalf("load the copy: %v", err)
	}
	for _, r := range restored {
		if r.Session.ClientID != "sub" {
			continue
		}
		out := &persistOutbox{}
		r.Session.Attach(out, 0, time.Now())
		for _, o := range out.got {
			if !o.Release {
				t.Errorf("a crash when PUBREL %d was sent leaves a broker that resends the PUBLISH (%q, id %d): "+
					"the released state was not durable before PUBREL", p.PacketID, o.Msg.Payload, o.PacketID)
			}
		}
		return
	}
	t.Fatal("the copy has no session for sub")
}

// persistStallCommits makes the store busy for a while: a large retained message
// is being written when it returns (b needs a MaxPacketSize above 32 MiB), so a
// write queued now waits for the next commit.
func persistStallCommits(t *testing.T, b *persistNode) {
	t.Helper()
	big := nodetest.Connect(t, b.Addr, proto.V311, "big")
	big.Send(&proto.Publish{Topic: "big/blob", Retain: true, Payload: make([]byte, 32<<20)})
	persistSync(t, big) // the blob's write is queued or committing
}

func TestPersistUnsubackWaitsForDisk(t *testing.T) {
	// After UNSUBACK the client counts on the subscription being gone
	// [MQTT-3.10.4-1] [MQTT-3.10.4-2]. If the deletion is not on disk yet, a crash
	// brings the subscription back and the client gets messages it unsubscribed
	// from. SUBACK waits for its write; UNSUBACK must too.
	cfg := persistConfig()
	cfg.MaxPacketSize = 64 << 20
	b := persistStart(t, filepath.Join(t.TempDir(), "skein.db"), cfg)
	sub, _ := persistConnect(t, b.Addr, proto.V311, "sub", false, 0)
	sub.Subscribe(1, 1, "u/#")
	persistStallCommits(t, b)
	sub.Send(&proto.Unsubscribe{PacketID: 2, Filters: []string{"u/#"}})
	nodetest.Expect[*proto.Unsuback](sub)
	snapshot, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	if err := os.WriteFile(crashed, snapshot, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := session.OpenStore(crashed, session.StoreOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer st.Close()
	restored, err := st.LoadSessions(session.DefaultConfig(), time.Now())
	if err != nil {
		t.Fatalf("load the copy: %v", err)
	}
	for _, r := range restored {
		if r.Session.ClientID == "sub" {
			if subs := r.Session.Subscriptions(); len(subs) != 0 {
				t.Errorf("a crash when UNSUBACK was sent leaves the subscription %q on disk", subs[0].Filter)
			}
			return
		}
	}
	t.Fatal("the copy has no session for sub")
}

// persistOutbox records what a session pushes.
type persistOutbox struct{ got []session.Outgoing }

func (o *persistOutbox) Push(out session.Outgoing) bool {
	o.got = append(o.got, out)
	return true
}

func TestPersistIncomingQoS2IDAtomicWithDelivery(t *testing.T) {
	// A QoS 2 PUBLISH from a persistent session writes two things: its packet id,
	// awaiting PUBREL, and the deliveries to the subscribers. A crash must find both
	// on disk or neither. The id alone means the message is lost: the publisher,
	// which got no PUBREC, resends it, the broker takes the resend for a duplicate,
	// answers PUBREC and delivers nothing [MQTT-4.3.3-9]. The deliveries alone mean
	// the resend is delivered a second time.
	//
	// The message is large, so that writing its delivery takes long; a copy of the
	// file is taken as soon as a commit ends after the PUBLISH was sent, which is
	// what a kill -9 at that moment leaves.
	cfg := persistConfig()
	cfg.MaxPacketSize = 64 << 20
	b := persistStart(t, filepath.Join(t.TempDir(), "skein.db"), cfg)
	sub, _ := persistConnect(t, b.Addr, proto.V311, "sub", false, 0)
	sub.Subscribe(1, 2, "big/#")
	sub.Disconnect()
	pub, _ := persistConnect(t, b.Addr, proto.V311, "pub", false, 0)
	persistSettled(t, b, 1)
	persistSync(t, pub)
	// Each commit after the PUBLISH is a moment a crash could come: copy the file
	// then, until a copy holds something of the PUBLISH.
	last, _ := b.store.CommitStats()
	pub.Send(&proto.Publish{Topic: "big/t", QoS: 2, PacketID: 9, Payload: make([]byte, 32<<20)})
	deadline := time.Now().Add(nodetest.Timeout)
	for {
		if batches, _ := b.store.CommitStats(); batches > last {
			last = batches
			idStored, deliveryStored := persistCrashState(t, b.path)
			if idStored != deliveryStored {
				t.Errorf("a crash after commit %d of the store leaves the QoS 2 PUBLISH's packet id stored %v and its delivery stored %v: "+
					"they must be written in one transaction", batches, idStored, deliveryStored)
			}
			if idStored || deliveryStored {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no commit with the PUBLISH in it")
		}
		time.Sleep(100 * time.Microsecond) // polling the commit counter, bounded by the deadline
	}
	if rec := nodetest.Expect[*proto.Pubrec](pub); rec.PacketID != 9 {
		t.Fatalf("PUBREC for %d, want 9", rec.PacketID)
	}
}

// persistCrashState copies the data file at path, as a kill -9 now would leave it,
// and reports whether the copy holds packet id 9 awaiting PUBREL for "pub" and a
// delivery for "sub".
func persistCrashState(t *testing.T, path string) (idStored, deliveryStored bool) {
	t.Helper()
	snapshot, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	if err := os.WriteFile(crashed, snapshot, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := session.OpenStore(crashed, session.StoreOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer st.Close()
	restored, err := st.LoadSessions(session.DefaultConfig(), time.Now())
	if err != nil {
		t.Fatalf("load the copy: %v", err)
	}
	for _, r := range restored {
		switch r.Session.ClientID {
		case "pub":
			isNew, err := r.Session.ReceiveQoS2(9, 0)
			idStored = err == nil && !isNew
		case "sub":
			inflight, queued, _ := r.Session.Counts()
			deliveryStored = inflight+queued > 0
		}
	}
	return idStored, deliveryStored
}
