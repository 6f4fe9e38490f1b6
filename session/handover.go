package session

// Moving a session between nodes. The old node exports the session and seals it in
// one step, so every delivery is either in the export or relayed to the new node
// afterwards; nothing lands in between. Until the route table has caught up, a
// message can reach the new node twice, directly and relayed by the old one: the
// new node watches for duplicates by message id for that time.

// ExportAndSeal exports the session (see Export) and, in the same critical section,
// makes relay the destination of every later delivery. relay is called without the
// session's lock held and must not block; it returns a channel that yields once
// the other node accepted the delivery, or nil (see DeliverOrRelay).
func (s *Session) ExportAndSeal(relay func(Delivery) <-chan error) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	state, err := s.exportLocked()
	if err != nil {
		return nil, err
	}
	s.relay = relay
	return state, nil
}

// Sealed reports whether the session moved to another node.
func (s *Session) Sealed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relay != nil
}

// WatchDuplicates makes the session deliver each message id at most once until
// StopWatchingDuplicates, remembering at most max ids (the oldest are forgotten
// first). The ids of the deliveries queued or inflight now count as delivered: an
// imported session holds what the old node had accepted, which may come again.
func (s *Session) WatchDuplicates(max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = newIDWindow(max)
	}
	for _, list := range [][]*entry{s.inflight, s.queue} {
		for _, e := range list {
			if m := e.out.Msg; m != nil && !m.ID.IsZero() {
				s.seen.add(m.ID)
			}
		}
	}
}

// StopWatchingDuplicates ends WatchDuplicates.
func (s *Session) StopWatchingDuplicates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = nil
}

// idWindow is a set of the last max message ids added. Its ring grows with the ids
// added, up to max: a session imported in a reconnect storm holds what it saw, not
// room for max ids.
type idWindow struct {
	set  map[MessageID]struct{}
	ring []MessageID
	max  int
	next int
}

// defaultIDWindow bounds a window created with no size.
const defaultIDWindow = 1 << 16

func newIDWindow(max int) *idWindow {
	if max <= 0 {
		max = defaultIDWindow
	}
	return &idWindow{set: make(map[MessageID]struct{}), max: max}
}

// add records id and reports whether it is new.
func (w *idWindow) add(id MessageID) bool {
	if _, ok := w.set[id]; ok {
		return false
	}
	if len(w.ring) < w.max {
		w.ring = append(w.ring, id)
	} else {
		delete(w.set, w.ring[w.next])
		w.ring[w.next] = id
		w.next = (w.next + 1) % len(w.ring)
	}
	w.set[id] = struct{}{}
	return true
}
