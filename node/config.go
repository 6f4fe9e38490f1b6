package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/skein-mq/skein/node/auth"
	"github.com/skein-mq/skein/node/poll"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// Config configures a Broker. Start from DefaultConfig.
type Config struct {
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
	// ConnectTimeout closes a connection that sends no CONNECT within it.
	ConnectTimeout time.Duration
	// MaxPacketSize bounds every packet a client sends (and, in 5.0, is announced in
	// CONNACK). A larger packet closes the connection (5.0: DISCONNECT 0x95).
	MaxPacketSize int
	// MaxQoS is the highest QoS granted to subscriptions and accepted from publishers.
	MaxQoS byte
	// ReceiveMaximum is how many QoS 1/2 publishes a 5.0 client may have unacknowledged
	// towards the broker; it also bounds QoS 2 ids awaiting PUBREL for older clients.
	ReceiveMaximum int
	// TopicAliasMaximum is how many topic aliases a 5.0 client may use towards the broker.
	TopicAliasMaximum int
	// WriteTimeout closes a connection whose client stops reading for this long.
	WriteTimeout time.Duration
	// MaxWriteQueue bounds the packets waiting in one connection's write queue;
	// beyond it QoS 0 messages for that client are dropped and counted.
	MaxWriteQueue int
	// Session bounds each session's inflight window and queue.
	Session session.Config
	// Auth, when set, authenticates CONNECTs and authorizes topics; nil admits every
	// client to every topic.
	Auth Authorizer
	// LoginLimiter, when set, refuses an address after repeated failed logins.
	LoginLimiter *auth.LoginLimiter
	// EventLoop serves the connections of plain TCP listeners (a *net.TCPListener
	// given to Serve) from an epoll event loop, where an idle connection has no
	// goroutine and no buffer; false gives each connection a goroutine of its own, as
	// TLS and WebSocket connections always have. Only on Linux (poll.Supported);
	// elsewhere it is ignored. DefaultConfig turns it on where it is supported.
	EventLoop bool
	// MaxConnections bounds the open connections; 0 means no bound. Past it a new
	// socket is closed at once, as Mosquitto's max_connections does.
	MaxConnections int
	// Cluster, when set, joins the broker to its peers; nil is a standalone node.
	Cluster Cluster
	// Store, when set, keeps persistent sessions on disk (and, unless Retained is
	// set, retained messages): the broker loads them in New and writes through.
	// The caller closes it after Shutdown.
	Store *session.Store
	// Retained stores retained messages; nil means in memory, or in Store when set.
	Retained session.RetainedStore
	// SharedStrategy picks the member of a shared subscription group that gets a
	// message: "round_robin" (default), "random", "hash_clientid" or "hash_topic".
	SharedStrategy string
	// MaxKeepAlive, when not 0, is the longest keepalive allowed: a 5.0 client asking
	// for more (or for none) is told this value as Server Keep Alive; an older
	// client is refused, as Mosquitto's max_keepalive does.
	MaxKeepAlive uint16
	// ResponseInformation is sent in CONNACK to a 5.0 client that requests response
	// information: the base of the response topics it may use. Empty sends nothing.
	ResponseInformation string
	// SysInterval is how often the $SYS/broker/... topics are published; 0 disables them.
	SysInterval time.Duration
	// Version is the broker version published in $SYS/broker/version.
	Version string
	// Now returns the current time; nil means time.Now. Tests may replace it.
	Now func() time.Time
}

// DefaultConfig returns the defaults of a standalone node.
func DefaultConfig() Config {
	return Config{
		ConnectTimeout:    10 * time.Second,
		MaxPacketSize:     1 << 20,
		MaxQoS:            2,
		ReceiveMaximum:    1024,
		TopicAliasMaximum: 64,
		WriteTimeout:      30 * time.Second,
		MaxWriteQueue:     4096,
		Session:           session.DefaultConfig(),
		SharedStrategy:    "round_robin",
		SysInterval:       10 * time.Second,
		EventLoop:         poll.Supported,
		Version:           "dev",
	}
}

// Validate checks the configuration and names the setting at fault.
func (c *Config) Validate() error {
	var errs []error
	if c.ConnectTimeout <= 0 {
		errs = append(errs, fmt.Errorf("connect timeout %v: must be positive", c.ConnectTimeout))
	}
	if c.MaxPacketSize < 16 || c.MaxPacketSize > proto.MaxVarint+5 {
		errs = append(errs, fmt.Errorf("max packet size %d: must be 16..%d", c.MaxPacketSize, proto.MaxVarint+5))
	}
	if c.MaxQoS > 2 {
		errs = append(errs, fmt.Errorf("max qos %d: must be 0, 1 or 2", c.MaxQoS))
	}
	if c.ReceiveMaximum < 1 || c.ReceiveMaximum > 65535 {
		errs = append(errs, fmt.Errorf("receive maximum %d: must be 1..65535", c.ReceiveMaximum))
	}
	if c.TopicAliasMaximum < 0 || c.TopicAliasMaximum > 65535 {
		errs = append(errs, fmt.Errorf("topic alias maximum %d: must be 0..65535", c.TopicAliasMaximum))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("max connections %d: must not be negative", c.MaxConnections))
	}
	if c.SysInterval < 0 {
		errs = append(errs, fmt.Errorf("sys interval %v: must not be negative", c.SysInterval))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("write timeout %v: must be positive", c.WriteTimeout))
	}
	if c.MaxWriteQueue < 16 {
		errs = append(errs, fmt.Errorf("max write queue %d: must be at least 16", c.MaxWriteQueue))
	}
	if _, err := parseStrategy(c.SharedStrategy); err != nil {
		errs = append(errs, err)
	}
	if err := c.Session.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node config: %w", err)
	}
	return nil
}
