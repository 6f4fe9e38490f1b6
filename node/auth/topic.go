package auth

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// This file is the topic matching the ACL checks need: matching a topic name against an
// ACL topic (a filter), and deciding whether one filter covers another. It is a few
// string loops rather than route's Trie because an ACL check compares one topic with a
// short per-user list, and because covers has no counterpart in the Trie.

// checkFilter returns why s is not a valid MQTT topic filter, or nil.
func checkFilter(s string) error {
	if s == "" {
		return errors.New("empty topic")
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		// [MQTT-1.5.4-1] [MQTT-1.5.4-2] UTF-8 without U+0000
		return errors.New("topic is not valid UTF-8 or contains NUL")
	}
	for rest := s; ; {
		level, next, more := strings.Cut(rest, "/")
		if strings.ContainsRune(level, '+') && level != "+" {
			// [MQTT-4.7.1-2] the single-level wildcard occupies an entire level
			return errors.New("'+' must be a whole topic level")
		}
		if strings.ContainsRune(level, '#') && (level != "#" || more) {
			// [MQTT-4.7.1-1] the multi-level wildcard is a whole level and the last one
			return errors.New("'#' must be the whole last topic level")
		}
		if !more {
			return nil
		}
		rest = next
	}
}

// isTopicName reports whether s is a valid topic name: non-empty, valid UTF-8 without
// NUL, and without wildcards. [MQTT-3.3.2-2] [MQTT-4.7.3-1]
func isTopicName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "+#") && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// wildFirst reports whether filter's first level is a wildcard, which never matches a
// topic starting with '$'. [MQTT-4.7.2-1]
func wildFirst(filter string) bool {
	return filter != "" && (filter[0] == '+' || filter[0] == '#')
}

// matchTopic reports whether the topic name matches filter under MQTT's rules: `+`
// matches one level, `#` the parent level and every level below, and a wildcard first
// level does not match a topic starting with '$'. A `#` that is not the last level
// (possible only after a pattern substitution) matches everything below it, so a deny
// rule fails closed.
func matchTopic(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && wildFirst(filter) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			return frest == "#" // "a/#" matches "a"
		}
		filter, topic = frest, trest
	}
}

// covers reports whether every topic name that sub matches is also matched by acl, so a
// subscription to sub can only ever be sent what acl allows. It is exact for the cases
// ACL files contain and errs on the side of false: "+/#" is not taken to cover "#".
func covers(acl, sub string) bool {
	if sub != "" && sub[0] == '$' && wildFirst(acl) {
		return false // acl matches no $ topic, sub matches only $ topics
	}
	for {
		al, arest, amore := strings.Cut(acl, "/")
		if al == "#" {
			return true
		}
		sl, srest, smore := strings.Cut(sub, "/")
		switch {
		case sl == "#":
			return false // sub reaches every depth below here, acl does not
		case al == "+":
		case sl == "+" || al != sl:
			return false
		}
		switch {
		case !smore:
			return !amore || arest == "#"
		case !amore:
			return false // sub has levels below where acl ends
		}
		acl, sub = arest, srest
	}
}
