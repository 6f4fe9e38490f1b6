package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// This file is the broker's surface for operators: the admin API and the metrics
// collector read the broker through these methods. None of them is on the message
// path; they take b.mu only to copy what they need, then ask each session for its
// figures outside it, so a listing of many sessions never stalls CONNECT.

// APIClientID is the client id that messages published through Publish carry as
// their publisher (for no-local subscriptions and the logs).
const APIClientID = "$api"

// ErrInvalid is returned by the admin methods for an argument a client could not
// use either: an invalid topic name or filter, or a message a client could not
// publish (a QoS above the broker's maximum, a $SYS topic, an oversized or wrongly
// declared payload).
var ErrInvalid = errors.New("node: invalid argument")

// ClientInfo describes one session and, while its client is connected, the
// connection.
type ClientInfo struct {
	ClientID  string
	Username  string
	Anonymous bool
	Connected bool
	// Version, RemoteAddr and KeepAlive describe the live connection; they are zero
	// for an offline session.
	Version    proto.Version
	RemoteAddr string
	KeepAlive  time.Duration
	// Expiry is the session expiry interval in seconds (0xFFFFFFFF: never).
	Expiry        uint32
	Subscriptions int
	Inflight      int
	Queued        int
	// Dropped counts the messages this session dropped since it was created.
	Dropped uint64
}

// Persistent reports whether the session outlives its connection.
func (ci *ClientInfo) Persistent() bool { return ci.Expiry > 0 }

// clientSnap is what Clients copies under b.mu before asking the session.
type clientSnap struct {
	s    *session.Session
	info ClientInfo
}

// snapshotClientsLocked copies the identity and connection of every session (or of
// the one with id, when id is not empty). b.mu is held.
func (b *Broker) snapshotClientsLocked(id string) []clientSnap {
	var out []clientSnap
	add := func(cid string, r *sessionRecord) {
		snap := clientSnap{s: r.s, info: ClientInfo{ClientID: cid}}
		// Fields of a connection in b.clients were written before register put it
		// there under b.mu, so reading them under b.mu is safe.
		if c := b.clients[cid]; c != nil && c.sess == r.s {
			snap.info.Connected = true
			snap.info.Version = c.version
			snap.info.RemoteAddr = c.nc.RemoteAddr().String()
			snap.info.KeepAlive = c.keepAlive
		}
		out = append(out, snap)
	}
	if id != "" {
		if r := b.sessions[id]; r != nil {
			add(id, r)
		}
		return out
	}
	out = make([]clientSnap, 0, len(b.sessions))
	for cid, r := range b.sessions {
		add(cid, r)
	}
	return out
}

// fill completes a snapshot with the session's own figures; it takes the session's
// lock, so b.mu must not be held.
func (cs *clientSnap) fill() {
	s := cs.s
	cs.info.Username, cs.info.Anonymous = s.Identity()
	cs.info.Expiry = s.Expiry()
	cs.info.Subscriptions = len(s.Subscriptions())
	cs.info.Inflight, cs.info.Queued, cs.info.Dropped = s.Counts()
}

// Clients returns every session, online and offline, ordered by client id.
func (b *Broker) Clients() []ClientInfo {
	b.mu.Lock()
	snaps := b.snapshotClientsLocked("")
	b.mu.Unlock()
	out := make([]ClientInfo, len(snaps))
	for i := range snaps {
		snaps[i].fill()
		out[i] = snaps[i].info
	}
	slices.SortFunc(out, func(x, y ClientInfo) int { return strings.Compare(x.ClientID, y.ClientID) })
	return out
}

// Client returns the session of clientID with its subscriptions (ordered by
// filter), and false when there is none.
func (b *Broker) Client(clientID string) (ClientInfo, []session.Subscription, bool) {
	if clientID == "" {
		return ClientInfo{}, nil, false
	}
	b.mu.Lock()
	snaps := b.snapshotClientsLocked(clientID)
	b.mu.Unlock()
	if len(snaps) == 0 {
		return ClientInfo{}, nil, false
	}
	snaps[0].fill()
	subs := snaps[0].s.Subscriptions()
	sortSubscriptions(subs)
	return snaps[0].info, subs, true
}

func sortSubscriptions(subs []session.Subscription) {
	slices.SortFunc(subs, func(x, y session.Subscription) int { return strings.Compare(x.Filter, y.Filter) })
}

// Kick closes the connection of clientID as an administrator's action: a 5.0 client
// gets DISCONNECT 0x98 (Administrative action) after what is queued for it. The
// session stays, as after any other disconnection. Kick reports false when the client
// is not connected; it returns before the connection is fully closed.
func (b *Broker) Kick(clientID string) bool {
	b.mu.Lock()
	c := b.clients[clientID]
	b.mu.Unlock()
	if c == nil {
		return false
	}
	c.log.Info("connection closed by an administrator")
	c.kick(closeKicked)
	return true
}

// SubscriptionInfo is one subscription of one session. Filter is the full filter
// the client subscribed to, with any $share/group/ prefix.
type SubscriptionInfo struct {
	ClientID string
	session.Subscription
}

// Subscriptions returns every subscription of every session, online or offline,
// ordered by client id, then filter.
func (b *Broker) Subscriptions() []SubscriptionInfo {
	b.mu.Lock()
	sessions := make([]*session.Session, 0, len(b.sessions))
	for _, r := range b.sessions {
		sessions = append(sessions, r.s)
	}
	b.mu.Unlock()
	return collectSubscriptions(sessions, nil)
}

// SubscriptionsMatching returns the subscriptions whose filters match the topic
// name, as the broker's own routing would match them (a filter starting with a
// wildcard does not match a $ topic), ordered by client id, then filter.
func (b *Broker) SubscriptionsMatching(topic string) []SubscriptionInfo {
	want := make(map[*session.Session]map[string]bool)
	// The trie is read under its own lock; the sessions are asked after it is released.
	b.subs.Match(topic, func(filter string, k subKey, _ subEntry) bool {
		full := filter
		if k.group != "" {
			full = sharedKey{k.group, filter}.String()
		}
		if want[k.s] == nil {
			want[k.s] = make(map[string]bool)
		}
		want[k.s][full] = true
		return true
	})
	sessions := make([]*session.Session, 0, len(want))
	for s := range want {
		sessions = append(sessions, s)
	}
	return collectSubscriptions(sessions, func(s *session.Session, filter string) bool { return want[s][filter] })
}

// collectSubscriptions lists the subscriptions of sessions that keep accepts (all
// when keep is nil), ordered by client id, then filter.
func collectSubscriptions(sessions []*session.Session, keep func(*session.Session, string) bool) []SubscriptionInfo {
	slices.SortFunc(sessions, func(x, y *session.Session) int { return strings.Compare(x.ClientID, y.ClientID) })
	var out []SubscriptionInfo
	for _, s := range sessions {
		subs := s.Subscriptions()
		sortSubscriptions(subs)
		for _, sub := range subs {
			if keep == nil || keep(s, sub.Filter) {
				out = append(out, SubscriptionInfo{ClientID: s.ClientID, Subscription: sub})
			}
		}
	}
	return out
}

// RouteInfo is one filter that local sessions subscribe to and how many do. A
// shared subscription's route is its full $share/group/filter.
type RouteInfo struct {
	Filter      string
	Subscribers int
}

// Routes returns the filters of the local subscriptions with their subscriber
// counts, ordered by filter. It walks the whole subscription trie under its read
// lock: an admin call, not one for every scrape.
func (b *Broker) Routes() []RouteInfo {
	counts := make(map[string]int)
	b.subs.Walk(func(filter string, k subKey, _ subEntry) bool {
		if k.group != "" {
			filter = sharedKey{k.group, filter}.String()
		}
		counts[filter]++
		return true
	})
	out := make([]RouteInfo, 0, len(counts))
	for f, n := range counts {
		out = append(out, RouteInfo{Filter: f, Subscribers: n})
	}
	slices.SortFunc(out, func(x, y RouteInfo) int { return strings.Compare(x.Filter, y.Filter) })
	return out
}

// FilterCount returns the number of distinct topic filters with a local subscriber,
// in constant time; members of shared groups count under the filter after the
// group. Metrics read it at every scrape.
func (b *Broker) FilterCount() int { return b.subs.Filters() }

// SessionStats are the session figures metrics report.
type SessionStats struct {
	Online, Offline int
	// Persistent counts the sessions, online or offline, with an expiry interval:
	// they outlive their connection.
	Persistent int
	// Inflight and Queued sum, over every session, the QoS 1/2 messages sent and not
	// yet acknowledged, and the messages waiting for the window or the client.
	Inflight, Queued int
}

// SessionStats asks every session for its figures. It costs one lock of each
// session, outside b.mu.
func (b *Broker) SessionStats() SessionStats {
	var st SessionStats
	b.mu.Lock()
	sessions := make([]*session.Session, 0, len(b.sessions))
	for _, r := range b.sessions {
		sessions = append(sessions, r.s)
	}
	st.Online = len(b.clients)
	b.mu.Unlock()
	st.Offline = max(len(sessions)-st.Online, 0)
	for _, s := range sessions {
		inflight, queued, _ := s.Counts()
		st.Inflight += inflight
		st.Queued += queued
		if s.Expiry() > 0 {
			st.Persistent++
		}
	}
	return st
}

// StoreStats returns the session store's group-commit figures (transactions and
// the writes they carried), and false when the broker runs without a store.
func (b *Broker) StoreStats() (commits, writes int64, ok bool) {
	if b.cfg.Store == nil {
		return 0, 0, false
	}
	commits, writes = b.cfg.Store.CommitStats()
	return commits, writes, true
}

// Version returns the broker version of the configuration.
func (b *Broker) Version() string { return b.cfg.Version }

// StartedAt returns when the broker was created.
func (b *Broker) StartedAt() time.Time { return b.start }

// RetainedMessages returns the retained messages whose topics match filter, ordered
// by topic; expired ones are left out. As for a subscriber, "#" does not match
// topics starting with '$'.
func (b *Broker) RetainedMessages(filter string) ([]*session.Message, error) {
	if err := proto.ValidTopicFilter(filter); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, _, shared := proto.SplitShared(filter); shared {
		return nil, fmt.Errorf("%w: a shared subscription filter does not select retained messages", ErrInvalid)
	}
	now := b.now()
	var out []*session.Message
	err := b.retained.Match(filter, func(m *session.Message) bool {
		if !m.Expired(now) {
			out = append(out, m)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("read retained messages: %w", err)
	}
	slices.SortFunc(out, func(x, y *session.Message) int { return strings.Compare(x.Topic, y.Topic) })
	return out, nil
}

// RetainedMessage returns the retained message of topic, and false when there is
// none (or it expired). The message must not be modified.
func (b *Broker) RetainedMessage(topic string) (*session.Message, bool, error) {
	if err := proto.ValidTopicName(topic); err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var found *session.Message
	// A topic name is a filter without wildcards that matches only itself.
	err := b.retained.Match(topic, func(m *session.Message) bool {
		if m.Topic == topic {
			found = m
			return false
		}
		return true
	})
	if err != nil {
		return nil, false, fmt.Errorf("read retained message: %w", err)
	}
	if found == nil || found.Expired(b.now()) {
		return nil, false, nil
	}
	return found, true, nil
}

// DeleteRetained clears the retained message of topic, as a retained PUBLISH with
// an empty payload would [MQTT-3.3.1-10], and waits until the store has it. It
// reports whether there was one.
func (b *Broker) DeleteRetained(ctx context.Context, topic string) (bool, error) {
	if _, ok, err := b.RetainedMessage(topic); err != nil || !ok {
		return false, err
	}
	m := &session.Message{Topic: topic, Retain: true, From: APIClientID}
	if b.cfg.Cluster != nil {
		// A stamped clear stays as a tombstone on every node, so no merge brings
		// the message back.
		m.Stamp = b.stamp()
	}
	ticket, err := b.retained.Set(m)
	if err != nil {
		return false, fmt.Errorf("delete retained message: %w", err)
	}
	b.log.Info("retained message deleted by an administrator", "topic", topic)
	if err := b.waitStore(ctx, ticket); err != nil {
		return true, err
	}
	if b.cfg.Cluster != nil {
		// The other nodes clear it too, and nobody is sent anything: unlike an
		// empty retained PUBLISH, deleting is not a message.
		if done := b.cfg.Cluster.ReplicateRetained(m); done != nil {
			select {
			case err := <-done:
				if err != nil {
					return true, fmt.Errorf("delete retained message on the other nodes: %w", err)
				}
			case <-ctx.Done():
				return true, fmt.Errorf("delete retained message on the other nodes: %w", ctx.Err())
			}
		}
	}
	return true, nil
}

// Publish publishes p through the broker's own path (retained store, other nodes,
// then every matching local session) as if client "$api" had sent it, and returns
// the number of local sessions and other nodes it reached. It returns once the
// message and the deliveries to persistent sessions are on disk and the other
// nodes accepted it, as a PUBACK would. The message is checked as a
// client's would be (ErrInvalid), but no ACL applies: the caller is the
// administrator. p.PacketID and p.Dup are ignored; p is not kept.
func (b *Broker) Publish(ctx context.Context, p *proto.Publish) (int, error) {
	if err := proto.ValidTopicName(p.Topic); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if strings.HasPrefix(p.Topic, "$SYS/") || p.Topic == "$SYS" {
		return 0, fmt.Errorf("%w: $SYS topics are the broker's own", ErrInvalid)
	}
	if p.QoS > b.cfg.MaxQoS {
		return 0, fmt.Errorf("%w: qos %d above the maximum %d", ErrInvalid, p.QoS, b.cfg.MaxQoS)
	}
	if len(p.Topic)+len(p.Payload) > b.cfg.MaxPacketSize {
		return 0, fmt.Errorf("%w: topic and payload exceed the maximum packet size %d", ErrInvalid, b.cfg.MaxPacketSize)
	}
	if p.Props.Has(proto.PropPayloadFormat) && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
		return 0, fmt.Errorf("%w: payload format is UTF-8 and the payload is not", ErrInvalid)
	}
	if b.isClosing() {
		return 0, ErrClosed
	}
	// The message owns copies: sessions keep it after p's buffers are reused.
	cp := *p
	cp.Payload = slices.Clone(p.Payload)
	cp.Props.CorrelationData = slices.Clone(p.Props.CorrelationData)
	cp.Props.User = slices.Clone(p.Props.User)
	cp.PacketID, cp.Dup = 0, false
	m := session.NewMessage(&cp, APIClientID, b.now())
	pb := b.publish(m)
	n := pb.reached
	b.log.Debug("message published by an administrator", "topic", p.Topic, "qos", p.QoS, "retain", p.Retain, "sessions", n)
	if pb.fwd != nil {
		select {
		case err := <-pb.fwd:
			if err != nil {
				return n, err
			}
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, b.waitStore(ctx, pb.ticket)
}

// waitStore waits until store ticket (0: none) is durable.
func (b *Broker) waitStore(ctx context.Context, ticket uint64) error {
	if ticket == 0 || b.cfg.Store == nil {
		return nil
	}
	if err := b.cfg.Store.Wait(ctx, ticket); err != nil {
		return fmt.Errorf("wait for the session store: %w", err)
	}
	return nil
}
