package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/skein-mq/skein/session"
)

// Config configures a cluster node. Start from DefaultConfig.
type Config struct {
	// NodeName names this node uniquely in the cluster (default: the hostname).
	NodeName string
	// GossipAddr is the memberlist bind address (default ":7946").
	GossipAddr string
	// PeerAddr is the gRPC and Raft bind address (default ":7947").
	PeerAddr string
	// AdvertiseAddr is the IP (or IP:port for gossip) other nodes reach this one at;
	// empty uses the bind address, or the first private address when bound to all.
	AdvertiseAddr string
	// Join lists seed addresses (host:port of their gossip address) or DNS names whose
	// A records are peers; joining retries in the background until one answers.
	Join []string
	// BootstrapExpect is how many nodes form the first Raft configuration: the nodes
	// wait until they see that many members, then bootstrap together. 0 means this
	// node never bootstraps and waits for a leader to add it.
	BootstrapExpect int
	// MaxVoters caps the Raft voters (3 or 5); further nodes are non-voters that still
	// receive the route table.
	MaxVoters int
	// DeadNodeGrace is how long a dead node keeps its routes (and the messages held
	// for it) before the leader purges them and removes it from Raft.
	DeadNodeGrace time.Duration
	// TombstoneRetention is how long a cleared retained topic keeps its tombstone
	// (the clear's stamp), so that a node that was away or cut off meanwhile cannot
	// bring the message back when the nodes merge their sets. Make it longer than
	// any outage a node is expected to come back from with its data (and much
	// longer than DeadNodeGrace). A node away for longer is handled by the rule in
	// absence.go. Default 24h.
	TombstoneRetention time.Duration
	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string
	// Store is the node's session store. Messages for a node that is down or does
	// not accept them in time are held in its spool (session.Spool), so the
	// publisher's acknowledgement, sent once that write is durable, survives a
	// restart of this node. Required.
	Store *session.Store
	// Spool bounds what is held on disk for each node (default
	// session.DefaultSpoolConfig: 100000 messages, 256 MiB); past a bound the
	// oldest are dropped and counted.
	Spool session.SpoolConfig
	// ForwardTimeout is how long a QoS 1/2 message may wait for a live node to
	// accept it before it is held in the spool instead and its publisher answered
	// (default 5s). It covers a node that gossip still sees alive but whose peer
	// port is unreachable or stalled, which would otherwise hold the publisher
	// forever. It is well above a healthy acceptance (one fsync on the receiver,
	// milliseconds) and above Raft's heartbeat (1s), and about as long as gossip
	// takes to declare a crashed node dead (LAN probes every second, suspicion ~4s),
	// so a publisher waits about that long at most whichever notices first.
	ForwardTimeout time.Duration
	// RouteBatchDelay and RouteBatchSize bound how route changes are batched into
	// one Raft entry.
	RouteBatchDelay time.Duration
	RouteBatchSize  int
	// FastTimeouts shortens gossip and Raft timeouts for tests on one machine.
	FastTimeouts bool
	// Logger receives the cluster's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		GossipAddr:         ":7946",
		PeerAddr:           ":7947",
		MaxVoters:          3,
		DeadNodeGrace:      30 * time.Second,
		TombstoneRetention: 24 * time.Hour,
		RouteBatchDelay:    5 * time.Millisecond,
		RouteBatchSize:     1000,
		Spool:              session.DefaultSpoolConfig(),
		ForwardTimeout:     5 * time.Second,
	}
}

// Validate checks the configuration and names the setting at fault.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name: must not be empty"))
	}
	for name, addr := range map[string]string{"gossip addr": c.GossipAddr, "peer addr": c.PeerAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
		}
	}
	if c.MaxVoters != 3 && c.MaxVoters != 5 && c.MaxVoters != 1 {
		errs = append(errs, fmt.Errorf("max voters %d: must be 1, 3 or 5", c.MaxVoters))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap expect %d: must not be negative", c.BootstrapExpect))
	}
	if c.DeadNodeGrace <= 0 {
		errs = append(errs, fmt.Errorf("dead node grace %v: must be positive", c.DeadNodeGrace))
	}
	if c.TombstoneRetention <= 0 {
		errs = append(errs, fmt.Errorf("tombstone retention %v: must be positive", c.TombstoneRetention))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir: must not be empty"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("store: must be set (messages for unreachable nodes are held in it)"))
	}
	if err := c.Spool.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ForwardTimeout <= 0 {
		errs = append(errs, fmt.Errorf("forward timeout %v: must be positive", c.ForwardTimeout))
	}
	if c.RouteBatchDelay <= 0 || c.RouteBatchSize < 1 {
		errs = append(errs, fmt.Errorf("route batch: delay %v and size %d must be positive", c.RouteBatchDelay, c.RouteBatchSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster config: %w", err)
	}
	return nil
}
