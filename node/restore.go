package node

import (
	"fmt"
	"time"
)

// restoreSessions brings back the persistent sessions of the store at start: each is
// offline, its subscriptions route messages to its queue again, and its expiry
// counts the time since the client left, downtime included.
// restoredWillMin is the least a restored delayed will waits: one due while the
// broker was down goes out once the node serves and has rejoined its cluster, not
// from inside New.
const restoredWillMin = 2 * time.Second

func (b *Broker) restoreSessions() error {
	now := b.now()
	restored, err := b.cfg.Store.LoadSessions(b.cfg.Session, now)
	if err != nil {
		return fmt.Errorf("restore sessions: %w", err)
	}
	kept := 0
	for _, r := range restored {
		s := r.Session
		rec := &sessionRecord{s: s}
		if expiry := s.Expiry(); expiry != neverExpires {
			left := r.DisconnectedAt.Add(time.Duration(expiry) * time.Second).Sub(now)
			if left <= 0 {
				s.Unpersist()
				b.Stats.SessionsExpired.Add(1)
				if r.Will != nil {
					// The session ended while the broker was down: so did the will's
					// wait [MQTT-3.1.3-9].
					w := &delayedWill{restored: r.Will}
					b.lateWills = append(b.lateWills, time.AfterFunc(restoredWillMin, func() { b.publish(w.message(b.now())) }))
				}
				continue
			}
			rec.expiry = time.AfterFunc(left, func() { b.expireSession(rec) })
		}
		if r.Will != nil {
			rec.pendingWill = &delayedWill{restored: r.Will}
			rec.will = time.AfterFunc(max(r.Will.Due.Sub(now), restoredWillMin), func() { b.publishPendingWill(rec) })
		}
		b.sessions[s.ClientID] = rec
		for _, sub := range s.Subscriptions() {
			b.indexSubscription(s, sub)
		}
		kept++
	}
	b.log.Info("restored sessions", "sessions", kept, "expired", len(restored)-kept, "retained", b.retained.Len())
	return nil
}
