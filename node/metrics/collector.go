package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/session"
)

// ClusterStats is a point-in-time view of the cluster as one node sees it.
type ClusterStats struct {
	// Leader is set on the Raft leader.
	Leader bool
	// Term, CommitIndex and AppliedIndex are this node's Raft figures.
	Term, CommitIndex, AppliedIndex uint64
	// LastContact is the time since this node last heard from the leader (0 on the
	// leader).
	LastContact time.Duration
	// Members counts the cluster members by state ("alive", "suspect", "dead",
	// "left"), this node included.
	Members map[string]int
	// Forwarded and ReceivedFrom count the messages sent to and received from each
	// peer node, by peer name, since this node started.
	Forwarded, ReceivedFrom map[string]uint64
	// Routes is the number of entries of the cluster route table.
	Routes int
	// Held has, per peer node, what this node holds on disk for it while it is
	// down or does not accept messages in time, and what became of those.
	Held map[string]HeldStats
}

// HeldStats are the figures of the messages one node holds for one peer.
type HeldStats struct {
	// Messages and Bytes are held now.
	Messages int
	Bytes    int64
	// Spooled counts messages written to the spool; Dropped those dropped from it
	// (oldest first, past its bounds) and Purged those deleted with the peer's
	// routes; Timeouts the forward timeouts; DiscardedQoS0 the QoS 0 messages not
	// held. Each counts since the node started.
	Spooled, Dropped, Purged, Timeouts, DiscardedQoS0 uint64
}

// ClusterSource gives the cluster figures of this node. ClusterStats is called at
// every scrape, possibly from several goroutines at once: it must be safe for
// concurrent use, must not block on the network, and the maps it returns must not
// be modified afterwards.
type ClusterSource interface {
	ClusterStats() ClusterStats
}

// Collector is a prometheus.Collector for one broker. Counters are read from
// node.Stats and the session figures from the broker at scrape time.
type Collector struct {
	b       *node.Broker
	cluster ClusterSource

	buildInfo          *prometheus.Desc
	connections        *prometheus.Desc
	connectionsTotal   *prometheus.Desc
	refused            *prometheus.Desc
	closes             *prometheus.Desc
	sessions           *prometheus.Desc
	persistent         *prometheus.Desc
	expired            *prometheus.Desc
	subscriptions      *prometheus.Desc
	routes             *prometheus.Desc
	retained           *prometheus.Desc
	received           *prometheus.Desc
	sent               *prometheus.Desc
	dropped            *prometheus.Desc
	bytesReceived      *prometheus.Desc
	bytesSent          *prometheus.Desc
	packetsReceived    *prometheus.Desc
	packetsSent        *prometheus.Desc
	inflight           *prometheus.Desc
	queued             *prometheus.Desc
	latency            *prometheus.Desc
	storeCommits       *prometheus.Desc
	storeWrites        *prometheus.Desc
	raftLeader         *prometheus.Desc
	raftTerm           *prometheus.Desc
	raftCommit         *prometheus.Desc
	raftApplied        *prometheus.Desc
	raftLastContact    *prometheus.Desc
	members            *prometheus.Desc
	forwarded          *prometheus.Desc
	forwardedReceived  *prometheus.Desc
	handedOver         *prometheus.Desc
	relayed            *prometheus.Desc
	heldMessages       *prometheus.Desc
	heldBytes          *prometheus.Desc
	spooled            *prometheus.Desc
	heldDropped        *prometheus.Desc
	forwardTimeouts    *prometheus.Desc
	latencyUpperBounds []float64
}

// NewCollector returns the collector of b; cluster is nil on a standalone node,
// and the cluster metrics are then left out.
func NewCollector(b *node.Broker, cluster ClusterSource) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("skein_"+name, help, labels, nil)
	}
	return &Collector{
		b:                  b,
		cluster:            cluster,
		buildInfo:          d("build_info", "Always 1, labelled with the broker version.", "version"),
		connections:        d("connections", "Clients connected now (past CONNACK)."),
		connectionsTotal:   d("connections_total", "Sockets accepted."),
		refused:            d("connections_refused_total", "Connections refused: max_connections closes the socket at once, connect_refused answers CONNECT with a failure code.", "reason"),
		closes:             d("connection_closes_total", "Connections closed, by reason.", "reason"),
		sessions:           d("sessions", "Sessions, by whether their client is connected.", "state"),
		persistent:         d("sessions_persistent", "Sessions with an expiry interval, which outlive their connection."),
		expired:            d("sessions_expired_total", "Sessions ended by their expiry interval."),
		subscriptions:      d("subscriptions", "Subscriptions of local sessions (one per session and filter)."),
		routes:             d("routes", "Route table entries: the cluster's, or on a standalone node the distinct filters subscribed to."),
		retained:           d("retained_messages", "Retained messages."),
		received:           d("messages_received_total", "PUBLISH packets received from clients, by QoS.", "qos"),
		sent:               d("messages_sent_total", "PUBLISH packets sent to clients."),
		dropped:            d("messages_dropped_total", "Messages not delivered to a subscriber, by reason.", "reason"),
		bytesReceived:      d("bytes_received_total", "Bytes read from client connections."),
		bytesSent:          d("bytes_sent_total", "Bytes written to client connections."),
		packetsReceived:    d("packets_received_total", "MQTT control packets received from clients."),
		packetsSent:        d("packets_sent_total", "MQTT control packets sent to clients."),
		inflight:           d("inflight_messages", "QoS 1 and 2 messages sent to clients and not yet acknowledged, over all sessions."),
		queued:             d("queued_messages", "Messages waiting in session queues, over all sessions."),
		latency:            d("delivery_latency_seconds", "Time from receiving a PUBLISH to writing it to a subscriber's socket."),
		storeCommits:       d("store_commits_total", "Session store transactions committed (group commits)."),
		storeWrites:        d("store_writes_total", "Session store writes, carried by store_commits_total transactions."),
		raftLeader:         d("raft_leader", "1 on the Raft leader, 0 elsewhere."),
		raftTerm:           d("raft_term", "Current Raft term."),
		raftCommit:         d("raft_commit_index", "Raft commit index."),
		raftApplied:        d("raft_applied_index", "Raft index applied to the route table."),
		raftLastContact:    d("raft_last_contact_seconds", "Time since this node last heard from the Raft leader."),
		members:            d("cluster_members", "Cluster members, by state.", "state"),
		forwarded:          d("forwarded_messages_total", "Messages forwarded to a peer node.", "peer"),
		forwardedReceived:  d("forwarded_messages_received_total", "Messages received from a peer node.", "peer"),
		handedOver:         d("sessions_handed_over_total", "Persistent sessions moved to another node by a takeover."),
		relayed:            d("messages_relayed_total", "Messages passed on to the node a session moved to, while the route table caught up."),
		heldMessages:       d("peer_spool_messages", "Messages held on disk for a peer node that is down or did not accept them in time.", "peer"),
		heldBytes:          d("peer_spool_bytes", "Bytes of the messages held on disk for a peer node.", "peer"),
		spooled:            d("peer_spooled_messages_total", "Messages written to the disk spool of a peer node.", "peer"),
		heldDropped:        d("peer_spool_dropped_messages_total", "Messages for a peer node not delivered: full (oldest dropped past the spool bounds), purged (with the dead node's routes) or qos0 (not held for a node that cannot take it).", "peer", "reason"),
		forwardTimeouts:    d("forward_timeouts_total", "Times a live peer node did not accept messages within the forward timeout (they went to the spool).", "peer"),
		latencyUpperBounds: node.LatencyBuckets[:],
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.buildInfo, c.connections, c.connectionsTotal, c.refused, c.closes, c.sessions,
		c.persistent, c.expired, c.subscriptions, c.routes, c.retained, c.received, c.sent,
		c.dropped, c.bytesReceived, c.bytesSent, c.packetsReceived, c.packetsSent,
		c.inflight, c.queued, c.latency, c.storeCommits, c.storeWrites,
	} {
		ch <- d
	}
	if c.cluster != nil {
		for _, d := range []*prometheus.Desc{
			c.raftLeader, c.raftTerm, c.raftCommit, c.raftApplied, c.raftLastContact,
			c.members, c.forwarded, c.forwardedReceived,
			c.heldMessages, c.heldBytes, c.spooled, c.heldDropped, c.forwardTimeouts,
			c.handedOver, c.relayed,
		} {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	st := &b.Stats
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	gauge(c.buildInfo, 1, b.Version())
	gauge(c.connections, float64(st.Connected.Load()))
	counter(c.connectionsTotal, float64(st.ConnectionsTotal.Load()))
	closeReasons := node.CloseReasons()
	refusedIdx := -1
	for i, r := range closeReasons {
		if i >= len(st.Closed) {
			break
		}
		n := float64(st.Closed[i].Load())
		counter(c.closes, n, r)
		if r == "connect_refused" {
			refusedIdx = i
		}
	}
	counter(c.refused, float64(st.Refused.Load()), "max_connections")
	if refusedIdx >= 0 {
		counter(c.refused, float64(st.Closed[refusedIdx].Load()), "connect_refused")
	}

	ss := b.SessionStats()
	gauge(c.sessions, float64(ss.Online), "online")
	gauge(c.sessions, float64(ss.Offline), "offline")
	gauge(c.persistent, float64(ss.Persistent))
	counter(c.expired, float64(st.SessionsExpired.Load()))
	gauge(c.inflight, float64(ss.Inflight))
	gauge(c.queued, float64(ss.Queued))
	gauge(c.subscriptions, float64(b.SubscriptionCount()))
	gauge(c.retained, float64(b.RetainedCount()))

	for qos := range st.PublishedReceived {
		counter(c.received, float64(st.PublishedReceived[qos].Load()), strconv.Itoa(qos))
	}
	counter(c.sent, float64(st.MessagesSent.Load()))
	// Stats.Dropped is indexed by session.DropReason; index 0 is "none" and never
	// counts.
	for i, r := range session.DropReasons() {
		if i == int(session.NotDropped) || i >= len(st.Dropped) {
			continue
		}
		counter(c.dropped, float64(st.Dropped[i].Load()), r)
	}
	counter(c.bytesReceived, float64(st.BytesReceived.Load()))
	counter(c.bytesSent, float64(st.BytesSent.Load()))
	counter(c.packetsReceived, float64(st.PacketsReceived.Load()))
	counter(c.packetsSent, float64(st.PacketsSent.Load()))
	ch <- c.latencyHistogram(&st.DeliveryLatency)

	if commits, writes, ok := b.StoreStats(); ok {
		counter(c.storeCommits, float64(commits))
		counter(c.storeWrites, float64(writes))
	}

	if c.cluster == nil {
		gauge(c.routes, float64(b.FilterCount()))
		return
	}
	cs := c.cluster.ClusterStats()
	gauge(c.routes, float64(cs.Routes))
	leader := 0.0
	if cs.Leader {
		leader = 1
	}
	gauge(c.raftLeader, leader)
	gauge(c.raftTerm, float64(cs.Term))
	gauge(c.raftCommit, float64(cs.CommitIndex))
	gauge(c.raftApplied, float64(cs.AppliedIndex))
	gauge(c.raftLastContact, cs.LastContact.Seconds())
	for state, n := range cs.Members {
		gauge(c.members, float64(n), state)
	}
	for peer, n := range cs.Forwarded {
		counter(c.forwarded, float64(n), peer)
	}
	for peer, n := range cs.ReceivedFrom {
		counter(c.forwardedReceived, float64(n), peer)
	}
	counter(c.handedOver, float64(st.SessionsHandedOver.Load()))
	counter(c.relayed, float64(st.MessagesRelayed.Load()))
	for peer, h := range cs.Held {
		gauge(c.heldMessages, float64(h.Messages), peer)
		gauge(c.heldBytes, float64(h.Bytes), peer)
		counter(c.spooled, float64(h.Spooled), peer)
		counter(c.heldDropped, float64(h.Dropped), peer, "full")
		counter(c.heldDropped, float64(h.Purged), peer, "purged")
		counter(c.heldDropped, float64(h.DiscardedQoS0), peer, "qos0")
		counter(c.forwardTimeouts, float64(h.Timeouts), peer)
	}
}

// latencyHistogram turns the broker's per-bucket counts into a Prometheus
// histogram, whose buckets are cumulative.
func (c *Collector) latencyHistogram(h *node.Histogram) prometheus.Metric {
	counts, sum := h.Snapshot()
	buckets := make(map[float64]uint64, len(c.latencyUpperBounds))
	var cum uint64
	for i, upper := range c.latencyUpperBounds {
		if i < len(counts) {
			cum += counts[i]
		}
		buckets[upper] = cum
	}
	// The last count is the +Inf bucket: it is in the total only.
	for _, n := range counts[min(len(c.latencyUpperBounds), len(counts)):] {
		cum += n
	}
	return prometheus.MustNewConstHistogram(c.latency, cum, sum.Seconds(), buckets)
}

// NewRegistry returns a registry holding the broker's collector and the Go runtime
// and process collectors.
func NewRegistry(b *node.Broker, cluster ClusterSource) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(b, cluster),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves b's metrics, with the Go runtime and process ones, in the
// Prometheus exposition formats; mount it on /metrics.
func Handler(b *node.Broker, cluster ClusterSource) http.Handler {
	reg := NewRegistry(b, cluster)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
