package proto

import (
	"fmt"
	"strings"
)

// ValidTopicName checks a topic name of a PUBLISH or will: at least one character
// [MQTT-4.7.3-1], valid UTF-8 without U+0000, no wildcards [MQTT-3.3.2-2] [MQTT-4.7.1-1],
// at most 65535 bytes [MQTT-4.7.3-3].
func ValidTopicName(topic string) error {
	if topic == "" {
		return &Error{Code: TopicNameInvalid, Msg: "empty topic name"}
	}
	if len(topic) > MaxStringLen {
		return &Error{Code: TopicNameInvalid, Msg: "topic name longer than 65535 bytes"}
	}
	if strings.ContainsAny(topic, "+#") {
		return &Error{Code: TopicNameInvalid, Msg: fmt.Sprintf("wildcard in topic name %q", topic)}
	}
	if !ValidUTF8(topic) {
		return &Error{Code: TopicNameInvalid, Msg: "topic name is not valid UTF-8"}
	}
	return nil
}

// ValidTopicFilter checks a topic filter of SUBSCRIBE or UNSUBSCRIBE: non-empty, `#`
// only as the whole last level [MQTT-4.7.1-2], `+` only as a whole level
// [MQTT-4.7.1-3], valid UTF-8. Shared subscriptions ($share/group/filter) are checked
// as well: a non-empty group without wildcards and a valid filter after it
// [MQTT-4.8.2-1] [MQTT-4.8.2-2].
func ValidTopicFilter(filter string) error {
	if filter == "" {
		return &Error{Code: TopicFilterInvalid, Msg: "empty topic filter"}
	}
	if len(filter) > MaxStringLen {
		return &Error{Code: TopicFilterInvalid, Msg: "topic filter longer than 65535 bytes"}
	}
	if !ValidUTF8(filter) {
		return &Error{Code: TopicFilterInvalid, Msg: "topic filter is not valid UTF-8"}
	}
	if group, inner, ok := SplitShared(filter); ok {
		if group == "" || strings.ContainsAny(group, "+#") {
			return &Error{Code: TopicFilterInvalid, Msg: fmt.Sprintf("shared subscription group %q", group)}
		}
		if inner == "" {
			return &Error{Code: TopicFilterInvalid, Msg: "shared subscription without a topic filter"}
		}
		filter = inner
	}
	return validFilterLevels(filter)
}

func validFilterLevels(filter string) error {
	for i := 0; i < len(filter); i++ {
		switch filter[i] {
		case '#':
			if i != len(filter)-1 || (i > 0 && filter[i-1] != '/') {
				return &Error{Code: TopicFilterInvalid, Msg: fmt.Sprintf("%q: # must be the last level on its own", filter)}
			}
		case '+':
			if (i > 0 && filter[i-1] != '/') || (i < len(filter)-1 && filter[i+1] != '/') {
				return &Error{Code: TopicFilterInvalid, Msg: fmt.Sprintf("%q: + must be a level on its own", filter)}
			}
		}
	}
	return nil
}

// SharePrefix starts a shared subscription filter: $share/{group}/{filter}.
const SharePrefix = "$share/"

// SplitShared splits a shared subscription filter into its group and the filter
// after it. ok is false when filter is not a shared subscription. The group or the
// inner filter may be empty; ValidTopicFilter rejects those.
func SplitShared(filter string) (group, inner string, ok bool) {
	rest, found := strings.CutPrefix(filter, SharePrefix)
	if !found {
		return "", "", false
	}
	group, inner, _ = strings.Cut(rest, "/")
	return group, inner, true
}

// HasWildcard reports whether filter contains + or #.
func HasWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }
