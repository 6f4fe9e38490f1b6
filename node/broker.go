package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skein-mq/skein/node/poll"
	"github.com/skein-mq/skein/route"
	"github.com/skein-mq/skein/session"
)

// Broker is the MQTT broker of one node. Create it with New, feed it listeners with
// Serve (or single connections with ServeConn), and stop it with Shutdown.
type Broker struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	subs     *route.Trie[subKey, subEntry]
	retained session.RetainedStore
	shared   *sharedPicker
	// sysRetained holds the current $SYS values for new subscribers; sys publishes them.
	sysRetained *session.MemoryRetained
	sys         *sysPublisher
	// Stats are the broker's counters.
	Stats Stats
	start time.Time

	mu sync.Mutex // guards everything below
	// clients maps a client id to its live connection (past CONNACK).
	clients map[string]*conn
	// sessions maps a client id to its session, live or kept for a later connection.
	sessions map[string]*sessionRecord
	// conns holds every connection, before CONNECT too, for Shutdown.
	conns map[*conn]struct{}
	// listeners maps each served listener to what closes it.
	listeners map[net.Listener]io.Closer
	closing   bool
	// importing has a channel, closed when done, for each client id whose session
	// another node is handing over now (see DeliverRelayed).
	importing map[string]chan struct{}
	// connecting has the round of asking the other nodes for a client id that a
	// CONNECT here is in (see contend.go).
	connecting map[string]*pendingConnect
	// parked holds the relays that arrived for a session while it was being
	// imported, delivered to it once the import ends (endImportLocked).
	parked map[string][]session.Delivery
	// lateWills are the timers of the restored wills of sessions that ended while
	// the broker was down (restore.go); Shutdown stops them.
	lateWills []*time.Timer
	// handoffs are the sessions handed over to other nodes, still relaying.
	handoffs map[string]*handoff
	// poller is the event loop of the plain TCP listeners (Config.EventLoop),
	// started by New and closed by Shutdown once every connection is gone.
	poller *poll.Poller
	// wheel holds the read deadlines of the event loop's connections; with poller.
	wheel *poll.Wheel[*conn]

	wg sync.WaitGroup // connection and accept goroutines

	// lastStamp is the newest retained-write stamp issued or seen (see stamp).
	lastStamp atomic.Int64
	// msgOrigin and msgSeq make the cluster-wide ids of messages published here.
	msgOrigin uint64
	msgSeq    atomic.Uint64

	routeMu sync.Mutex // guards routeRefs; taken after mu
	// routeRefs counts local subscribers per (filter, group), to announce the first
	// and the last to the cluster.
	routeRefs map[routeRef]int
}

// sessionRecord is the broker's bookkeeping for one session.
type sessionRecord struct {
	s *session.Session
	// expiry fires when an offline session's expiry interval ends.
	expiry *time.Timer
	// will fires when a delayed will (5.0) is due; pendingWill is that will,
	// dropped if the client reconnects first.
	will        *time.Timer
	pendingWill *delayedWill
}

// New returns a broker; it serves nothing until Serve or ServeConn.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	retained := cfg.Retained
	switch {
	case retained != nil:
	case cfg.Store != nil:
		r, err := session.OpenRetained(cfg.Store, now())
		if err != nil {
			return nil, err
		}
		retained = r
	default:
		retained = session.NewMemoryRetained()
	}
	strategy, _ := parseStrategy(cfg.SharedStrategy) // checked by Validate
	b := &Broker{
		cfg:         cfg,
		log:         log,
		now:         now,
		subs:        route.NewTrie[subKey, subEntry](),
		retained:    retained,
		shared:      newSharedPicker(strategy),
		start:       now(),
		clients:     make(map[string]*conn),
		sessions:    make(map[string]*sessionRecord),
		conns:       make(map[*conn]struct{}),
		listeners:   make(map[net.Listener]io.Closer),
		sysRetained: session.NewMemoryRetained(),
		routeRefs:   make(map[routeRef]int),
		importing:   make(map[string]chan struct{}),
		parked:      make(map[string][]session.Delivery),
		connecting:  make(map[string]*pendingConnect),
		handoffs:    make(map[string]*handoff),
		msgOrigin:   newMessageOrigin(),
	}
	// The retained stamps on disk may be ahead of this node's clock (another node's
	// clock ran ahead, or this one stepped back): the clock starts past them, or a
	// retained write made here now would lose to an older one.
	retained.Each(func(m *session.Message) bool {
		b.observeStamp(m.Stamp)
		return true
	})
	// Every session counts its drops in the broker's Stats; sessions are created
	// with b.cfg.Session.
	b.cfg.Session.OnDrop = b.Stats.drop
	if cfg.Store != nil {
		if err := b.restoreSessions(); err != nil {
			return nil, err
		}
	}
	if cfg.EventLoop && poll.Supported {
		p, err := poll.New()
		if err != nil {
			log.Warn("no event loop: serving a goroutine per connection", "err", err)
		} else {
			b.poller = p
			b.wheel = poll.NewWheel[*conn](wheelTick, 2*time.Minute)
		}
	}
	if cfg.SysInterval > 0 {
		b.sys = newSysPublisher(b, cfg.SysInterval)
		go b.sys.run()
	}
	return b, nil
}

// wheelTick is the resolution of the event loop's connect timeouts and keepalives:
// a connection is closed at most this much after its deadline.
const wheelTick = 100 * time.Millisecond

// ErrClosed is returned by Serve once the broker is shutting down.
var ErrClosed = errors.New("node: broker closed")

// Serve accepts connections on ln until Shutdown or an accept error. It closes ln.
// With Config.EventLoop, the connections of a *net.TCPListener are served by the
// event loop; other listeners' (TLS) each get a goroutine.
func (b *Broker) Serve(ln net.Listener) error {
	var closer io.Closer = ln
	var p *poll.Poller
	var pl *poll.Listener
	if tl, ok := ln.(*net.TCPListener); ok {
		b.mu.Lock()
		p = b.poller
		b.mu.Unlock()
		if p != nil {
			var err error
			if pl, err = poll.Listen(tl); err != nil {
				b.log.Warn("no event loop for this listener: serving a goroutine per connection", "addr", ln.Addr().String(), "err", err)
			} else {
				closer = pl
			}
		}
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		closer.Close()
		return ErrClosed
	}
	b.listeners[ln] = closer
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.listeners, ln)
		b.mu.Unlock()
		closer.Close()
	}()
	if pl != nil {
		b.log.Info("listening", "addr", ln.Addr().String(), "event_loop", true)
		return b.servePoll(pl, p)
	}
	b.log.Info("listening", "addr", ln.Addr().String())
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if b.isClosing() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of file descriptors or a transient failure: back off instead of
				// spinning, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				b.log.Warn("accept failed, retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		b.ServeConn(nc)
	}
}

// ServeConn runs the MQTT protocol on one accepted connection (TCP, TLS or a
// WebSocket adapted to net.Conn) in its own goroutines and returns at once.
func (b *Broker) ServeConn(nc net.Conn) {
	c := newConn(b, nc)
	if !b.admit(c) {
		nc.Close()
		return
	}
	go func() {
		defer b.wg.Done()
		c.run()
	}()
}

// admit counts a new connection in, unless the broker is shutting down or at
// MaxConnections. An admitted connection is in b.conns and b.wg until it is torn
// down.
func (b *Broker) admit(c *conn) bool {
	b.mu.Lock()
	if b.closing || b.overConnectionLimitLocked() {
		full := !b.closing
		b.mu.Unlock()
		if full {
			b.Stats.Refused.Add(1)
			b.log.Warn("connection refused: max connections reached", "remote", c.nc.RemoteAddr().String(), "max", b.cfg.MaxConnections)
		}
		return false
	}
	b.conns[c] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	b.Stats.ConnectionsTotal.Add(1)
	return true
}

func (b *Broker) isClosing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

// Shutdown stops accepting, disconnects every client (5.0: DISCONNECT 0x8B) after
// flushing what is queued for it, and waits for every goroutine to end or ctx to
// expire, in which case the remaining sockets are closed hard.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	alreadyClosing := b.closing
	b.closing = true
	closers := make([]io.Closer, 0, len(b.listeners))
	for _, cl := range b.listeners {
		closers = append(closers, cl)
	}
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	for _, r := range b.sessions {
		r.stopTimers()
	}
	for _, t := range b.lateWills {
		t.Stop() // still owed: it is on disk no more, as its session ended
	}
	for _, h := range b.handoffs {
		h.cancel()
	}
	b.mu.Unlock()
	// Closed without b.mu: closing an event loop listener waits for its accepting
	// callback, which may be admitting a connection (and so waiting for b.mu); it
	// refuses it now that closing is set.
	for _, cl := range closers {
		cl.Close()
	}
	if b.sys != nil && !alreadyClosing {
		b.sys.close()
	}
	for _, c := range conns {
		c.kick(closeShutdown)
	}
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range conns {
			c.nc.Close()
		}
		<-done
		err = fmt.Errorf("shutdown: %w", ctx.Err())
	}
	// Every connection is gone: the event loop has nothing left to serve.
	b.mu.Lock()
	p, w := b.poller, b.wheel
	b.poller, b.wheel = nil, nil
	b.mu.Unlock()
	if p != nil {
		_ = p.Close() // fails only on closing its epoll descriptor, which is gone either way
		w.Close()
	}
	return err
}

func (r *sessionRecord) stopTimers() {
	if r.expiry != nil {
		r.expiry.Stop()
		r.expiry = nil
	}
	if r.will != nil {
		r.will.Stop()
		r.will = nil
	}
	r.pendingWill = nil
}

// removeConn forgets c once its goroutines are done.
func (b *Broker) removeConn(c *conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// SessionCount returns the number of sessions, online and offline.
func (b *Broker) SessionCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// SubscriptionCount returns the number of (filter, session) subscriptions.
func (b *Broker) SubscriptionCount() int { return b.subs.Len() }

// RetainedCount returns the number of retained messages.
func (b *Broker) RetainedCount() int { return b.retained.Len() }

// Uptime returns how long the broker has run.
func (b *Broker) Uptime() time.Duration { return b.now().Sub(b.start) }
