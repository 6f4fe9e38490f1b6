package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// neverExpires is the 5.0 session expiry interval meaning "never" (5.0 section
// 3.1.2.11.2): 0xFFFFFFFF. 3.1.1 persistent sessions use it too.
const neverExpires = 0xFFFFFFFF

// connect answers the first packet, p, which must be CONNECT; err is the error
// decoding it, if any. On success the session is attached and CONNACK queued;
// otherwise it returns the error that ends the connection (after queueing a
// refusing CONNACK where the specification asks for one).
func (c *conn) connect(p proto.Packet, err error) error {
	if err != nil {
		if proto.CodeOf(err, 0) == proto.UnsupportedProtocolVersion {
			// [MQTT-3.1.2-2] a level we do not speak: CONNACK 0x01 in 3.1.1 form.
			c.version = proto.V311
			c.w.pushControl(&proto.Connack{ReasonCode: proto.ConnRefusedProtocolVersion})
			return fmt.Errorf("%w: %w", errRefused, err)
		}
		return fmt.Errorf("read CONNECT: %w", err)
	}
	cp, ok := p.(*proto.Connect)
	if !ok { // [MQTT-3.1.0-1]
		return &proto.Error{Code: proto.ProtocolError, Msg: fmt.Sprintf("first packet is %s, not CONNECT", p.Type())}
	}
	c.version = cp.Version
	code := c.checkConnect(cp)
	if code == proto.Success {
		code = c.authenticate(cp)
	}
	if code != proto.Success {
		c.refuse(code)
		return fmt.Errorf("%w: %s", errRefused, code)
	}
	c.idLogged.Store(true)

	present, err := c.b.register(c, cp.CleanStart)
	if err != nil {
		c.refuse(proto.ServerUnavailable)
		return fmt.Errorf("%w: %w", errRefused, err)
	}
	c.w.pushConnack(c.connack(present))
	c.b.Stats.connected()
	c.b.Stats.ConnectsTotal.Add(1)
	// Resent inflight messages follow CONNACK [MQTT-4.4.0-1].
	c.sess.Attach(&c.w, c.clientReceiveMax, c.b.now())
	c.log.Debug("connected", "version", c.version.String(), "clean_start", cp.CleanStart,
		"keepalive", cp.KeepAlive, "session_present", present)
	return nil
}

// checkConnect validates a CONNECT and fills the connection's settings from it. It
// returns the 5.0 reason code to refuse with, or Success.
func (c *conn) checkConnect(cp *proto.Connect) proto.ReasonCode {
	c.keepAlive = time.Duration(cp.KeepAlive) * time.Second
	if max := c.b.cfg.MaxKeepAlive; max > 0 && (cp.KeepAlive == 0 || cp.KeepAlive > max) {
		if c.version != proto.V5 {
			// No way to tell an older client: refuse, as Mosquitto does.
			return proto.ClientIdentifierNotValid
		}
		// [MQTT-3.2.2-21] the client must use the Server Keep Alive.
		c.keepAlive = time.Duration(max) * time.Second
		c.serverKeepAlive = true
	}
	c.will = cp.Will
	c.clientID = cp.ClientID
	if c.clientID == "" {
		switch {
		case c.version == proto.V31:
			// MQTT 3.1 requires 1 to 23 characters.
			return proto.ClientIdentifierNotValid
		case c.version == proto.V311 && !cp.CleanStart:
			// [MQTT-3.1.3-8] a persistent session needs a client id of its own.
			return proto.ClientIdentifierNotValid
		}
		c.clientID = generateClientID()
		c.assignedID = true
	}
	if c.version == proto.V31 && len(c.clientID) > 23 {
		return proto.ClientIdentifierNotValid
	}
	if c.version == proto.V5 {
		props := &cp.Props
		if props.Has(proto.PropSessionExpiry) {
			c.expiry = props.SessionExpiry
		}
		if props.Has(proto.PropReceiveMaximum) {
			c.clientReceiveMax = int(props.ReceiveMaximum)
		}
		if props.Has(proto.PropMaximumPacketSize) {
			c.clientMaxPacket = int(props.MaximumPacketSize)
		}
		if props.Has(proto.PropTopicAliasMaximum) {
			c.clientAliasMax = int(props.TopicAliasMaximum)
		}
		c.wantResponseInfo = props.Has(proto.PropRequestResponseInfo) && props.RequestResponseInfo == 1
		if props.Has(proto.PropAuthMethod) {
			// Enhanced authentication: no method is configured.
			return proto.BadAuthenticationMethod
		}
		if c.will != nil && c.will.QoS > c.b.cfg.MaxQoS { // [MQTT-3.2.2-12]
			return proto.QoSNotSupported
		}
	} else if !cp.CleanStart {
		c.expiry = neverExpires
	}
	return proto.Success
}

// refuse queues a CONNACK with a failure code, in the client's version's terms
// [MQTT-3.2.2-6]: session present is 0 on refusal.
func (c *conn) refuse(code proto.ReasonCode) {
	if c.version != proto.V5 {
		code = proto.ConnackCode(code)
	}
	c.w.pushControl(&proto.Connack{ReasonCode: code})
}

// connack builds the accepting CONNACK, with the server's limits for a 5.0 client.
func (c *conn) connack(present bool) *proto.Connack {
	if c.version != proto.V5 {
		// MQTT 3.1 has no session present flag: the byte is reserved there. The
		// packets are shared: the writer only encodes them.
		if present && c.version != proto.V31 {
			return &connackPresent
		}
		return &connackNew
	}
	ack := &proto.Connack{SessionPresent: present}
	cfg := &c.b.cfg
	pr := &ack.Props
	if c.assignedID { // [MQTT-3.2.2-16]
		pr.AssignedClientID = c.clientID
		pr.Set(proto.PropAssignedClientID)
	}
	pr.ReceiveMaximum = uint16(cfg.ReceiveMaximum)
	pr.Set(proto.PropReceiveMaximum)
	pr.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	pr.Set(proto.PropMaximumPacketSize)
	pr.TopicAliasMaximum = uint16(cfg.TopicAliasMaximum)
	pr.Set(proto.PropTopicAliasMaximum)
	if cfg.MaxQoS < 2 {
		pr.MaximumQoS = cfg.MaxQoS
		pr.Set(proto.PropMaximumQoS)
	}
	for _, id := range []proto.PropID{proto.PropRetainAvailable, proto.PropWildcardSubAvailable, proto.PropSubIDAvailable, proto.PropSharedSubAvailable} {
		pr.Set(id) // the fields stay 1 below
	}
	pr.RetainAvailable, pr.WildcardSubAvail, pr.SubIDAvailable, pr.SharedSubAvailable = 1, 1, 1, 1
	if c.serverKeepAlive {
		pr.ServerKeepAlive = uint16(c.keepAlive / time.Second)
		pr.Set(proto.PropServerKeepAlive)
	}
	if c.wantResponseInfo && cfg.ResponseInformation != "" {
		pr.ResponseInfo = cfg.ResponseInformation
		pr.Set(proto.PropResponseInfo)
	}
	return ack
}

// connackNew and connackPresent are the accepting CONNACKs of 3.1 and 3.1.1, which
// carry nothing else: shared by every connection, never modified.
var connackNew, connackPresent = proto.Connack{}, proto.Connack{SessionPresent: true}

func generateClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "skein-" + hex.EncodeToString(b[:])
}

// errShuttingDown refuses connections that arrive while the broker stops.
var errShuttingDown = errors.New("node: broker shutting down")

// register makes c the live connection of its client id, closing any connection
// that holds the id now and waiting for its teardown, and attaches c to its session:
// the existing one when the client asked to resume it, a new one otherwise. It
// reports whether a session was resumed.
func (b *Broker) register(c *conn, cleanStart bool) (present bool, err error) {
	id := c.clientID
	var remote []byte
	var importDone chan struct{}
	if cl := b.cfg.Cluster; cl != nil {
		// Relays for the session that arrive before it is imported wait for it.
		importDone = make(chan struct{})
		b.mu.Lock()
		b.importing[id] = importDone
		b.mu.Unlock()
		var asking *pendingConnect
		var backs []*handoff // it left this node earlier and comes back now
		defer func() {
			b.mu.Lock()
			b.deliverParkedLocked(id, b.endImportLocked(id, importDone))
			b.endAskingLocked(id, asking) // the connection is registered (or refused)
			b.mu.Unlock()
			for _, h := range backs {
				b.endTakenBack(h) // after the session is back: no gap without a subscriber
			}
		}()
		remote, asking, backs = b.takeOverFromCluster(c, cl, cleanStart)
	}
	for {
		b.mu.Lock()
		if b.closing {
			b.mu.Unlock()
			return false, errShuttingDown
		}
		old := b.clients[id]
		if old == nil {
			break // b.mu held
		}
		b.mu.Unlock()
		// [MQTT-3.1.4-3] the new connection takes over: close the old one.
		old.log.Info("client id taken over by a new connection")
		old.kick(closeTakenOver)
		<-old.done
	}
	defer b.mu.Unlock()
	b.clients[id] = c
	rec := b.sessions[id]
	var endedWill *delayedWill
	if rec != nil {
		if rec.will != nil && cleanStart {
			// The old session ends now, before its will delay ran out: publish the
			// will [MQTT-3.1.3-9] family.
			endedWill = rec.pendingWill
		}
		if rec.pendingWill != nil {
			rec.s.ClearWill() // published now, or cancelled by the client's return
		}
		rec.stopTimers()
		if cleanStart {
			b.discardSessionLocked(rec)
			rec = nil
		}
	}
	if rec == nil && remote != nil && !cleanStart {
		rec = b.adoptRemoteLocked(c, remote)
	}
	if rec == nil {
		rec = &sessionRecord{s: session.New(id, b.cfg.Session)}
		b.sessions[id] = rec
	} else {
		present = true
	}
	rec.s.SetExpiry(c.expiry)
	if store := b.cfg.Store; store != nil {
		// A session with an expiry outlives its connection and must survive a
		// restart; one without ends with the connection and never touches the disk.
		if c.expiry > 0 {
			rec.s.Persist(store)
		} else {
			rec.s.Unpersist()
		}
	}
	c.sess = rec.s
	rec.s.SetIdentity(c.username, c.anonymous)
	b.deliverParkedLocked(id, b.endImportLocked(id, importDone)) // the relays that came meanwhile
	if endedWill != nil {
		go b.publish(endedWill.message(b.now()))
	}
	return present, nil
}

// adoptRemoteLocked imports the session another node handed over for c's client
// id, or returns nil when it cannot be read. b.mu is held.
func (b *Broker) adoptRemoteLocked(c *conn, remote []byte) *sessionRecord {
	rec, err := b.importSessionLocked(c.clientID, remote)
	if err != nil {
		c.log.Error("import the session handed over by another node", "err", err)
		return nil
	}
	// Until the old node is done relaying, a message may come both ways.
	rec.s.WatchDuplicates(0)
	time.AfterFunc(handoverMax+duplicateLinger, rec.s.StopWatchingDuplicates)
	return rec
}

// discardSessionLocked removes a session and its subscriptions, from disk too. b.mu
// is held.
func (b *Broker) discardSessionLocked(rec *sessionRecord) {
	rec.stopTimers()
	rec.s.Unpersist()
	for _, sub := range rec.s.Subscriptions() {
		b.removeSubscription(rec.s, sub.Filter)
	}
	if b.sessions[rec.s.ClientID] == rec {
		delete(b.sessions, rec.s.ClientID)
	}
}

// connectionGone settles the session and the will after a connection ended.
func (b *Broker) connectionGone(c *conn) {
	if c.sess == nil {
		return // never got past CONNECT
	}
	now := b.now()
	var will *session.Message
	if c.will != nil && !c.cleanDisconnect && c.reason != closeShutdown {
		will = willMessage(c, now)
	}
	b.mu.Lock()
	if b.clients[c.clientID] == c {
		delete(b.clients, c.clientID)
	}
	b.Stats.Connected.Add(-1)
	rec := b.sessions[c.clientID]
	if rec == nil || rec.s != c.sess {
		b.mu.Unlock()
		if will != nil {
			b.publish(will)
		}
		return
	}
	rec.s.Detach(&c.w, now)
	// Messages of a shared subscription that this member did not acknowledge go to
	// another member now, as 5.0 section 4.8.2 allows, rather than wait for it.
	shared := rec.s.TakeShared(now)
	expiry := rec.s.Expiry()
	var delay uint32
	if c.version == proto.V5 && c.will != nil {
		delay = c.will.Props.WillDelay
	}
	switch {
	case expiry == 0:
		b.discardSessionLocked(rec)
	case expiry != neverExpires:
		rec.expiry = time.AfterFunc(time.Duration(expiry)*time.Second, func() { b.expireSession(rec) })
	}
	if will != nil && delay > 0 && expiry != 0 {
		// [MQTT-3.1.3-9] publish after the will delay, unless the client comes back
		// first; if the session ends sooner, expireSession publishes it then.
		rec.pendingWill = &delayedWill{w: c.will, from: c.clientID}
		rec.will = time.AfterFunc(time.Duration(delay)*time.Second, func() { b.publishPendingWill(rec) })
		// On disk too, for a restart within the delay.
		rec.s.SaveWill(rec.pendingWill.stored(now, now.Add(time.Duration(delay)*time.Second)))
		will = nil
	}
	b.mu.Unlock()
	if len(shared) > 0 {
		b.redispatchShared(rec.s, shared)
	}
	if will != nil {
		b.publish(will)
	}
}

// expireSession ends an offline session whose expiry interval ran out.
func (b *Broker) expireSession(rec *sessionRecord) {
	b.mu.Lock()
	if b.sessions[rec.s.ClientID] != rec || rec.s.Online() {
		b.mu.Unlock()
		return
	}
	will := rec.pendingWill
	b.discardSessionLocked(rec)
	b.mu.Unlock()
	b.Stats.SessionsExpired.Add(1)
	b.log.Debug("session expired", "client_id", rec.s.ClientID)
	if will != nil {
		b.publish(will.message(b.now()))
	}
}

// publishPendingWill publishes a delayed will whose delay ran out.
func (b *Broker) publishPendingWill(rec *sessionRecord) {
	b.mu.Lock()
	will := rec.pendingWill
	rec.pendingWill, rec.will = nil, nil
	if will != nil {
		rec.s.ClearWill()
	}
	b.mu.Unlock()
	if will != nil {
		b.publish(will.message(b.now()))
	}
}

// willMessage turns a connection's will into a message published at now.
func willMessage(c *conn, now time.Time) *session.Message {
	return (&delayedWill{w: c.will, from: c.clientID}).message(now)
}

// delayedWill is a will waiting for its delay (5.0): from the connection, or (w
// nil) restored from the store.
type delayedWill struct {
	w        *proto.Will
	from     string
	restored *session.DelayedWill
}

// message builds the will's message when it is published: its Message Expiry
// Interval counts from publication, not from the disconnect (5.0 section 3.1.3.2.4).
func (d *delayedWill) message(now time.Time) *session.Message {
	if d.restored != nil {
		return d.restored.Message(now)
	}
	w := d.w
	p := &proto.Publish{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain, Props: w.Props}
	return session.NewMessage(p, d.from, now)
}

// stored is the will as the session store keeps it, due at due.
func (d *delayedWill) stored(now, due time.Time) *session.DelayedWill {
	if d.restored != nil {
		return d.restored
	}
	sw := &session.DelayedWill{Msg: d.message(now), Due: due}
	if d.w.Props.Has(proto.PropMessageExpiry) {
		sw.Expiry, sw.HasExpiry = time.Duration(d.w.Props.MessageExpiry)*time.Second, true
	}
	return sw
}
