package route

// MatchFilter is the reverse of Match, for a trie whose entries are topic names
// (no wildcards), such as the retained-message index: it calls fn for every stored
// name that filter matches, with the same rules as Match — `+` one level, `#` the
// parent level and everything below, and no match of a `$` topic by a filter whose
// first level is a wildcard [MQTT-4.7.2-1]. fn gets each stored name once and runs
// under the read lock; returning false stops.
func (t *Trie[K, V]) MatchFilter(filter string, fn func(name string) bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	reverseLocked(t.root, filter, 0, true, fn)
}

func reverseLocked[K comparable, V any](n *node[K, V], filter string, start int, root bool, fn func(string) bool) bool {
	level, next := nextLevel(filter, start)
	switch level {
	case multiLevel:
		// `#` matches the parent level too: "a/#" matches "a".
		if !root && len(n.keys) > 0 && !fn(n.filter) {
			return false
		}
		for name, c := range n.children {
			if root && len(name) > 0 && name[0] == '$' {
				continue
			}
			if !walkNamesLocked(c, fn) {
				return false
			}
		}
		return true
	case singleLevel:
		for name, c := range n.children {
			if root && len(name) > 0 && name[0] == '$' {
				continue
			}
			if !reverseStep(c, filter, next, fn) {
				return false
			}
		}
		return true
	}
	if c := n.children[level]; c != nil {
		return reverseStep(c, filter, next, fn)
	}
	return true
}

// reverseStep continues at child c after one filter level; next < 0 means the filter
// ended at c.
func reverseStep[K comparable, V any](c *node[K, V], filter string, next int, fn func(string) bool) bool {
	if next < 0 {
		if len(c.keys) > 0 {
			return fn(c.filter)
		}
		return true
	}
	return reverseLocked(c, filter, next, false, fn)
}

func walkNamesLocked[K comparable, V any](n *node[K, V], fn func(string) bool) bool {
	if len(n.keys) > 0 && !fn(n.filter) {
		return false
	}
	for _, c := range n.children {
		if !walkNamesLocked(c, fn) {
			return false
		}
	}
	return true
}
