package cluster

import "time"

// A long absence: a member that this node saw dead for longer than the tombstone
// retention (cfg.TombstoneRetention) comes back. The tombstones of what either side
// cleared meanwhile may be gone, so last writer wins alone would bring those
// messages back: an old message one side still has looks the same as one the other
// side never had. Entries stamped before the member went away (less a margin for
// failure detection) are their common past, and for those one side's set is taken
// as it is:
//
//   - a node that stayed with the majority ignores the returning member's entries
//     older than its departure: everything it had then is here already, or was
//     cleared or replaced here since;
//   - a node that was itself cut off (it saw no majority alive when the member came
//     back) takes the member's set as authoritative for them: it clears its own
//     entries older than the departure that the member no longer has.
//
// Writes made during the absence are newer than the departure and merge by last
// writer wins as always; only clears of old messages made on the cut-off side more
// than the retention before the heal are lost (the message comes back there from the
// majority). What is not covered: a node that was stopped (not cut off) for longer
// than the retention does not know it was away and keeps the messages cleared
// meanwhile for its own subscribers (the others ignore them); wipe its data
// directory before starting it again after such an outage, or accept that. The
// same holds for a majority node restarted during the absence, which has forgotten
// that the member was away.

// maxDepartureMargin bounds how far before a member's recorded departure (when gossip
// declared it dead) its entries still count as written during the absence: failure
// detection takes seconds, during which writes were still forwarded or held.
const maxDepartureMargin = 5 * time.Minute

// returnWindow is how long after a member's return the pulls from it are judged by
// that absence: they follow the return within seconds (or a few retries).
const returnWindow = 10 * time.Minute

// absence is a member's last time away, as this node saw it.
type absence struct {
	since, until time.Time
	cutOff       bool // this node saw no majority alive when the member came back
}

// recordReturnLocked notes, when member name joins, whether it was away and how.
// s.mu is held; call before marking it alive.
func (s *memberState) recordReturnLocked(name string, now time.Time) {
	since, returning := s.deadAt[name]
	if !returning {
		delete(s.away, name)
		return
	}
	s.away[name] = absence{since: since, until: now, cutOff: !s.majorityAliveLocked()}
}

// majorityAliveLocked reports whether this node sees a majority of the members
// that have not left alive, itself included. s.mu is held.
func (s *memberState) majorityAliveLocked() bool {
	members, up := 0, 0
	for name, ok := range s.alive {
		if s.left[name] {
			continue
		}
		members++
		if ok {
			up++
		}
	}
	return 2*up > members
}

// staleRule returns how to merge member name's set: entries stamped before before
// predate a long absence (0: there was none), and authoritative tells whether the
// member's set is taken for them (this node was cut off) rather than ignored. A
// member still seen dead (it asked this node to pull back before gossip told this
// node it is back) is judged by its absence until now.
func (s *memberState) staleRule(name string, retention time.Duration) (before int64, authoritative bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.away[name]
	ok = ok && time.Since(a.until) < returnWindow
	if since, dead := s.deadAt[name]; dead {
		a, ok = absence{since: since, until: time.Now(), cutOff: !s.majorityAliveLocked()}, true
	}
	if !ok || a.until.Sub(a.since) <= retention {
		return 0, false
	}
	margin := min(retention/4, maxDepartureMargin)
	return a.since.Add(-margin).UnixNano(), a.cutOff
}
