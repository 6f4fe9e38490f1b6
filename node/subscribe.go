package node

import (
	"strings"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// handleSubscribe answers SUBSCRIBE: each filter is validated, recorded in the
// session and the trie, and answered with its granted QoS or a failure code; the
// SUBACK is queued before the retained messages the subscriptions bring
// [MQTT-3.8.4-1].
func (c *conn) handleSubscribe(p *proto.Subscribe) error {
	codes := make([]proto.ReasonCode, len(p.Subscriptions))
	type retainedFor struct {
		sub proto.Subscription
		id  int
	}
	var sendRetained []retainedFor
	id := 0
	if c.version == proto.V5 && len(p.Props.SubscriptionIDs) > 0 {
		id = p.Props.SubscriptionIDs[0]
		if len(p.Props.SubscriptionIDs) > 1 {
			return &proto.Error{Code: proto.ProtocolError, Msg: "more than one subscription identifier"}
		}
	}
	for i, sub := range p.Subscriptions {
		if err := proto.ValidTopicFilter(sub.Filter); err != nil {
			// 5.0 answers 0x8F for this filter; 3.1.1 has only the failure code 0x80.
			codes[i] = c.failCode(proto.TopicFilterInvalid)
			continue
		}
		_, _, shared := proto.SplitShared(sub.Filter)
		if shared && sub.NoLocal { // [MQTT-3.8.3-4]
			return &proto.Error{Code: proto.ProtocolError, Msg: "no local on a shared subscription"}
		}
		if !c.maySubscribe(sub.Filter) {
			c.log.Debug("subscribe denied", "filter", sub.Filter)
			codes[i] = c.failCode(proto.NotAuthorized)
			continue
		}
		sub.QoS = min(sub.QoS, c.b.cfg.MaxQoS)
		existed := c.b.addSubscription(c.sess, session.Subscription{Subscription: sub, ID: id})
		codes[i] = proto.ReasonCode(sub.QoS) // granted QoS 0, 1 or 2 [MQTT-3.9.3-1]
		// Retained messages: never for shared subscriptions (5.0 section 4.8.2); per retain
		// handling for 5.0 [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11].
		if !shared && (sub.RetainHandling == 0 || sub.RetainHandling == 1 && !existed) {
			sendRetained = append(sendRetained, retainedFor{sub, id})
		}
	}
	// The retained messages are read before the SUBACK goes out: one published after
	// the client has its SUBACK then comes only live, not a second time as retained.
	now := c.b.now()
	var deliveries []session.Delivery
	for _, r := range sendRetained {
		store := c.b.retained
		if strings.HasPrefix(r.sub.Filter, "$SYS/") {
			store = c.b.sysRetained // $SYS values live apart; wildcard-first filters never match them
		}
		err := store.Match(r.sub.Filter, func(m *session.Message) bool {
			if m.Expired(now) || !c.b.mayRead(c.sess, m.Topic) {
				return true
			}
			d := session.Delivery{Msg: m, QoS: min(m.QoS, r.sub.QoS), Retain: true} // [MQTT-3.3.1-8]
			if r.id > 0 {
				d.SubIDs = []int{r.id}
			}
			deliveries = append(deliveries, d)
			return true
		})
		if err != nil {
			c.log.Error("read retained messages", "filter", r.sub.Filter, "err", err)
		}
	}
	// The SUBACK waits until a persistent session's subscriptions are on disk, and
	// goes before the retained messages [MQTT-3.8.4-1].
	c.w.pushItem(outItem{ctl: &proto.Suback{PacketID: p.PacketID, ReasonCodes: codes}, ticket: c.sess.Ticket()})
	for _, d := range deliveries {
		c.sess.Deliver(d, now) // a drop is counted through Session.OnDrop
	}
	return nil
}

// failCode maps a 5.0 failure code to the connection's version.
func (c *conn) failCode(code proto.ReasonCode) proto.ReasonCode {
	if c.version != proto.V5 {
		return proto.SubackFailure
	}
	return code
}

// handleUnsubscribe answers UNSUBSCRIBE.
func (c *conn) handleUnsubscribe(p *proto.Unsubscribe) error {
	codes := make([]proto.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		if err := proto.ValidTopicFilter(f); err != nil {
			codes[i] = proto.TopicFilterInvalid
			continue
		}
		if !c.b.unsubscribe(c.sess, f) {
			codes[i] = proto.NoSubscriptionExisted
		}
	}
	// The UNSUBACK waits until the removal is on disk: a crash after it must not
	// bring the subscription back.
	c.w.pushItem(outItem{ctl: &proto.Unsuback{PacketID: p.PacketID, ReasonCodes: codes}, ticket: c.sess.Ticket()})
	return nil
}

// addSubscription records sub in the session and the trie and reports whether it
// replaced a subscription with the same filter [MQTT-3.8.4-3].
func (b *Broker) addSubscription(s *session.Session, sub session.Subscription) (existed bool) {
	existed = s.Subscribe(sub)
	b.indexSubscription(s, sub)
	return existed
}

// indexSubscription adds a session's subscription to the trie.
func (b *Broker) indexSubscription(s *session.Session, sub session.Subscription) {
	group, filter, shared := proto.SplitShared(sub.Filter)
	if !shared {
		filter = sub.Filter
	}
	key := subKey{s: s, group: group}
	b.routeMu.Lock()
	defer b.routeMu.Unlock()
	_, had := b.subs.Get(filter, key)
	b.subs.Add(filter, key, subEntry{
		qos:               sub.QoS,
		noLocal:           sub.NoLocal,
		retainAsPublished: sub.RetainAsPublished,
		id:                sub.ID,
	})
	if !had {
		b.addRouteRefLocked(filter, group)
	}
}

// unsubscribe removes one subscription and reports whether it existed.
func (b *Broker) unsubscribe(s *session.Session, filter string) bool {
	if !s.Unsubscribe(filter) {
		return false
	}
	b.removeSubscription(s, filter)
	return true
}

// removeSubscription removes filter's trie entry for s.
func (b *Broker) removeSubscription(s *session.Session, filter string) {
	group, inner, shared := proto.SplitShared(filter)
	if !shared {
		inner = filter
	}
	b.routeMu.Lock()
	defer b.routeMu.Unlock()
	if removed, _ := b.subs.Remove(inner, subKey{s: s, group: group}); removed {
		b.dropRouteRefLocked(inner, group)
	}
}
