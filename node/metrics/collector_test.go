package metrics_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/metrics"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// scrape fetches url and returns every sample of the text exposition format, keyed
// by the series as printed: `name{label="value",...}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("scrape: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return out
}

// want checks samples; a missing series fails like a wrong value.
func want(t *testing.T, got map[string]float64, series map[string]float64) {
	t.Helper()
	for k, v := range series {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: missing from the scrape", k)
		case g != v:
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

func serve(t *testing.T, b *node.Broker, cs metrics.ClusterSource) string {
	t.Helper()
	srv := httptest.NewServer(metrics.Handler(b, cs))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

func config() node.Config {
	cfg := node.DefaultConfig()
	cfg.SysInterval = 0 // no $SYS traffic in the counters
	cfg.Session.MaxQueued = 2
	return cfg
}

func TestCountersFollowTraffic(t *testing.T) {
	b := nodetest.Start(t, config())
	url := serve(t, b.Broker, nil)

	before := scrape(t, url)
	want(t, before, map[string]float64{
		"skein_connections":                                 0,
		`skein_messages_received_total{qos="1"}`:            0,
		"skein_delivery_latency_seconds_count":              0,
		`skein_sessions{state="online"}`:                    0,
		`skein_messages_dropped_total{reason="queue_full"}`: 0,
	})

	sub := nodetest.Connect(t, b.Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "t/#")
	pub := nodetest.Connect(t, b.Addr, proto.V311, "pub")
	for i := range 3 {
		pub.Publish(&proto.Publish{Topic: "t/1", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("m")})
		sub.ExpectPublish("t/1", "m")
	}
	pub.Publish(&proto.Publish{Topic: "t/0", Payload: []byte("zero")})
	sub.ExpectPublish("t/0", "zero")
	// One retained message with no subscriber.
	pub.Publish(&proto.Publish{Topic: "r/1", QoS: 1, PacketID: 9, Retain: true, Payload: []byte("kept")})

	// A persistent session that goes offline with a queue of two: of three QoS 1
	// messages, two are queued and the third is dropped.
	slow := nodetest.Dial(t, b.Addr, proto.V311)
	if ack := slow.Connect(&proto.Connect{ClientID: "slow", KeepAlive: 60}); ack.ReasonCode != 0 {
		t.Fatalf("CONNECT slow: %v", ack.ReasonCode)
	}
	slow.Subscribe(1, 1, "q/#")
	slow.Disconnect()
	nodetest.Eventually(t, "slow offline", func() bool { return b.Stats.Connected.Load() == 2 })
	for i := range 3 {
		pub.Publish(&proto.Publish{Topic: "q/x", QoS: 1, PacketID: uint16(20 + i), Payload: []byte("q")})
	}

	// One message inflight: read by the subscriber and not acknowledged.
	pub.Publish(&proto.Publish{Topic: "t/2", QoS: 1, PacketID: 30, Payload: []byte("open")})
	if p := nodetest.Expect[*proto.Publish](sub); string(p.Payload) != "open" {
		t.Fatalf("got %q, want the inflight message", p.Payload)
	}

	// Settle the counters: a ping answered means the broker read everything the
	// client sent before it, and the writer counts a message once its write returns.
	for _, c := range []*nodetest.Client{sub, pub} {
		c.Send(&proto.Pingreq{})
		nodetest.Expect[*proto.Pingresp](c)
	}
	const delivered = 5 // 3 + 1 + the inflight one, all to sub
	nodetest.Eventually(t, "deliveries counted", func() bool { return b.Stats.MessagesSent.Load() == delivered })
	bytesIn, packetsIn := float64(b.Stats.BytesReceived.Load()), float64(b.Stats.PacketsReceived.Load())
	got := scrape(t, url)
	want(t, got, map[string]float64{
		"skein_connections":       2,
		"skein_connections_total": 3,
		`skein_connection_closes_total{reason="client_disconnect"}`: 1,
		`skein_connection_closes_total{reason="kicked"}`:            0,
		`skein_messages_received_total{qos="0"}`:                    1,
		`skein_messages_received_total{qos="1"}`:                    8, // 3 + retained + 3 queued + inflight
		`skein_messages_received_total{qos="2"}`:                    0,
		"skein_messages_sent_total":                                 delivered,
		`skein_messages_dropped_total{reason="queue_full"}`:         1,
		`skein_messages_dropped_total{reason="offline"}`:            0,
		`skein_sessions{state="online"}`:                            2,
		`skein_sessions{state="offline"}`:                           1,
		"skein_sessions_persistent":                                 1,
		"skein_sessions_expired_total":                              0,
		"skein_subscriptions":                                       2,
		"skein_routes":                                              2,
		"skein_retained_messages":                                   1,
		"skein_queued_messages":                                     2,
		"skein_inflight_messages":                                   1,
		"skein_delivery_latency_seconds_count":                      delivered,
		`skein_delivery_latency_seconds_bucket{le="+Inf"}`:          delivered,
		"skein_bytes_received_total":                                bytesIn,
		"skein_packets_received_total":                              packetsIn,
		`skein_build_info{version="dev"}`:                           1,
	})
	if _, ok := got[`skein_messages_dropped_total{reason="none"}`]; ok {
		t.Error(`reason="none" is exported; it never counts`)
	}
	// The buckets are cumulative: never decreasing, ending at the count.
	prev := 0.0
	for _, le := range node.LatencyBuckets {
		k := fmt.Sprintf(`skein_delivery_latency_seconds_bucket{le="%s"}`, strconv.FormatFloat(le, 'g', -1, 64))
		v, ok := got[k]
		if !ok {
			t.Fatalf("%s missing", k)
		}
		if v < prev {
			t.Errorf("%s = %v, below the previous bucket %v", k, v, prev)
		}
		prev = v
	}
	if got["skein_delivery_latency_seconds_sum"] <= 0 {
		t.Errorf("latency sum = %v, want > 0", got["skein_delivery_latency_seconds_sum"])
	}
	for _, k := range []string{"skein_bytes_sent_total", "skein_packets_sent_total"} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
	for _, k := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing: the Go and process collectors are not registered", k)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "skein_raft_") || strings.HasPrefix(k, "skein_store_") {
			t.Errorf("%s exported without a cluster or store", k)
		}
	}
}

func TestRefusals(t *testing.T) {
	// MQTT 3.1 requires a client id: CONNACK refuses, the connection closes.
	b := nodetest.Start(t, config())
	c := nodetest.Dial(t, b.Addr, proto.V31)
	if ack := c.Connect(&proto.Connect{CleanStart: true}); ack.ReasonCode == 0 {
		t.Fatal("empty 3.1 client id accepted")
	}
	c.ExpectClosed()
	nodetest.Eventually(t, "refused connection counted", func() bool {
		return b.Stats.Closed[closeIndex(t, "connect_refused")].Load() == 1
	})
	want(t, scrape(t, serve(t, b.Broker, nil)), map[string]float64{
		`skein_connections_refused_total{reason="connect_refused"}`: 1,
		`skein_connection_closes_total{reason="connect_refused"}`:   1,
		`skein_connections_refused_total{reason="max_connections"}`: 0,
		"skein_connections_total":                                   1,
		"skein_connections":                                         0,
	})

	// Past MaxConnections, the socket is closed at once.
	cfg := config()
	cfg.MaxConnections = 1
	full := nodetest.Start(t, cfg)
	nodetest.Connect(t, full.Addr, proto.V311, "only")
	extra := nodetest.Dial(t, full.Addr, proto.V311)
	extra.ExpectClosed()
	nodetest.Eventually(t, "socket refused", func() bool { return full.Stats.Refused.Load() == 1 })
	want(t, scrape(t, serve(t, full.Broker, nil)), map[string]float64{
		`skein_connections_refused_total{reason="max_connections"}`: 1,
		`skein_connections_refused_total{reason="connect_refused"}`: 0,
		"skein_connections":       1,
		"skein_connections_total": 1, // the refused socket was never accepted
	})
}

func closeIndex(t *testing.T, reason string) int {
	t.Helper()
	for i, r := range node.CloseReasons() {
		if r == reason {
			return i
		}
	}
	t.Fatalf("no close reason %q", reason)
	return 0
}

func TestStoreCounters(t *testing.T) {
	st, err := session.OpenStore(filepath.Join(t.TempDir(), "skein.db"), session.StoreOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	cfg := config()
	cfg.Store = st
	b := nodetest.Start(t, cfg) // shut down before the store closes (Cleanup is LIFO)
	url := serve(t, b.Broker, nil)

	c := nodetest.Dial(t, b.Addr, proto.V311)
	c.Connect(&proto.Connect{ClientID: "persistent", KeepAlive: 60})
	c.Subscribe(1, 1, "a/b") // written to the store before SUBACK
	got := scrape(t, url)
	commits, writes, ok := b.StoreStats()
	if !ok || commits == 0 || writes == 0 {
		t.Fatalf("StoreStats = %d, %d, %v: the subscription was not written", commits, writes, ok)
	}
	if got["skein_store_commits_total"] < 1 || got["skein_store_writes_total"] < got["skein_store_commits_total"] {
		t.Errorf("store commits %v, writes %v: want at least one commit carrying at least as many writes",
			got["skein_store_commits_total"], got["skein_store_writes_total"])
	}
}

// fakeCluster is a ClusterSource with fixed figures.
type fakeCluster struct{ st metrics.ClusterStats }

func (f fakeCluster) ClusterStats() metrics.ClusterStats { return f.st }

func TestClusterMetrics(t *testing.T) {
	b := nodetest.Start(t, config())
	c := nodetest.Connect(t, b.Addr, proto.V311, "local")
	c.Subscribe(1, 0, "x", "y", "z")
	fc := fakeCluster{metrics.ClusterStats{
		Leader: true, Term: 7, CommitIndex: 42, AppliedIndex: 41, LastContact: 1500 * time.Millisecond,
		Members:      map[string]int{"alive": 3, "dead": 1},
		Forwarded:    map[string]uint64{"n2": 5, "n3": 6},
		ReceivedFrom: map[string]uint64{"n2": 8},
		Routes:       10,
		Held:         map[string]metrics.HeldStats{"n3": {Messages: 4, Bytes: 400, Spooled: 9, Dropped: 2, Purged: 3, Timeouts: 1, DiscardedQoS0: 5}},
	}}
	want(t, scrape(t, serve(t, b.Broker, fc)), map[string]float64{
		"skein_raft_leader":                                                  1,
		"skein_raft_term":                                                    7,
		"skein_raft_commit_index":                                            42,
		"skein_raft_applied_index":                                           41,
		"skein_raft_last_contact_seconds":                                    1.5,
		`skein_cluster_members{state="alive"}`:                               3,
		`skein_cluster_members{state="dead"}`:                                1,
		`skein_forwarded_messages_total{peer="n2"}`:                          5,
		`skein_forwarded_messages_total{peer="n3"}`:                          6,
		`skein_forwarded_messages_received_total{peer="n2"}`:                 8,
		`skein_peer_spool_messages{peer="n3"}`:                               4,
		`skein_peer_spool_bytes{peer="n3"}`:                                  400,
		`skein_peer_spooled_messages_total{peer="n3"}`:                       9,
		`skein_peer_spool_dropped_messages_total{peer="n3",reason="full"}`:   2,
		`skein_peer_spool_dropped_messages_total{peer="n3",reason="purged"}`: 3,
		`skein_peer_spool_dropped_messages_total{peer="n3",reason="qos0"}`:   5,
		`skein_forward_timeouts_total{peer="n3"}`:                            1,
		"skein_routes":                     10, // the cluster's table, not the 3 local filters
		"skein_subscriptions":              3,
		"skein_sessions_handed_over_total": 0,
		"skein_messages_relayed_total":     0,
	})
	want(t, scrape(t, serve(t, b.Broker, nil)), map[string]float64{"skein_routes": 3})
}

func TestCollectorFollowsConventions(t *testing.T) {
	b := nodetest.Start(t, config())
	fc := fakeCluster{metrics.ClusterStats{Members: map[string]int{"alive": 1}, Forwarded: map[string]uint64{"n2": 1}, ReceivedFrom: map[string]uint64{"n2": 1},
		Held: map[string]metrics.HeldStats{"n2": {Messages: 1}}}}
	problems, err := testutil.CollectAndLint(metrics.NewCollector(b.Broker, fc))
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	// The registry gathers cleanly: no descriptor clashes with the Go and process
	// collectors, and every skein series has its prefix.
	n, err := testutil.GatherAndCount(metrics.NewRegistry(b.Broker, fc))
	if err != nil || n == 0 {
		t.Fatalf("gather: %d series, %v", n, err)
	}
	if own := testutil.CollectAndCount(metrics.NewCollector(b.Broker, fc)); own < 25 {
		t.Errorf("collector gives %d series, want every metric of the package", own)
	}
}
