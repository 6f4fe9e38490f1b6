package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/node/metrics"
	"github.com/skein-mq/skein/session"
)

// clusterOptions are the cluster settings of skein serve; giving --join or
// --bootstrap-expect makes the node a cluster member.
type clusterOptions struct {
	nodeName        string
	gossipAddr      string
	peerAddr        string
	advertiseAddr   string
	join            []string
	bootstrapExpect int
	maxVoters       int
	deadNodeGrace   time.Duration
	tombstoneTTL    time.Duration
	forwardTimeout  time.Duration
	spoolMessages   int
	spoolBytes      int64
}

func (c *clusterOptions) flags(f *pflag.FlagSet) {
	host, _ := os.Hostname()
	def := cluster.DefaultConfig()
	f.StringVar(&c.nodeName, "node-name", host, "this node's name in the cluster; the hostname by default")
	f.StringVar(&c.gossipAddr, "gossip-addr", def.GossipAddr, "cluster gossip (memberlist) address")
	f.StringVar(&c.peerAddr, "peer-addr", def.PeerAddr, "cluster gRPC and Raft address")
	f.StringVar(&c.advertiseAddr, "advertise-addr", "", "address other nodes reach this one at (default: the bind address, or the first private one)")
	f.StringSliceVar(&c.join, "join", nil, "comma-separated seed gossip addresses, or a DNS name whose A records are the peers; enables clustering")
	f.IntVar(&c.bootstrapExpect, "bootstrap-expect", 0, "number of nodes that form the first Raft configuration together; enables clustering")
	f.IntVar(&c.maxVoters, "max-voters", def.MaxVoters, "Raft voters (3 or 5); further nodes are non-voters")
	f.DurationVar(&c.deadNodeGrace, "dead-node-grace", def.DeadNodeGrace, "how long a dead node keeps its routes and held messages before they are purged")
	f.DurationVar(&c.tombstoneTTL, "tombstone-retention", def.TombstoneRetention, "how long a cleared retained topic is remembered, so a node that was away cannot bring the message back; longer than any outage a node returns from with its data")
	f.DurationVar(&c.forwardTimeout, "forward-timeout", def.ForwardTimeout, "how long a QoS 1/2 message waits for a live node to accept it before it is held on disk for that node and its publisher answered")
	f.IntVar(&c.spoolMessages, "peer-spool-max-messages", def.Spool.MaxMessages, "messages held on disk for one node that is down or unreachable; past it the oldest are dropped and counted")
	f.Int64Var(&c.spoolBytes, "peer-spool-max-bytes", def.Spool.MaxBytes, "bytes held on disk for one node that is down or unreachable; past it the oldest are dropped and counted; 0 for no limit beyond --peer-spool-max-messages")
}

func (c *clusterOptions) enabled() bool { return len(c.join) > 0 || c.bootstrapExpect > 0 }

// config builds the cluster configuration, naming the flag at fault. store is the
// node's session store, which holds the messages for unreachable nodes.
func (c *clusterOptions) config(dataDir string, store *session.Store, log *slog.Logger) (cluster.Config, error) {
	cfg := cluster.DefaultConfig()
	cfg.NodeName = c.nodeName
	cfg.GossipAddr = c.gossipAddr
	cfg.PeerAddr = c.peerAddr
	cfg.AdvertiseAddr = c.advertiseAddr
	cfg.BootstrapExpect = c.bootstrapExpect
	cfg.MaxVoters = c.maxVoters
	cfg.DeadNodeGrace = c.deadNodeGrace
	cfg.TombstoneRetention = c.tombstoneTTL
	cfg.DataDir = dataDir
	cfg.Store = store
	cfg.ForwardTimeout = c.forwardTimeout
	cfg.Spool.MaxMessages = c.spoolMessages
	cfg.Spool.MaxBytes = c.spoolBytes
	cfg.Logger = log
	for _, j := range c.join {
		if j = strings.TrimSpace(j); j != "" {
			cfg.Join = append(cfg.Join, j)
		}
	}
	checks := []struct {
		flag string
		bad  bool
		why  string
	}{
		{"node-name", c.nodeName == "", "must not be empty"},
		{"bootstrap-expect", c.bootstrapExpect < 0, "must not be negative"},
		{"max-voters", c.maxVoters != 1 && c.maxVoters != 3 && c.maxVoters != 5, "must be 1, 3 or 5"},
		{"dead-node-grace", c.deadNodeGrace <= 0, "must be positive"},
		{"tombstone-retention", c.tombstoneTTL <= 0, "must be positive"},
		{"forward-timeout", c.forwardTimeout <= 0, "must be positive"},
		{"peer-spool-max-messages", c.spoolMessages < 1, "must be at least 1"},
		{"peer-spool-max-bytes", c.spoolBytes < 0, "must not be negative"},
	}
	for _, ch := range checks {
		if ch.bad {
			return cfg, fmt.Errorf("--%s: %s", ch.flag, ch.why)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("cluster flags (--gossip-addr, --peer-addr): %w", err)
	}
	return cfg, nil
}

// clusterSource feeds the metrics collector from the cluster's status.
type clusterSource struct{ c *cluster.Cluster }

func (s clusterSource) ClusterStats() metrics.ClusterStats {
	st := s.c.Status()
	out := metrics.ClusterStats{
		Leader:       st.Leader == st.Node,
		Term:         st.Term,
		CommitIndex:  st.CommitIndex,
		AppliedIndex: st.AppliedIndex,
		LastContact:  st.LastContact,
		Members:      map[string]int{},
		Forwarded:    map[string]uint64{},
		ReceivedFrom: map[string]uint64{},
		Routes:       st.Routes,
		Held:         map[string]metrics.HeldStats{},
	}
	for _, h := range st.Held {
		out.Held[h.Node] = metrics.HeldStats{Messages: h.Messages, Bytes: h.Bytes, Spooled: h.Spooled, Dropped: h.Dropped,
			Purged: h.Purged, Timeouts: h.Timeouts, DiscardedQoS0: h.DiscardedQoS0}
	}
	if out.Leader {
		out.LastContact = 0
	}
	for _, m := range st.Members {
		out.Members[m.State]++
		if m.Name != st.Node {
			out.Forwarded[m.Name] = m.Forwarded
			out.ReceivedFrom[m.Name] = m.Received
		}
	}
	return out
}

// clusterHandler serves GET /api/v1/cluster: members, their state, the leader,
// voters and route counts per node.
func clusterHandler(c *cluster.Cluster) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, `{"error":"method not allowed"}`, http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if c == nil {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"this node is not part of a cluster"}` + "\n")) // the client went away
			return
		}
		_ = json.NewEncoder(w).Encode(c.Status()) // as above
	})
}
