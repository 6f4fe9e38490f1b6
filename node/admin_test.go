package node_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

func admConfig() node.Config {
	cfg := node.DefaultConfig()
	cfg.SysInterval = 0
	return cfg
}

// admConnect connects a client with the given clean start; a 5.0 persistent session
// gets an expiry of an hour.
func admConnect(t *testing.T, addr string, v proto.Version, id string, clean bool) *nodetest.Client {
	t.Helper()
	c := nodetest.Dial(t, addr, v)
	cp := &proto.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	if !clean && v == proto.V5 {
		cp.Props.SessionExpiry = 3600
		cp.Props.Set(proto.PropSessionExpiry)
	}
	if ack := c.Connect(cp); ack.ReasonCode != 0 {
		t.Fatalf("CONNECT %s: %v", id, ack.ReasonCode)
	}
	return c
}

func admCloseIndex(t *testing.T, reason string) int {
	t.Helper()
	i := slices.Index(node.CloseReasons(), reason)
	if i < 0 {
		t.Fatalf("no close reason %q", reason)
	}
	return i
}

func TestAdminKick(t *testing.T) {
	b := nodetest.Start(t, admConfig())
	if b.Kick("nobody") {
		t.Fatal("Kick of an unknown client reported true")
	}
	v5 := admConnect(t, b.Addr, proto.V5, "v5", false)
	v5.Subscribe(1, 1, "keep/me")
	v3 := admConnect(t, b.Addr, proto.V311, "v3", true)

	if !b.Kick("v5") {
		t.Fatal("Kick(v5) = false")
	}
	got := v5.ExpectClosed()
	if len(got) != 1 {
		t.Fatalf("got %d packets before the close, want one DISCONNECT", len(got))
	}
	if d, ok := got[0].(*proto.Disconnect); !ok || d.ReasonCode != proto.AdministrativeAction {
		t.Fatalf("got %s, want DISCONNECT 0x98", nodetest.String(got[0]))
	}
	if !b.Kick("v3") {
		t.Fatal("Kick(v3) = false")
	}
	if got := v3.ExpectClosed(); len(got) != 0 {
		t.Fatalf("a 3.1.1 client got %s: it has no DISCONNECT from the server", nodetest.String(got[0]))
	}
	kicked := admCloseIndex(t, "kicked")
	nodetest.Eventually(t, "both closes counted", func() bool { return b.Stats.Closed[kicked].Load() == 2 })
	nodetest.Eventually(t, "both gone", func() bool { return b.Stats.Connected.Load() == 0 })
	if b.Kick("v5") {
		t.Error("Kick of a client already kicked reported true")
	}
	// The persistent session outlives the kick, subscriptions included.
	ci, subs, ok := b.Client("v5")
	if !ok || ci.Connected || len(subs) != 1 || subs[0].Filter != "keep/me" {
		t.Errorf("after the kick: %+v %+v %v", ci, subs, ok)
	}
	if _, _, ok := b.Client("v3"); ok {
		t.Error("the clean session of v3 survived its connection")
	}
}

func TestAdminPublish(t *testing.T) {
	cfg := admConfig()
	cfg.MaxQoS = 1
	b := nodetest.Start(t, cfg)
	sub := admConnect(t, b.Addr, proto.V5, "sub", true)
	sub.Subscribe(1, 0, "a/+")
	sub.Send(&proto.Subscribe{PacketID: 2, Subscriptions: []proto.Subscription{{Filter: "own/#", QoS: 1, NoLocal: true}}})
	nodetest.Expect[*proto.Suback](sub)
	ctx := context.Background()

	p := &proto.Publish{Topic: "a/b", QoS: 1, Payload: []byte("hi"), PacketID: 77, Dup: true}
	p.Props.ContentType = "text/plain"
	p.Props.Set(proto.PropContentType)
	n, err := b.Publish(ctx, p)
	if err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v; want 1 session", n, err)
	}
	// The caller's buffer is not kept: overwrite it before the delivery is read.
	p.Payload[0] = 'X'
	got := sub.ExpectPublish("a/b", "hi")
	if got.QoS != 0 || got.Dup || got.Props.ContentType != "text/plain" {
		t.Errorf("delivered qos %d dup %v props %+v: want qos 0 (the subscription's), no dup, the content type", got.QoS, got.Dup, got.Props)
	}

	// no-local is about the publishing client: "$api" is not "sub".
	if n, err := b.Publish(ctx, &proto.Publish{Topic: "own/x", Payload: []byte("y")}); err != nil || n != 1 {
		t.Fatalf("Publish own/x = %d, %v", n, err)
	}
	sub.ExpectPublish("own/x", "y")

	for _, bad := range []*proto.Publish{
		{Topic: "a/#"},
		{Topic: ""},
		{Topic: "$SYS/broker/version"},
		{Topic: "a/b", QoS: 2}, // above MaxQoS 1
		{Topic: "a/b", Payload: make([]byte, cfg.MaxPacketSize)},
	} {
		if _, err := b.Publish(ctx, bad); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("Publish(topic %q qos %d, %d bytes) = %v, want ErrInvalid", bad.Topic, bad.QoS, len(bad.Payload), err)
		}
	}
	sub.ExpectNothing(100 * time.Millisecond)

	sctx, cancel := context.WithTimeout(ctx, nodetest.Timeout)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := b.Publish(ctx, &proto.Publish{Topic: "a/b"}); !errors.Is(err, node.ErrClosed) {
		t.Errorf("Publish after shutdown = %v, want ErrClosed", err)
	}
}

// admStore opens a store at path, closed at the end of the test unless closed before.
func admStore(t *testing.T, path string) (*session.Store, func()) {
	t.Helper()
	st, err := session.OpenStore(path, session.StoreOptions{LockTimeout: time.Second})
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
	return st, closeStore
}

// TestAdminPublishAndDeleteAreDurable restarts the broker on its store: what
// Publish and DeleteRetained did must go through the store like a client's
// publish, and be there after the restart.
func TestAdminPublishAndDeleteAreDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skein.db")
	st, closeStore := admStore(t, path)
	cfg := admConfig()
	cfg.Store = st
	b := nodetest.Start(t, cfg)
	ctx := context.Background()

	c := admConnect(t, b.Addr, proto.V5, "durable", false)
	c.Subscribe(1, 1, "d/#")
	c.Disconnect()
	nodetest.Eventually(t, "offline", func() bool { return b.Stats.Connected.Load() == 0 })
	if n, err := b.Publish(ctx, &proto.Publish{Topic: "d/1", QoS: 1, Payload: []byte("queued")}); err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	for _, topic := range []string{"keep", "drop"} {
		if _, err := b.Publish(ctx, &proto.Publish{Topic: topic, Retain: true, Payload: []byte(topic)}); err != nil {
			t.Fatalf("Publish retained %s: %v", topic, err)
		}
	}
	if ok, err := b.DeleteRetained(ctx, "drop"); !ok || err != nil {
		t.Fatalf("DeleteRetained(drop) = %v, %v", ok, err)
	}
	if ok, err := b.DeleteRetained(ctx, "drop"); ok || err != nil {
		t.Fatalf("second DeleteRetained(drop) = %v, %v; want false, nil", ok, err)
	}
	if _, err := b.DeleteRetained(ctx, "bad/#"); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("DeleteRetained(bad/#) = %v, want ErrInvalid", err)
	}
	if st := b.SessionStats(); st.Queued != 1 || st.Offline != 1 || st.Persistent != 1 {
		t.Errorf("SessionStats = %+v, want one offline persistent session with one queued message", st)
	}

	sctx, cancel := context.WithTimeout(ctx, nodetest.Timeout)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	closeStore()

	st2, _ := admStore(t, path)
	cfg.Store = st2
	b2 := nodetest.Start(t, cfg)
	if m, ok, err := b2.RetainedMessage("keep"); !ok || err != nil || string(m.Payload) != "keep" || m.From != node.APIClientID {
		t.Errorf("retained keep after restart: %+v %v %v", m, ok, err)
	}
	if _, ok, _ := b2.RetainedMessage("drop"); ok {
		t.Error("deleted retained message came back after a restart")
	}
	c2 := admConnect(t, b2.Addr, proto.V5, "durable", false)
	c2.ExpectPublish("d/1", "queued")
}

func TestAdminSessionStatsAndClients(t *testing.T) {
	cfg := admConfig()
	cfg.Session.MaxInflight = 2
	b := nodetest.Start(t, cfg)
	slow := admConnect(t, b.Addr, proto.V5, "slow", false)
	slow.Subscribe(1, 1, "s/#")
	other := admConnect(t, b.Addr, proto.V311, "other", true)
	other.Subscribe(1, 1, "s/1", "t")
	ctx := context.Background()
	for range 5 {
		if _, err := b.Publish(ctx, &proto.Publish{Topic: "s/1", QoS: 1, Payload: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	// slow never acknowledges: 2 inflight, 3 queued. other acknowledges its 2 in the
	// window and the rest follow.
	for range 5 {
		other.ExpectPublish("s/1", "m")
	}
	for range 2 {
		nodetest.Expect[*proto.Publish](slow)
	}
	nodetest.Eventually(t, "other drained", func() bool {
		ci, _, _ := b.Client("other")
		return ci.Inflight == 0
	})
	st := b.SessionStats()
	want := node.SessionStats{Online: 2, Offline: 0, Persistent: 1, Inflight: 2, Queued: 3}
	if st != want {
		t.Errorf("SessionStats = %+v, want %+v", st, want)
	}

	cs := b.Clients()
	if len(cs) != 2 || cs[0].ClientID != "other" || cs[1].ClientID != "slow" {
		t.Fatalf("Clients = %+v, want other then slow", cs)
	}
	if s := cs[1]; !s.Connected || s.Version != proto.V5 || s.Inflight != 2 || s.Queued != 3 || s.Subscriptions != 1 ||
		s.Expiry != 3600 || !s.Persistent() || s.KeepAlive != time.Minute || s.RemoteAddr != slow.Conn.LocalAddr().String() {
		t.Errorf("slow = %+v", s)
	}
	if o := cs[0]; o.Version != proto.V311 || o.Subscriptions != 2 || o.Persistent() {
		t.Errorf("other = %+v", o)
	}
	if _, _, ok := b.Client(""); ok {
		t.Error("Client(\"\") found a session")
	}
}

func TestAdminSubscriptionsAndRoutes(t *testing.T) {
	b := nodetest.Start(t, admConfig())
	a := admConnect(t, b.Addr, proto.V5, "a", true)
	a.Subscribe(1, 1, "#", "$share/g/x/+", "x/y")
	c := admConnect(t, b.Addr, proto.V5, "c", true)
	c.Subscribe(1, 0, "$share/g/x/+", "$SYS/#")

	type sub struct{ id, filter string }
	subs := func(in []node.SubscriptionInfo) []sub {
		var out []sub
		for _, s := range in {
			out = append(out, sub{s.ClientID, s.Filter})
		}
		return out
	}
	all := []sub{{"a", "#"}, {"a", "$share/g/x/+"}, {"a", "x/y"}, {"c", "$SYS/#"}, {"c", "$share/g/x/+"}}
	if got := subs(b.Subscriptions()); !slices.Equal(got, all) {
		t.Errorf("Subscriptions = %v, want %v", got, all)
	}
	cases := []struct {
		topic string
		want  []sub
	}{
		{"x/y", []sub{{"a", "#"}, {"a", "$share/g/x/+"}, {"a", "x/y"}, {"c", "$share/g/x/+"}}},
		{"x/z", []sub{{"a", "#"}, {"a", "$share/g/x/+"}, {"c", "$share/g/x/+"}}},
		{"$SYS/broker/uptime", []sub{{"c", "$SYS/#"}}}, // not "#" [MQTT-4.7.2-1]
		{"other", []sub{{"a", "#"}}},
	}
	for _, tc := range cases {
		if got := subs(b.SubscriptionsMatching(tc.topic)); !slices.Equal(got, tc.want) {
			t.Errorf("SubscriptionsMatching(%q) = %v, want %v", tc.topic, got, tc.want)
		}
	}
	routes := b.Routes()
	wantRoutes := []node.RouteInfo{{Filter: "#", Subscribers: 1}, {Filter: "$SYS/#", Subscribers: 1}, {Filter: "$share/g/x/+", Subscribers: 2}, {Filter: "x/y", Subscribers: 1}}
	if !slices.Equal(routes, wantRoutes) {
		t.Errorf("Routes = %+v, want %+v", routes, wantRoutes)
	}
	// The shared group's filter counts once, under x/+.
	if n := b.FilterCount(); n != 4 {
		t.Errorf("FilterCount = %d, want 4", n)
	}
}

func TestAdminRetainedMessages(t *testing.T) {
	cfg := admConfig()
	var skew atomic.Int64 // the broker's clock runs this far ahead
	cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	b := nodetest.Start(t, cfg)
	ctx := context.Background()
	for _, topic := range []string{"r/b", "r/a", "$x/hidden", "s"} {
		if _, err := b.Publish(ctx, &proto.Publish{Topic: topic, Retain: true, Payload: []byte(topic)}); err != nil {
			t.Fatal(err)
		}
	}
	exp := &proto.Publish{Topic: "r/expired", Retain: true, Payload: []byte("old")}
	exp.Props.MessageExpiry = 60
	exp.Props.Set(proto.PropMessageExpiry)
	if _, err := b.Publish(ctx, exp); err != nil {
		t.Fatal(err)
	}
	topics := func(filter string) []string {
		ms, err := b.RetainedMessages(filter)
		if err != nil {
			t.Fatalf("RetainedMessages(%q): %v", filter, err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Topic)
		}
		return out
	}
	if got := topics("r/+"); !slices.Equal(got, []string{"r/a", "r/b", "r/expired"}) {
		t.Errorf("r/+ = %v", got)
	}
	if got := topics("#"); !slices.Equal(got, []string{"r/a", "r/b", "r/expired", "s"}) {
		t.Errorf("# = %v: want every topic but the $ one", got)
	}
	if got := topics("$x/#"); !slices.Equal(got, []string{"$x/hidden"}) {
		t.Errorf("$x/# = %v", got)
	}
	for _, bad := range []string{"a/#/b", "$share/g/r/+", ""} {
		if _, err := b.RetainedMessages(bad); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("RetainedMessages(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, ok, _ := b.RetainedMessage("r/expired"); !ok {
		t.Fatal("r/expired is gone before its expiry")
	}
	skew.Store(int64(time.Minute))
	if _, ok, _ := b.RetainedMessage("r/expired"); ok {
		t.Error("RetainedMessage shows r/expired after its expiry")
	}
	if got := topics("r/+"); !slices.Equal(got, []string{"r/a", "r/b"}) {
		t.Errorf("r/+ after expiry = %v", got)
	}
}

// TestAdminListingsRaceWithConnections reads every listing while clients connect,
// subscribe and leave; the race detector checks the reads of connection fields.
func TestAdminListingsRaceWithConnections(t *testing.T) {
	b := nodetest.Start(t, admConfig())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, ci := range b.Clients() {
				b.Client(ci.ClientID)
			}
			b.Subscriptions()
			b.SubscriptionsMatching("r/1")
			b.Routes()
			b.SessionStats()
		}
	}()
	for i := range 20 {
		c := admConnect(t, b.Addr, proto.Version(3+i%3), "racer", i%2 == 0)
		c.Subscribe(1, 1, "r/+")
		c.Disconnect()
	}
	close(stop)
	wg.Wait()
	nodetest.Eventually(t, "all gone", func() bool { return b.Stats.Connected.Load() == 0 })
}
