package proto_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/skein-mq/skein/proto"
)

// topicFilterCases are the topic filter rules of sections 4.7 and 4.8; they seed
// FuzzTopicFilter too.
var topicFilterCases = []struct {
	filter string
	ok     bool
	spec   string
}{
	// Section 4.7.1.2 multi-level wildcard.
	{"sport/tennis/player1/#", true, "[MQTT-4.7.1-2]"},
	{"sport/tennis/#", true, "[MQTT-4.7.1-2]"},
	{"sport/#", true, "[MQTT-4.7.1-2] # also matches the parent"},
	{"#", true, "[MQTT-4.7.1-2]"},
	{"sport/tennis#", false, "[MQTT-4.7.1-2] # must be a whole level"},
	{"sport/tennis/#/ranking", false, "[MQTT-4.7.1-2] # must be the last level"},
	{"##", false, "[MQTT-4.7.1-2]"},
	{"#/", false, "[MQTT-4.7.1-2]"},
	{"/#", true, "[MQTT-4.7.1-2] empty first level"},
	// Section 4.7.1.3 single-level wildcard.
	{"+", true, "[MQTT-4.7.1-3]"},
	{"+/tennis/#", true, "[MQTT-4.7.1-3]"},
	{"sport/+/player1", true, "[MQTT-4.7.1-3]"},
	{"/+", true, "[MQTT-4.7.1-3]"},
	{"+/+", true, "[MQTT-4.7.1-3]"},
	{"+/", true, "[MQTT-4.7.1-3]"},
	{"sport+", false, "[MQTT-4.7.1-3] + must be a whole level"},
	{"+sport", false, "[MQTT-4.7.1-3]"},
	{"sport/+tennis", false, "[MQTT-4.7.1-3]"},
	{"++", false, "[MQTT-4.7.1-3]"},
	{"+#", false, "[MQTT-4.7.1-2]"},
	// Section 4.7.2 and 4.7.3.
	{"$SYS/#", true, "4.7.2 $ topics are filters like any other"},
	{"$SYS/monitor/+", true, "4.7.2"},
	{"/", true, "4.7.3 empty levels"},
	{"a//b", true, "4.7.3 empty levels"},
	{"", false, "[MQTT-4.7.3-1] at least one character"},
	{"a\x00b", false, "[MQTT-4.7.3-2] no U+0000"},
	{"\xED\xA0\x80", false, "[MQTT-1.5.4-1] surrogate"},
	{"\xFF", false, "[MQTT-1.5.4-1]"},
	{strings.Repeat("a", 65535), true, "[MQTT-4.7.3-3] 65535 bytes"},
	{strings.Repeat("a", 65536), false, "[MQTT-4.7.3-3]"},
	// Section 4.8.2 shared subscriptions.
	{"$share/g/a/#", true, "[MQTT-4.8.2-1]"},
	{"$share/group/+", true, "[MQTT-4.8.2-1]"},
	{"$share/g/#", true, "[MQTT-4.8.2-1]"},
	{"$share/g//", true, "[MQTT-4.8.2-1] inner filter of empty levels"},
	{"$share//a", false, "[MQTT-4.8.2-1] share name at least one character"},
	{"$share/g", false, "4.8.2 a topic filter must follow the share name"},
	{"$share/g/", false, "4.8.2 empty topic filter"},
	{"$share/", false, "4.8.2"},
	{"$share/g+/a", false, "[MQTT-4.8.2-2] no wildcard in the share name"},
	{"$share/+/a", false, "[MQTT-4.8.2-2]"},
	{"$share/#/a", false, "[MQTT-4.8.2-2]"},
	{"$share/g/a#", false, "[MQTT-4.7.1-2] inner filter checked"},
	{"$share/g/a+", false, "[MQTT-4.7.1-3] inner filter checked"},
	{"$share", true, "not a shared subscription: no slash"},
	{"$sharex/g", true, "not a shared subscription"},
}

func TestValidTopicFilter(t *testing.T) {
	for _, tc := range topicFilterCases {
		name := tc.filter
		if len(name) > 40 {
			name = name[:10] + "...(long)"
		}
		t.Run(name, func(t *testing.T) {
			err := proto.ValidTopicFilter(tc.filter)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidTopicFilter(%q) = %v, want ok=%v (%s)", name, err, tc.ok, tc.spec)
			}
			if err != nil && (proto.CodeOf(err, 0) != proto.TopicFilterInvalid || !errors.Is(err, proto.ErrTopicFilter)) {
				t.Errorf("ValidTopicFilter(%q) = %v, want code 0x8F", name, err)
			}
		})
	}
}

// topicNameCases are the topic name rules of section 4.7; they seed FuzzTopicFilter too.
var topicNameCases = []struct {
	topic string
	ok    bool
	spec  string
}{
	{"sport/tennis/player1", true, "4.7"},
	{"sport", true, "4.7"},
	{"/", true, "4.7.3 empty levels"},
	{"/finance", true, "4.7.3"},
	{"$SYS/broker/load", true, "4.7.2"},
	{"$share/g/a", true, "a name, not a filter: $share has no meaning here"},
	{"a b", true, "spaces allowed"},
	{"", false, "[MQTT-4.7.3-1]"},
	{"sport/+", false, "[MQTT-3.3.2-2] [MQTT-4.7.1-1]"},
	{"sport/#", false, "[MQTT-3.3.2-2]"},
	{"#", false, "[MQTT-4.7.1-1]"},
	{"+", false, "[MQTT-4.7.1-1]"},
	{"sport+", false, "[MQTT-4.7.1-1] a + anywhere"},
	{"a#b", false, "[MQTT-4.7.1-1] a # anywhere"},
	{"a\x00", false, "[MQTT-4.7.3-2]"},
	{"\xC0\x80", false, "[MQTT-1.5.4-1] overlong"},
	{strings.Repeat("t", 65535), true, "[MQTT-4.7.3-3]"},
	{strings.Repeat("t", 65536), false, "[MQTT-4.7.3-3]"},
}

func TestValidTopicName(t *testing.T) {
	for _, tc := range topicNameCases {
		name := tc.topic
		if len(name) > 40 {
			name = name[:10] + "...(long)"
		}
		t.Run(name, func(t *testing.T) {
			err := proto.ValidTopicName(tc.topic)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidTopicName(%q) = %v, want ok=%v (%s)", name, err, tc.ok, tc.spec)
			}
			if err != nil && (proto.CodeOf(err, 0) != proto.TopicNameInvalid || !errors.Is(err, proto.ErrTopicName)) {
				t.Errorf("ValidTopicName(%q) = %v, want code 0x90", name, err)
			}
		})
	}
}

func TestSplitShared(t *testing.T) {
	tests := []struct {
		filter, group, inner string
		ok                   bool
	}{
		{"$share/g/a/#", "g", "a/#", true},
		{"$share/group/+", "group", "+", true},
		{"$share/g//x", "g", "/x", true},
		{"$share//a", "", "a", true},
		{"$share/g", "g", "", true},
		{"$share/", "", "", true},
		{"$share", "", "", false},
		{"$SHARE/g/a", "", "", false},
		{"a/$share/g/b", "", "", false},
		{"sport/#", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			group, inner, ok := proto.SplitShared(tc.filter)
			if group != tc.group || inner != tc.inner || ok != tc.ok {
				t.Errorf("SplitShared(%q) = %q, %q, %v; want %q, %q, %v",
					tc.filter, group, inner, ok, tc.group, tc.inner, tc.ok)
			}
		})
	}
}

func TestHasWildcard(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"a/b", false}, {"a/+", true}, {"#", true}, {"$share/g/a", false}, {"", false},
	}
	for _, tc := range tests {
		if got := proto.HasWildcard(tc.filter); got != tc.want {
			t.Errorf("HasWildcard(%q) = %v, want %v", tc.filter, got, tc.want)
		}
	}
}
