package node

import (
	"math"
	"strconv"
	"time"

	"github.com/skein-mq/skein/session"
)

// sysPrefix starts every broker status topic. A filter starting with a wildcard does
// not match these [MQTT-4.7.2-1], so `#` subscribers never see them.
const sysPrefix = "$SYS/broker/"

// sysPublisher publishes the broker's $SYS topics every interval, with the names
// Mosquitto uses, as retained messages kept apart from the retained store: they are
// recomputed at every start and never persisted.
type sysPublisher struct {
	b        *Broker
	interval time.Duration
	last     map[string]string // topic -> last published value; only changes are sent
	prev     sysCounters
	loads    map[string]*[3]float64 // load averages over 1, 5 and 15 minutes
	stop     chan struct{}
	done     chan struct{}
}

// sysCounters are the counters whose rates feed the load averages.
type sysCounters struct {
	msgsRecv, msgsSent, bytesRecv, bytesSent, pubRecv, pubSent, pubDropped, conns, sockets int64
}

func (b *Broker) readSysCounters() sysCounters {
	s := &b.Stats
	var dropped int64
	for i := range s.Dropped {
		dropped += s.Dropped[i].Load()
	}
	return sysCounters{
		msgsRecv:   s.PacketsReceived.Load(),
		msgsSent:   s.PacketsSent.Load(),
		bytesRecv:  s.BytesReceived.Load(),
		bytesSent:  s.BytesSent.Load(),
		pubRecv:    s.MessagesReceived.Load(),
		pubSent:    s.MessagesSent.Load(),
		pubDropped: dropped,
		conns:      s.ConnectsTotal.Load(),
		sockets:    s.ConnectionsTotal.Load(),
	}
}

func newSysPublisher(b *Broker, interval time.Duration) *sysPublisher {
	return &sysPublisher{
		b:        b,
		interval: interval,
		last:     make(map[string]string),
		loads:    make(map[string]*[3]float64),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// run publishes at once and then every interval until close.
func (p *sysPublisher) run() {
	defer close(p.done)
	p.prev = p.b.readSysCounters()
	p.publish(0)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.publish(p.interval)
		}
	}
}

func (p *sysPublisher) close() {
	close(p.stop)
	<-p.done
}

// publish computes every value and publishes those that changed; elapsed is the
// time since the previous call, for the load averages (0 on the first call).
func (p *sysPublisher) publish(elapsed time.Duration) {
	b := p.b
	cur := b.readSysCounters()
	sessions, online := b.sessionCounts()
	vals := []struct{ topic, value string }{
		{"version", "skein version " + b.cfg.Version},
		{"uptime", strconv.FormatInt(int64(b.Uptime()/time.Second), 10) + " seconds"},
		{"clients/connected", itoa(int64(online))},
		{"clients/active", itoa(int64(online))},
		{"clients/disconnected", itoa(int64(sessions - online))},
		{"clients/inactive", itoa(int64(sessions - online))},
		{"clients/total", itoa(int64(sessions))},
		{"clients/maximum", itoa(b.Stats.MaxConnected.Load())},
		{"clients/expired", itoa(b.Stats.SessionsExpired.Load())},
		{"messages/received", itoa(cur.msgsRecv)},
		{"messages/sent", itoa(cur.msgsSent)},
		{"publish/messages/received", itoa(cur.pubRecv)},
		{"publish/messages/sent", itoa(cur.pubSent)},
		{"publish/messages/dropped", itoa(cur.pubDropped)},
		{"bytes/received", itoa(cur.bytesRecv)},
		{"bytes/sent", itoa(cur.bytesSent)},
		{"subscriptions/count", itoa(int64(b.SubscriptionCount()))},
		{"retained messages/count", itoa(int64(b.RetainedCount()))},
	}
	if elapsed > 0 {
		rates := []struct {
			name     string
			cur, old int64
		}{
			{"messages/received", cur.msgsRecv, p.prev.msgsRecv},
			{"messages/sent", cur.msgsSent, p.prev.msgsSent},
			{"bytes/received", cur.bytesRecv, p.prev.bytesRecv},
			{"bytes/sent", cur.bytesSent, p.prev.bytesSent},
			{"publish/received", cur.pubRecv, p.prev.pubRecv},
			{"publish/sent", cur.pubSent, p.prev.pubSent},
			{"publish/dropped", cur.pubDropped, p.prev.pubDropped},
			{"connections", cur.conns, p.prev.conns},
			{"sockets", cur.sockets, p.prev.sockets},
		}
		for _, r := range rates {
			// Mosquitto's load figures: exponentially damped per-minute rates over 1,
			// 5 and 15 minutes, like the Unix load average.
			perMinute := float64(r.cur-r.old) * float64(time.Minute) / float64(elapsed)
			l := p.loads[r.name]
			if l == nil {
				// Start from zero as a Unix load average does, so a burst in the
				// first interval does not read as fifteen minutes of load.
				l = &[3]float64{}
				p.loads[r.name] = l
			}
			for i, period := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute} {
				k := math.Exp(-float64(elapsed) / float64(period))
				l[i] = l[i]*k + perMinute*(1-k)
			}
			for i, suffix := range []string{"1min", "5min", "15min"} {
				vals = append(vals, struct{ topic, value string }{"load/" + r.name + "/" + suffix, strconv.FormatFloat(l[i], 'f', 2, 64)})
			}
		}
	}
	p.prev = cur
	for _, v := range vals {
		if p.last[v.topic] == v.value && v.topic != "uptime" {
			continue
		}
		p.last[v.topic] = v.value
		m := &session.Message{Topic: sysPrefix + v.topic, Payload: []byte(v.value), Retain: true}
		if _, err := b.sysRetained.Set(m); err != nil {
			b.log.Error("store $SYS value", "topic", m.Topic, "err", err)
		}
		_, _, _ = b.route(m, nil) // $SYS is each node's own: never forwarded, nobody waits
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// sessionCounts returns the number of sessions and how many have a live connection.
func (b *Broker) sessionCounts() (sessions, online int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions), len(b.clients)
}
