package node

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// subKey identifies one subscriber of a filter in the trie: a session, and the group
// for a shared subscription ("" otherwise).
type subKey struct {
	s     *session.Session
	group string
}

// subEntry is what the trie keeps per subscriber: the subscription's options.
type subEntry struct {
	qos               byte
	noLocal           bool
	retainAsPublished bool
	id                int // 5.0 subscription identifier, 0 for none
}

// handlePublish runs an incoming PUBLISH: topic alias, QoS flow, retained store and
// fan-out. The acknowledgement is queued after the message reached every matching
// session, so an acknowledged message is never lost to a subscriber that was
// subscribed when it arrived.
func (c *conn) handlePublish(p *proto.Publish) error {
	if err := c.resolveAlias(p); err != nil {
		return err
	}
	if p.QoS > c.b.cfg.MaxQoS {
		// [MQTT-3.2.2-11] more than the Maximum QoS the CONNACK announced.
		return &proto.Error{Code: proto.QoSNotSupported, Msg: fmt.Sprintf("publish qos %d", p.QoS)}
	}
	b := c.b
	b.Stats.MessagesReceived.Add(1)
	b.Stats.PublishedReceived[p.QoS].Add(1)
	if p.Props.Has(proto.PropPayloadFormat) && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
		// The payload claims to be UTF-8 and is not (5.0 section 3.3.2.3.2): refuse
		// it rather than pass it on to subscribers that trust the indicator.
		if p.QoS == 0 {
			return &proto.Error{Code: proto.PayloadFormatInvalid, Msg: "payload is not UTF-8"}
		}
		t := proto.PUBACK
		if p.QoS == 2 {
			t = proto.PUBREC
		}
		c.w.pushAck(t, p.PacketID, proto.PayloadFormatInvalid, 0)
		return nil
	}
	if !c.mayPublish(p.Topic) {
		// Denied: 5.0 says so in the acknowledgement (0x87); 3.1.1 has no way to,
		// so the message is dropped and acknowledged as usual, as Mosquitto does.
		c.log.Debug("publish denied", "topic", p.Topic)
		code := proto.Success
		if c.version == proto.V5 {
			code = proto.NotAuthorized
		}
		switch p.QoS {
		case 1:
			c.w.pushAck(proto.PUBACK, p.PacketID, code, 0)
		case 2:
			c.w.pushAck(proto.PUBREC, p.PacketID, code, 0)
		}
		return nil
	}
	m := session.NewMessage(p, c.clientID, b.now())
	switch p.QoS {
	case 0:
		b.publish(m)
	case 1:
		pb := b.publish(m)
		c.w.pushItem(outItem{ack: proto.PUBACK, ackID: p.PacketID, ackCode: matchedCode(pb.reached), ticket: pb.ticket, fwd: pb.fwd})
	case 2:
		if store := b.cfg.Store; store != nil {
			// The id awaiting PUBREL and the copies queued for subscribers reach the
			// disk together: with the id but not the message, a crash would make the
			// publisher's resend look like a duplicate and lose it.
			defer store.Group()()
		}
		isNew, err := c.sess.ReceiveQoS2(p.PacketID, b.cfg.ReceiveMaximum)
		if err != nil {
			return err
		}
		code := proto.Success
		var pb publication
		if isNew {
			pb = b.publish(m)
			code = matchedCode(pb.reached)
		}
		// A duplicate (DUP retransmission before PUBREL) is acknowledged again but
		// not delivered again [MQTT-4.3.3-9]. The PUBREC waits until the message and
		// the id awaiting PUBREL are on disk, and other nodes accepted it, so a crash
		// cannot deliver it twice or lose it.
		c.w.pushItem(outItem{ack: proto.PUBREC, ackID: p.PacketID, ackCode: code, ticket: max(pb.ticket, c.sess.Ticket()), fwd: pb.fwd})
	}
	return nil
}

// matchedCode is the 5.0 acknowledgement code for a publish that reached n sessions.
func matchedCode(n int) proto.ReasonCode {
	if n == 0 {
		return proto.NoMatchingSubscribers
	}
	return proto.Success
}

// resolveAlias applies a 5.0 topic alias: an alias with a topic sets it, an alias with
// an empty topic uses it.
func (c *conn) resolveAlias(p *proto.Publish) error {
	if !p.Props.Has(proto.PropTopicAlias) {
		return nil
	}
	a := int(p.Props.TopicAlias)
	if a > c.b.cfg.TopicAliasMaximum { // [MQTT-3.3.2-9] [MQTT-3.3.2-10]
		return &proto.Error{Code: proto.TopicAliasInvalid, Msg: fmt.Sprintf("topic alias %d above maximum %d", a, c.b.cfg.TopicAliasMaximum)}
	}
	if c.aliases == nil {
		c.aliases = make([]string, c.b.cfg.TopicAliasMaximum)
	}
	if p.Topic == "" {
		t := c.aliases[a-1]
		if t == "" {
			return &proto.Error{Code: proto.ProtocolError, Msg: fmt.Sprintf("topic alias %d not set", a)}
		}
		p.Topic = t
	} else {
		c.aliases[a-1] = p.Topic
	}
	p.Props.Clear(proto.PropTopicAlias)
	return nil
}

// publication is what publishing a message did: how many local sessions and other
// nodes it reached, and what its acknowledgement must wait for.
type publication struct {
	reached int
	ticket  uint64       // store write (0: none)
	fwd     <-chan error // acceptance by other nodes (nil: none)
}

// publish stores a retained message, forwards m to the other nodes with matching
// routes, and delivers it to every matching local session.
func (b *Broker) publish(m *session.Message) publication {
	var p publication
	if b.cfg.Cluster != nil && m.ID.IsZero() {
		// Before the retained store holds m: from then on other goroutines read it.
		m.ID = b.messageID()
	}
	if m.Retain {
		if b.cfg.Cluster != nil && m.Stamp == 0 {
			m.Stamp = b.stamp()
		}
		t, err := b.retained.Set(m)
		if err != nil && !session.IsOlder(err) {
			b.log.Error("store retained message", "topic", m.Topic, "err", err)
		}
		p.ticket = t
	}
	var serve func(string) bool
	if cl := b.cfg.Cluster; cl != nil {
		notLocal, nodes, done := cl.Forward(m, m.QoS > 0)
		p.reached, p.fwd = nodes, done
		if len(notLocal) > 0 {
			serve = func(key string) bool { return !notLocal[key] }
		}
	}
	n, t, relayed := b.route(m, serve)
	p.reached += n
	p.ticket = max(p.ticket, t)
	p.fwd = joinWaits(p.fwd, relayed)
	return p
}

// fanout is the scratch space of one route call, pooled so routing does not allocate
// in the common case.
type fanout struct {
	plain  []delivery
	index  map[*session.Session]int
	shared map[sharedKey][]sharedMember
}

type delivery struct {
	s *session.Session
	d session.Delivery
}

type sharedKey struct{ group, filter string }

// String returns the shared subscription's filter as clients write it.
func (k sharedKey) String() string { return proto.SharePrefix + k.group + "/" + k.filter }

// mayRead checks that a session's client may receive a message on topic.
func (b *Broker) mayRead(s *session.Session, topic string) bool {
	if b.cfg.Auth == nil {
		return true
	}
	user, anon := s.Identity()
	return b.cfg.Auth.CanRead(s.ClientID, user, anon, topic)
}

// redispatchShared gives the undelivered messages of a shared-subscription member
// that left to other members of the same group; with none left, back to it.
func (b *Broker) redispatchShared(from *session.Session, ds []session.Delivery) {
	now := b.now()
	for _, d := range ds {
		var members []sharedMember
		var key sharedKey
		b.subs.Match(d.Msg.Topic, func(filter string, k subKey, e subEntry) bool {
			sk := sharedKey{k.group, filter}
			if k.group != "" && k.s != from && sk.String() == d.Shared {
				key = sk
				members = append(members, sharedMember{k.s, e})
			}
			return true
		})
		to, qos := from, d.QoS
		if len(members) > 0 {
			pick := b.shared.pick(key, members, d.Msg)
			to, qos = pick.s, min(d.Msg.QoS, pick.e.qos)
		}
		d.QoS = qos
		to.Deliver(d, now) // a drop is counted through Session.OnDrop
	}
}

type sharedMember struct {
	s *session.Session
	e subEntry
}

var fanoutPool = sync.Pool{New: func() any { return &fanout{} }}

// route delivers m to the local subscribers whose filters match its topic: once per
// session at the highest matching QoS with every matching subscription identifier,
// and to one member of each matching shared subscription group.
// serve, when not nil, says which shared subscriptions ("$share/group/filter") this
// node serves; nil serves all of them.
// It returns the number of deliveries, the newest store ticket among them, and,
// when some went to sessions that moved to other nodes, a channel that yields
// once those nodes accepted them.
func (b *Broker) route(m *session.Message, serve func(key string) bool) (int, uint64, <-chan error) {
	f := fanoutPool.Get().(*fanout)
	b.subs.Match(m.Topic, func(filter string, k subKey, e subEntry) bool {
		if k.group != "" {
			if f.shared == nil {
				f.shared = make(map[sharedKey][]sharedMember)
			}
			if !b.mayRead(k.s, m.Topic) {
				return true
			}
			sk := sharedKey{k.group, filter}
			f.shared[sk] = append(f.shared[sk], sharedMember{k.s, e})
			return true
		}
		if e.noLocal && k.s.ClientID == m.From { // [MQTT-3.8.3-3]
			return true
		}
		if !b.mayRead(k.s, m.Topic) {
			return true
		}
		f.add(k.s, m, e)
		return true
	})
	for sk, members := range f.shared {
		if serve != nil && !serve(sk.String()) {
			continue // the cluster picked another node for this group
		}
		pick := b.shared.pick(sk, members, m)
		// A shared delivery stays its own delivery (not merged with the session's
		// ordinary subscriptions), so it can be handed to another member if this
		// one leaves before acknowledging it.
		d := session.Delivery{Msg: m, QoS: min(m.QoS, pick.e.qos), Shared: sk.String()}
		if pick.e.id > 0 {
			d.SubIDs = []int{pick.e.id}
		}
		f.plain = append(f.plain, delivery{s: pick.s, d: d})
	}
	now := b.now()
	var ticket uint64
	var relayed <-chan error
	for i := range f.plain {
		// Drops are counted through Session.OnDrop, evictions included.
		_, t, w := f.plain[i].s.DeliverOrRelay(f.plain[i].d, now)
		ticket = max(ticket, t)
		if w != nil {
			relayed = joinWaits(relayed, w)
		}
	}
	n := len(f.plain)
	f.reset()
	fanoutPool.Put(f)
	return n, ticket, relayed
}

// joinWaits returns a channel that yields once both a and b (either may be nil)
// have, with the first error; nil when both are nil. It costs nothing in the
// common case of one or no channel.
func joinWaits(a, b <-chan error) <-chan error {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	both := make(chan error, 1)
	go func() {
		errA, errB := <-a, <-b
		both <- errors.Join(errA, errB)
	}()
	return both
}

// add merges one matching subscription into the deliveries: a session matched by
// several subscriptions gets the message once, at the highest QoS.
func (f *fanout) add(s *session.Session, m *session.Message, e subEntry) {
	qos := min(m.QoS, e.qos)
	retain := e.retainAsPublished && m.Retain // [MQTT-3.3.1-9] [MQTT-3.3.1-12]
	i, seen := -1, false
	switch {
	case len(f.plain) >= 2:
		i, seen = f.index[s]
	case len(f.plain) == 1 && f.plain[0].s == s:
		i, seen = 0, true
	}
	if !seen {
		d := session.Delivery{Msg: m, QoS: qos, Retain: retain}
		if e.id > 0 {
			d.SubIDs = []int{e.id}
		}
		f.plain = append(f.plain, delivery{s: s, d: d})
		switch n := len(f.plain); {
		case n == 2:
			// A second session: from here on, find sessions by map. The map is kept
			// across calls (cleared in reset) so fan-out does not allocate it each time.
			if f.index == nil {
				f.index = make(map[*session.Session]int, 8)
			}
			f.index[f.plain[0].s] = 0
			f.index[s] = 1
		case n > 2:
			f.index[s] = n - 1
		}
		return
	}
	d := &f.plain[i].d
	d.QoS = max(d.QoS, qos)
	d.Retain = d.Retain || retain
	if e.id > 0 {
		d.SubIDs = append(d.SubIDs, e.id)
	}
}

func (f *fanout) reset() {
	clear(f.plain)
	f.plain = f.plain[:0]
	clear(f.index)
	f.shared = nil
}
