package session

import (
	"errors"
	"sync"
	"time"

	"github.com/skein-mq/skein/route"
)

// RetainedStore keeps the last retained message of each topic. Implementations are
// safe for concurrent use.
type RetainedStore interface {
	// Set stores m as the retained message of m.Topic, or deletes the topic's retained
	// message when m.Payload is empty [MQTT-3.3.1-10] [MQTT-3.3.1-11]. A store on disk
	// returns the ticket of the write (see Store.Wait); 0 means nothing to wait for.
	Set(m *Message) (ticket uint64, err error)
	// Match calls fn for each retained message whose topic matches filter.
	Match(filter string, fn func(*Message) bool) error
	// Len returns the number of retained messages.
	Len() int
}

// MemoryRetained is a RetainedStore in memory: a map by topic, with a trie of topics
// so a wildcard subscribe visits only the matching ones.
type MemoryRetained struct {
	mu   sync.RWMutex // guards msgs
	msgs map[string]*Message
	// topics indexes the stored topics by level; each topic is added as a "filter"
	// with itself as key, and matched with route.Trie.MatchFilter.
	topics *route.Trie[string, struct{}]
}

// NewMemoryRetained returns an empty store.
func NewMemoryRetained() *MemoryRetained {
	return &MemoryRetained{msgs: make(map[string]*Message), topics: route.NewTrie[string, struct{}]()}
}

// Set implements RetainedStore.
func (r *MemoryRetained) Set(m *Message) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m.Payload) == 0 {
		if _, ok := r.msgs[m.Topic]; ok {
			delete(r.msgs, m.Topic)
			r.topics.Remove(m.Topic, m.Topic)
		}
		return 0, nil
	}
	old, ok := r.msgs[m.Topic]
	if ok && m.Stamp != 0 && old.Stamp > m.Stamp {
		// Last writer wins across a cluster: an older write arriving late (from a
		// slower node, or a catch-up) does not replace a newer message.
		return 0, errOlder
	}
	if !ok {
		r.topics.Add(m.Topic, m.Topic, struct{}{})
	}
	r.msgs[m.Topic] = m
	return 0, nil
}

// errOlder reports a retained write that lost to a newer one; Set's callers treat it
// as done (PersistentRetained skips the disk).
var errOlder = errors.New("session: older retained message ignored")

// IsOlder reports whether err is a retained write ignored because the stored message
// is newer.
func IsOlder(err error) bool { return errors.Is(err, errOlder) }

// PersistentRetained is a RetainedStore served from memory and written through to a
// Store, so retained messages survive restarts. Build it with OpenRetained.
type PersistentRetained struct {
	*MemoryRetained
	store *Store
}

// OpenRetained loads the retained messages of store and returns the store that
// keeps them.
func OpenRetained(store *Store, now time.Time) (*PersistentRetained, error) {
	mem := NewMemoryRetained()
	if err := store.LoadRetained(mem, now); err != nil {
		return nil, err
	}
	return &PersistentRetained{MemoryRetained: mem, store: store}, nil
}

// Set implements RetainedStore: memory first, then the write-through.
func (r *PersistentRetained) Set(m *Message) (uint64, error) {
	if _, err := r.MemoryRetained.Set(m); err != nil {
		if IsOlder(err) {
			return 0, nil // nothing changed, nothing to write
		}
		return 0, err
	}
	if len(m.Payload) == 0 {
		return r.store.deleteRetained(m.Topic), nil
	}
	return r.store.putRetained(m)
}

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
