package node

import (
	"fmt"
	"time"
)

// restoreSessions brings back the persistent sessions of the store at start: each is
// offline, its subscriptions route messages to its queue again, and its expiry
// counts the time since the client left, downtime included.
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
				continue
			}
			rec.expiry = time.AfterFunc(left, func() { b.expireSession(rec) })
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
