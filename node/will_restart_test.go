package node_test

import (
	"testing"
	"time"

	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// willDevice connects "dev" (5.0, session expiry expiry) with a QoS 1 will on
// will/dev delayed by delay seconds, and drops its connection: the will is owed
// once the delay ends.
func willDevice(t *testing.T, n *persistNode, delay, expiry uint32) {
	t.Helper()
	c := nodetest.Dial(t, n.Addr, proto.V5)
	cp := &proto.Connect{ClientID: "dev", CleanStart: true, KeepAlive: 60,
		Will: &proto.Will{Topic: "will/dev", Payload: []byte("gone"), QoS: 1}}
	cp.Will.Props.WillDelay = delay
	cp.Will.Props.Set(proto.PropWillDelay)
	cp.Will.Props.MessageExpiry = 600
	cp.Will.Props.Set(proto.PropMessageExpiry)
	cp.Props.SessionExpiry = expiry
	cp.Props.Set(proto.PropSessionExpiry)
	if ack := c.Connect(cp); ack.ReasonCode != proto.Success {
		t.Fatalf("CONNECT dev: %v", ack.ReasonCode)
	}
	c.Conn.Close()
}

// TestDelayedWillSurvivesRestart: a will waiting out its delay is part of the
// session, kept on disk: a broker restarted within the delay publishes it once the
// delay ends [MQTT-3.1.3-9], with its properties; it used to be lost. A client that
// comes back first cancels it, also across the restart; and the will of a session
// that ended while the broker was down goes out after the restart.
func TestDelayedWillSurvivesRestart(t *testing.T) {
	t.Parallel()
	watcher := func(t *testing.T, n *persistNode) {
		t.Helper()
		w, _ := persistConnect(t, n.Addr, proto.V5, "watch", true, 3600)
		w.Subscribe(1, 1, "will/#")
		w.Conn.Close()
	}
	expectWill := func(t *testing.T, n *persistNode, within time.Duration) {
		t.Helper()
		w := persistResume(t, n.Addr, proto.V5, "watch", true)
		p, err := w.RecvWithin(within)
		if err != nil {
			t.Fatalf("the delayed will was not published after the restart: %v", err)
		}
		pub, ok := p.(*proto.Publish)
		if !ok || pub.Topic != "will/dev" || string(pub.Payload) != "gone" || !pub.Props.Has(proto.PropMessageExpiry) {
			t.Fatalf("got %s, want the will with its message expiry", nodetest.String(p))
		}
	}

	t.Run("published after the delay", func(t *testing.T) {
		t.Parallel()
		n := persistNewNode(t)
		watcher(t, n)
		willDevice(t, n, 1, 3600)
		persistSettled(t, n, 0)
		n = n.restart(t)
		expectWill(t, n, 5*time.Second)
	})
	t.Run("cancelled by the client's return", func(t *testing.T) {
		t.Parallel()
		n := persistNewNode(t)
		watcher(t, n)
		willDevice(t, n, 3, 3600)
		persistSettled(t, n, 0)
		n = n.restart(t)
		dev := persistResume(t, n.Addr, proto.V5, "dev", true) // before the delay ends
		_ = dev
		n = n.restart(t) // the cancel is on disk too
		w := persistResume(t, n.Addr, proto.V5, "watch", true)
		w.ExpectNothing(4 * time.Second)
	})
	t.Run("session ended while down", func(t *testing.T) {
		t.Parallel()
		n := persistNewNode(t)
		watcher(t, n)
		willDevice(t, n, 60, 1) // the session ends after 1 s, before the delay
		persistSettled(t, n, 0)
		n.stop(t)
		time.Sleep(1500 * time.Millisecond)
		n = persistStart(t, n.path, n.cfg)
		expectWill(t, n, 5*time.Second)
	})
}
