package auth

import "testing"

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},
		{"+/+", "/x", true}, // an empty level is a level
		{"a/#", "a", true},  // # matches the parent [MQTT-4.7.1-1]
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"#", "a/b", true},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1] no wildcard first level for $ topics
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/#/c", "a/b/x/y", true}, // mid-level # (after substitution) fails closed
		{"sensor/x+", "sensor/x", false},
	}
	for _, tt := range tests {
		if got := matchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("matchTopic(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		acl, sub string
		want     bool
	}{
		{"sensors/+/temp", "sensors/+/temp", true},
		{"sensors/+/temp", "sensors/a/temp", true},
		{"sensors/+/temp", "sensors/#", false},
		{"sensors/+/temp", "sensors/+/+", false},
		{"sensors/+/temp", "sensors/+/temp/#", false},
		{"sensors/a/temp", "sensors/+/temp", false},
		{"a/#", "a", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+/b", true},
		{"a/#", "#", false},
		{"a/+/#", "a/#", false}, // a/# also matches a itself
		{"a/+", "a/b/c", false},
		{"a", "a/#", false},
		{"#", "#", true},
		{"#", "a/+/c", true},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x/y", true},
		{"$SYS/#", "#", false},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
	}
	for _, tt := range tests {
		if got := covers(tt.acl, tt.sub); got != tt.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.acl, tt.sub, got, tt.want)
		}
	}
}

// TestCoversAgreesWithMatch checks covers against brute force: sub is covered exactly
// when every topic of a sample that sub matches is also matched by acl, and covers may
// only err towards false.
func TestCoversAgreesWithMatch(t *testing.T) {
	levels := []string{"a", "b", "$s"}
	var topics []string
	var gen func(prefix string, depth int)
	gen = func(prefix string, depth int) {
		if depth == 0 {
			return
		}
		for _, l := range levels {
			if prefix != "" && l == "$s" {
				continue
			}
			t := l
			if prefix != "" {
				t = prefix + "/" + l
			}
			topics = append(topics, t)
			gen(t, depth-1)
		}
	}
	gen("", 4)
	filters := []string{"#", "+", "a", "a/#", "a/+", "+/b", "+/#", "a/+/#", "a/b", "$s/#", "$s/+", "+/+", "a/b/#", "+/+/+"}
	for _, acl := range filters {
		for _, sub := range filters {
			exact := true
			for _, topic := range topics {
				if len(topic) > 0 && matchTopic(sub, topic) && !matchTopic(acl, topic) {
					exact = false
					break
				}
			}
			got := covers(acl, sub)
			if got && !exact {
				t.Errorf("covers(%q, %q) = true, but %q reaches topics %q does not", acl, sub, sub, acl)
			}
			// Known conservative answer: "+/#" does cover "#" (and "+/+/#" etc. do not).
			if !got && exact && !(acl == "+/#" && sub == "#") {
				t.Errorf("covers(%q, %q) = false, want true", acl, sub)
			}
		}
	}
}

func TestCheckFilter(t *testing.T) {
	for _, ok := range []string{"a", "a/b", "+", "#", "a/+/b", "a/#", "/", "$SYS/#", "a b/c"} {
		if err := checkFilter(ok); err != nil {
			t.Errorf("checkFilter(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a+", "a/+b", "#/a", "a/b#", "a/#/b", "a\x00b", "\xff"} {
		if err := checkFilter(bad); err == nil {
			t.Errorf("checkFilter(%q) = nil, want an error", bad)
		}
	}
}
