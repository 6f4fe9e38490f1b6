package route

import (
	"strings"
	"sync"
)

// Wildcard levels of a topic filter (MQTT 5.0 section 4.7.1).
const (
	levelSep    = '/'
	singleLevel = "+"
	multiLevel  = "#"
)

// Trie maps MQTT topic filters to sets of keys with a value each. It is safe for
// concurrent use: Add/Remove take a write lock, Match/Get/Len take a read lock.
//
// Each level of a filter is one node. Literal levels live in a map so that matching a
// topic level is one map lookup; the wildcards `+` and `#` have dedicated child pointers
// so Match never has to scan the literal children. A node that ends at least one
// subscribed filter holds the filter string and its keys, so Match can hand the filter to
// its callback without rebuilding it.
type Trie[K comparable, V any] struct {
	mu sync.RWMutex // guards everything below

	root    *node[K, V]
	filters int // nodes with len(keys) > 0
	entries int // sum of len(keys) over all nodes
}

// node is one level of one or more filters. A node is kept only while it or one of its
// descendants has keys; Remove prunes the rest so memory follows the live subscriptions.
type node[K comparable, V any] struct {
	children map[string]*node[K, V] // literal child levels; nil when empty
	plus     *node[K, V]            // child for the `+` level
	hash     *node[K, V]            // child for the `#` level; never has children

	filter string  // the full filter ending here; set only while keys is non-empty
	keys   map[K]V // subscribers of filter; nil when empty
}

// empty reports whether n holds nothing and can be pruned from its parent.
func (n *node[K, V]) empty() bool {
	return len(n.keys) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

// child returns n's child for the filter level, or nil.
func (n *node[K, V]) child(level string) *node[K, V] {
	switch level {
	case singleLevel:
		return n.plus
	case multiLevel:
		return n.hash
	}
	return n.children[level]
}

// NewTrie returns an empty Trie.
func NewTrie[K comparable, V any]() *Trie[K, V] {
	return &Trie[K, V]{root: &node[K, V]{}}
}

// Add stores val for key under filter, replacing any value key already had there. It
// reports whether filter had no keys before (first subscriber of that filter).
//
// filter is assumed valid (the caller validated it with the proto package): `#` only as
// the last level and wildcards only as whole levels.
func (t *Trie[K, V]) Add(filter string, key K, val V) (firstForFilter bool) {
	t.mu.Lock()
	defer t.mu.Unlock()

	n := t.root
	for start := 0; ; {
		level, next := nextLevel(filter, start)
		c := n.child(level)
		if c == nil {
			c = &node[K, V]{}
			switch level {
			case singleLevel:
				n.plus = c
			case multiLevel:
				n.hash = c
			default:
				if n.children == nil {
					n.children = make(map[string]*node[K, V])
				}
				// Clone so the map key does not pin the caller's (possibly larger)
				// string, nor the filter of a subscription that is later removed.
				n.children[strings.Clone(level)] = c
			}
		}
		n = c
		if next < 0 {
			break
		}
		start = next
	}

	if n.keys == nil {
		n.keys = make(map[K]V, 1)
		n.filter = strings.Clone(filter)
	}
	_, had := n.keys[key]
	n.keys[key] = val
	if !had {
		t.entries++
	}
	firstForFilter = !had && len(n.keys) == 1
	if firstForFilter {
		t.filters++
	}
	return firstForFilter
}

// Remove deletes key from filter. It reports whether key was there, and whether filter
// now has no keys (last subscriber gone). Nodes left empty are pruned so memory does not
// grow with subscription churn.
func (t *Trie[K, V]) Remove(filter string, key K) (removed, filterEmpty bool) {
	t.mu.Lock()
	defer t.mu.Unlock()

	// path[i] is the parent of the node for level i; filters deeper than the array
	// spill to the heap, which Remove may afford.
	var buf [16]*node[K, V]
	path := buf[:0]
	n := t.root
	for start := 0; ; {
		level, next := nextLevel(filter, start)
		c := n.child(level)
		if c == nil {
			// No node means filter has no keys.
			return false, true
		}
		path = append(path, n)
		n = c
		if next < 0 {
			break
		}
		start = next
	}

	if _, ok := n.keys[key]; !ok {
		return false, len(n.keys) == 0
	}
	delete(n.keys, key)
	t.entries--
	if len(n.keys) > 0 {
		return true, false
	}
	t.filters--
	// Drop the map and filter rather than keep an empty map per ever-used filter.
	n.keys = nil
	n.filter = ""

	// Prune bottom-up: walk the filter's levels backwards, unlinking each empty node
	// from its parent until one still holds something.
	end := len(filter)
	for i := len(path) - 1; i >= 0 && n.empty(); i-- {
		startOfLevel := strings.LastIndexByte(filter[:end], levelSep) + 1
		level := filter[startOfLevel:end]
		parent := path[i]
		switch level {
		case singleLevel:
			parent.plus = nil
		case multiLevel:
			parent.hash = nil
		default:
			delete(parent.children, level)
			if len(parent.children) == 0 {
				parent.children = nil
			}
		}
		n = parent
		end = startOfLevel - 1
	}
	return true, true
}

// Get returns the value key has under filter.
func (t *Trie[K, V]) Get(filter string, key K) (V, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()

	n := t.findLocked(filter)
	if n == nil {
		var zero V
		return zero, false
	}
	v, ok := n.keys[key]
	return v, ok
}

// findLocked returns the node for filter, or nil. The caller holds t.mu.
func (t *Trie[K, V]) findLocked(filter string) *node[K, V] {
	n := t.root
	for start := 0; ; {
		level, next := nextLevel(filter, start)
		n = n.child(level)
		if n == nil || next < 0 {
			return n
		}
		start = next
	}
}

// Match calls fn for every (filter, key, value) whose filter matches the topic name. Each
// (filter, key) is reported at most once; a key subscribed under several matching
// filters is reported once per filter, and the caller dedupes by key if it must.
//
// fn runs under the read lock: it must not call back into the trie. If fn returns false,
// Match stops. Match does not allocate.
func (t *Trie[K, V]) Match(topic string, fn func(filter string, key K, val V) bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()

	// [MQTT-4.7.2-1] a filter starting with a wildcard must not match a topic name
	// starting with `$`, so such topics skip the root's `+` and `#` children.
	dollar := len(topic) > 0 && topic[0] == '$'
	root := t.root
	if !dollar && root.hash != nil && !emitLocked(root.hash, fn) {
		return
	}
	level, next := nextLevel(topic, 0)
	if c := root.children[level]; c != nil && !matchLocked(c, topic, next, fn) {
		return
	}
	if !dollar && root.plus != nil {
		matchLocked(root.plus, topic, next, fn)
	}
}

// matchLocked reports the keys of n's subtree that match topic[start:], where n has
// consumed the levels before start; start < 0 means every level is consumed. It returns
// false once fn has asked to stop. The caller holds t.mu.
//
// Each recursive call descends to a distinct child, so every node is visited at most once
// and no (filter, key) can be reported twice.
func matchLocked[K comparable, V any](n *node[K, V], topic string, start int, fn func(string, K, V) bool) bool {
	// `#` matches the parent level too, so `sport/#` matches `sport` (MQTT 4.7.1.2);
	// it is reported whether or not levels remain.
	if n.hash != nil && !emitLocked(n.hash, fn) {
		return false
	}
	if start < 0 {
		return emitLocked(n, fn)
	}
	level, next := nextLevel(topic, start)
	if c := n.children[level]; c != nil && !matchLocked(c, topic, next, fn) {
		return false
	}
	// `+` matches exactly one level, including an empty one (MQTT 4.7.1.3).
	if n.plus != nil && !matchLocked(n.plus, topic, next, fn) {
		return false
	}
	return true
}

// emitLocked calls fn for each key at n and reports whether fn wants more. The caller
// holds t.mu.
func emitLocked[K comparable, V any](n *node[K, V], fn func(string, K, V) bool) bool {
	for k, v := range n.keys {
		if !fn(n.filter, k, v) {
			return false
		}
	}
	return true
}

// Filters returns the number of distinct filters with at least one key.
func (t *Trie[K, V]) Filters() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.filters
}

// Len returns the number of (filter, key) entries.
func (t *Trie[K, V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.entries
}

// Walk calls fn for every (filter, key, value) in the trie, in no particular order, for
// snapshots and admin listings. fn runs under the read lock: it must not call back into
// the trie. If fn returns false, Walk stops.
func (t *Trie[K, V]) Walk(fn func(filter string, key K, val V) bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	walkLocked(t.root, fn)
}

// walkLocked calls fn for every key in n's subtree and reports whether fn wants more.
// The caller holds t.mu.
func walkLocked[K comparable, V any](n *node[K, V], fn func(string, K, V) bool) bool {
	if !emitLocked(n, fn) {
		return false
	}
	for _, c := range n.children {
		if !walkLocked(c, fn) {
			return false
		}
	}
	if n.plus != nil && !walkLocked(n.plus, fn) {
		return false
	}
	if n.hash != nil && !walkLocked(n.hash, fn) {
		return false
	}
	return true
}

// nextLevel returns the level of s that begins at start and the start of the level after
// it, or -1 when it is the last level. Empty levels are real levels: "a//b" has three.
func nextLevel(s string, start int) (level string, next int) {
	if i := strings.IndexByte(s[start:], levelSep); i >= 0 {
		return s[start : start+i], start + i + 1
	}
	return s[start:], -1
}

// swapFrom replaces t's contents with o's, under t's write lock; o must not be used
// afterwards. It lets a restore build a fresh trie aside and swap it in whole.
func (t *Trie[K, V]) swapFrom(o *Trie[K, V]) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.root, t.filters, t.entries = o.root, o.filters, o.entries
}
