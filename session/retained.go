package session

import (
	"bytes"
	"errors"
	"sync"

	"github.com/skein-mq/skein/route"
)

// RetainedStore keeps the last retained message of each topic and, in a cluster,
// the tombstones of cleared topics. Implementations are safe for concurrent use.
//
// A tombstone is a clear with a Stamp (see Message.Tombstone): a cluster node keeps
// it so a set with an older stamp, arriving late or from a node that was away, cannot
// bring the cleared message back. Tombstones are invisible to Match and Len; they are
// visited by Each and forgotten by ExpireTombstones. Without a stamp (a standalone
// node) a clear just deletes.
type RetainedStore interface {
	// Set stores m as the retained message of m.Topic, or clears the topic when
	// m.Payload is empty [MQTT-3.3.1-10] [MQTT-3.3.1-11], keeping a tombstone when m
	// has a stamp. A stamped m that is not later than what the topic holds (message
	// or tombstone; see Later) changes nothing and returns an error for which IsOlder
	// is true. A store on disk returns the ticket of the write (see Store.Wait); 0
	// means nothing to wait for.
	Set(m *Message) (ticket uint64, err error)
	// Match calls fn for each retained message whose topic matches filter.
	Match(filter string, fn func(*Message) bool) error
	// Len returns the number of retained messages, tombstones not counted.
	Len() int
	// Each calls fn for every retained message and tombstone, '$' topics included,
	// until fn returns false: a snapshot for another node. fn runs without the
	// store's lock held and must not modify the messages.
	Each(fn func(*Message) bool)
	// ExpireTombstones forgets the tombstones stamped before before and returns how
	// many it forgot.
	ExpireTombstones(before int64) int
}

// Later reports whether retained write a wins over b for the same topic: the later
// stamp wins, and of two equal stamps the greater payload (a clear has the least),
// so that every node picks the same winner whatever order the writes arrive in. A
// write is not later than itself, so applying it again changes nothing.
func Later(a, b *Message) bool {
	if a.Stamp != b.Stamp {
		return a.Stamp > b.Stamp
	}
	return bytes.Compare(a.Payload, b.Payload) > 0
}

// MemoryRetained is a RetainedStore in memory: a map by topic, with a trie of topics
// so a wildcard subscribe visits only the matching ones.
type MemoryRetained struct {
	mu   sync.RWMutex // guards msgs, tombs and topics
	msgs map[string]*Message
	// tombs holds the tombstones: the stamp of each topic's clear. A topic is in
	// msgs or in tombs, never both.
	tombs map[string]int64
	// topics indexes the topics of msgs by level; each topic is added as a "filter"
	// with itself as key, and matched with route.Trie.MatchFilter.
	topics *route.Trie[string, struct{}]
}

// NewMemoryRetained returns an empty store.
func NewMemoryRetained() *MemoryRetained {
	return &MemoryRetained{msgs: make(map[string]*Message), tombs: make(map[string]int64), topics: route.NewTrie[string, struct{}]()}
}

// Set implements RetainedStore.
func (r *MemoryRetained) Set(m *Message) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return 0, r.setLocked(m)
}

// setLocked applies m to memory. r.mu is held.
func (r *MemoryRetained) setLocked(m *Message) error {
	if m.Stamp != 0 {
		// Last writer wins across a cluster: an older write arriving late (from a
		// slower node, or a catch-up) replaces neither a newer message nor a newer
		// clear. Unstamped writes (a standalone node) always apply.
		if cur := r.currentLocked(m.Topic); cur != nil && !Later(m, cur) {
			return errOlder
		}
	}
	if len(m.Payload) == 0 {
		if _, ok := r.msgs[m.Topic]; ok {
			delete(r.msgs, m.Topic)
			r.topics.Remove(m.Topic, m.Topic)
		}
		if m.Stamp != 0 {
			r.tombs[m.Topic] = m.Stamp
		}
		return nil
	}
	delete(r.tombs, m.Topic)
	if _, ok := r.msgs[m.Topic]; !ok {
		r.topics.Add(m.Topic, m.Topic, struct{}{})
	}
	r.msgs[m.Topic] = m
	return nil
}

// currentLocked returns what topic holds, a message or a tombstone, or nil. r.mu is
// held.
func (r *MemoryRetained) currentLocked(topic string) *Message {
	if m := r.msgs[topic]; m != nil {
		return m
	}
	if s, ok := r.tombs[topic]; ok {
		return tombstone(topic, s)
	}
	return nil
}

// tombstone returns the Message form of a tombstone, as snapshots carry it.
func tombstone(topic string, stamp int64) *Message {
	return &Message{Topic: topic, Retain: true, Stamp: stamp}
}

// errOlder reports a retained write that lost to a newer one (or repeated the
// stored one); Set's callers treat it as done.
var errOlder = errors.New("session: older retained message ignored")

// IsOlder reports whether err is a retained write ignored because the stored
// message or tombstone is as new or newer.
func IsOlder(err error) bool { return errors.Is(err, errOlder) }

// Match implements RetainedStore.
func (r *MemoryRetained) Match(filter string, fn func(*Message) bool) error {
	r.mu.RLock()
	var found []*Message
	r.topics.MatchFilter(filter, func(topic string) bool {
		found = append(found, r.msgs[topic])
		return true
	})
	r.mu.RUnlock()
	for _, m := range found {
		if !fn(m) {
			break
		}
	}
	return nil
}

// Len implements RetainedStore.
func (r *MemoryRetained) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.msgs)
}

// Each implements RetainedStore.
func (r *MemoryRetained) Each(fn func(*Message) bool) {
	r.mu.RLock()
	all := make([]*Message, 0, len(r.msgs)+len(r.tombs))
	for _, m := range r.msgs {
		all = append(all, m)
	}
	for topic, s := range r.tombs {
		all = append(all, tombstone(topic, s))
	}
	r.mu.RUnlock()
	for _, m := range all {
		if !fn(m) {
			return
		}
	}
}

// ExpireTombstones implements RetainedStore.
func (r *MemoryRetained) ExpireTombstones(before int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.expireLocked(before))
}

// expireLocked drops the tombstones stamped before before and returns their topics.
// r.mu is held.
func (r *MemoryRetained) expireLocked(before int64) []string {
	var gone []string
	for topic, s := range r.tombs {
		if s < before {
			delete(r.tombs, topic)
			gone = append(gone, topic)
		}
	}
	return gone
}
