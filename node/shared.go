package node

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/skein-mq/skein/session"
)

// strategy is how a shared subscription group picks the member for a message.
type strategy int

const (
	roundRobin strategy = iota
	randomPick
	hashClientID
	hashTopic
)

func parseStrategy(s string) (strategy, error) {
	switch s {
	case "", "round_robin":
		return roundRobin, nil
	case "random":
		return randomPick, nil
	case "hash_clientid":
		return hashClientID, nil
	case "hash_topic":
		return hashTopic, nil
	}
	return 0, fmt.Errorf("shared subscription strategy %q: must be round_robin, random, hash_clientid or hash_topic", s)
}

// sharedPicker chooses one member of a shared subscription group per message.
type sharedPicker struct {
	strategy strategy
	mu       sync.Mutex           // guards next
	next     map[sharedKey]uint64 // round-robin position per group and filter
}

func newSharedPicker(s strategy) *sharedPicker {
	return &sharedPicker{strategy: s, next: make(map[sharedKey]uint64)}
}

// pick returns the member that gets m. Members whose client is online are preferred,
// so a message does not wait in an offline member's queue while another could take
// it now; with none online, any member queues it.
func (p *sharedPicker) pick(k sharedKey, members []sharedMember, m *session.Message) sharedMember {
	online := members[:0:0]
	for _, mb := range members {
		if mb.s.Online() {
			online = append(online, mb)
		}
	}
	if len(online) > 0 {
		members = online
	}
	if len(members) == 1 {
		return members[0]
	}
	// The trie reports members in no fixed order; ordering them by client id makes
	// round-robin visit each in turn and a hash pick the same member every time.
	slices.SortFunc(members, func(a, b sharedMember) int { return strings.Compare(a.s.ClientID, b.s.ClientID) })
	var i uint64
	switch p.strategy {
	case randomPick:
		i = rand.Uint64N(uint64(len(members)))
	case hashClientID, hashTopic:
		h := fnv.New64a()
		if p.strategy == hashClientID {
			h.Write([]byte(m.From))
		} else {
			h.Write([]byte(m.Topic))
		}
		i = h.Sum64() % uint64(len(members))
	default:
		p.mu.Lock()
		i = p.next[k] % uint64(len(members))
		p.next[k]++
		p.mu.Unlock()
	}
	return members[i]
}
