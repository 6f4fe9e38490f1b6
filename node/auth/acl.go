package auth

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Access is what an ACL rule grants on the topics it matches. Mosquitto's ACL file has
// no separate subscribe right: whether a SUBSCRIBE is accepted is decided from Read (see
// ACL.CanSubscribe).
type Access int

const (
	// Read allows receiving messages published to a topic ("read").
	Read Access = 1 << iota
	// Write allows publishing to a topic ("write").
	Write
	// ReadWrite is both ("readwrite", and a rule without an access word).
	ReadWrite = Read | Write
)

// String returns the access word of the ACL file for a.
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// rule is one topic or pattern line of an ACL file.
type rule struct {
	topic  string // the topic filter as written; for patterns it may hold %c and %u
	access Access // what a grant allows; unused for deny rules
	deny   bool
	client bool // pattern only: topic contains %c
	user   bool // pattern only: topic contains %u
}

// ACL is a parsed Mosquitto ACL file (acl_file). It is immutable once parsed and safe
// for concurrent use.
//
// What it implements, following the mosquitto.conf(5) acl_file section and checked
// against Mosquitto 2.0.11:
//
//   - Only what a rule grants is allowed; a file without rules allows nothing.
//   - `topic [read|write|readwrite|deny] <topic>`: without an access word the rule is
//     readwrite. The topic is the rest of the line (it may contain spaces when an access
//     word precedes it) and may use the + and # wildcards.
//   - Topic lines before the first `user` line form the anonymous section: they apply
//     only to clients that connected without a username. A client with a username gets
//     the topic lines of its own `user <username>` section (sections of the same name
//     add up) and never the anonymous section; a user without a section gets only the
//     patterns.
//   - `pattern [access] <topic>` applies to every client, anonymous or not, wherever it
//     appears in the file, with %c replaced by the client id and %u by the username. A
//     pattern using %u does not apply to an anonymous client. Like Mosquitto the
//     replacement is textual (a client id "a/b" spans two levels), and a client id or
//     username containing + or # gets nothing from a pattern that substitutes it
//     (CVE-2017-7650); deny patterns still apply to such clients.
//   - `deny` overrides grants: a topic matched by any deny rule of the client's section
//     or of the patterns is refused whatever else grants it. (Mosquitto 2.0.11 checks a
//     pattern deny only after the user's own grants; the man page says denies come
//     first, which is what is done here.)
//   - Wildcards follow MQTT: a rule whose first level is + or # does not match topics
//     starting with $, so `topic read #` does not grant $SYS; grant `$SYS/#` explicitly.
//   - Lines starting with # are comments; blank lines are skipped. Keywords and access
//     words are case-sensitive. Leading blanks, trailing blanks and a CR are ignored.
type ACL struct {
	name     string
	anon     []rule            // topic lines before the first user line
	users    map[string][]rule // topic lines of each user section
	patterns []rule            // every pattern line, in file order
}

// LoadACLFile reads and parses the ACL file at path.
func LoadACLFile(path string) (*ACL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: acl file: %w", err)
	}
	defer f.Close() // read-only: a close error cannot lose data
	return ParseACL(f, path)
}

// ParseACL parses an ACL file read from r; name is used in errors, which are
// *ParseError values naming the file and line. Unknown keywords, unknown access words
// and invalid topic filters are errors, as in Mosquitto.
func ParseACL(r io.Reader, name string) (*ACL, error) {
	a := &ACL{name: name, users: make(map[string][]rule)}
	var (
		user   string
		inUser bool // a user line has been seen: topic lines belong to user
	)
	sc := newLineScanner(r)
	for n := 1; sc.Scan(); n++ {
		s := strings.Trim(sc.Text(), " \t\r")
		if s == "" || s[0] == '#' {
			continue
		}
		kw, rest := cutField(s)
		switch kw {
		case "topic", "pattern":
			if rest == "" {
				return nil, &ParseError{name, n, kw + " line without a topic"}
			}
			r := rule{topic: rest, access: ReadWrite}
			// One word is the topic (Mosquitto reads "topic read" as readwrite on the
			// topic "read"); with more, the first is the access word.
			if word, topic := cutField(rest); topic != "" {
				switch word {
				case "read":
					r.access = Read
				case "write":
					r.access = Write
				case "readwrite":
				case "deny":
					r.deny = true
				default:
					return nil, &ParseError{name, n, fmt.Sprintf("invalid access %q: want read, write, readwrite or deny before the topic", word)}
				}
				r.topic = topic
			}
			if err := checkFilter(r.topic); err != nil {
				return nil, &ParseError{name, n, fmt.Sprintf("invalid topic %q: %v", r.topic, err)}
			}
			switch {
			case kw == "pattern":
				r.client = strings.Contains(r.topic, "%c")
				r.user = strings.Contains(r.topic, "%u")
				a.patterns = append(a.patterns, r)
			case inUser:
				a.users[user] = append(a.users[user], r)
			default:
				a.anon = append(a.anon, r)
			}
		case "user":
			if rest == "" {
				return nil, &ParseError{name, n, "user line without a username"}
			}
			user, inUser = rest, true
		default:
			return nil, &ParseError{name, n, fmt.Sprintf("unknown keyword %q: want topic, pattern or user", kw)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: read acl file %s: %w", name, err)
	}
	return a, nil
}

// cutField splits s at its first run of blanks.
func cutField(s string) (first, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// Name returns the name the file was parsed under (its path for LoadACLFile).
func (a *ACL) Name() string { return a.name }

// CanPublish reports whether the client may publish to topic (a topic name, not a
// filter). anonymous means the client connected without a username; username is then
// ignored.
func (a *ACL) CanPublish(clientID, username string, anonymous bool, topic string) bool {
	if !isTopicName(topic) {
		return false
	}
	return a.allowed(clientID, username, anonymous, Write, topic, false)
}

// CanRead reports whether the client may be sent a message published to topic. The
// broker checks it for every delivery, whatever CanSubscribe said, so a wildcard
// subscription delivers only the topics the client may read, and an ACL reload takes
// effect on existing subscriptions.
func (a *ACL) CanRead(clientID, username string, anonymous bool, topic string) bool {
	if !isTopicName(topic) {
		return false
	}
	return a.allowed(clientID, username, anonymous, Read, topic, false)
}

// CanSubscribe reports whether the client may subscribe to filter: when one rule that
// grants read covers the whole filter, that is, every topic the filter can match is
// matched by that rule. With `topic read sensors/+/temp`, the filters sensors/+/temp and
// sensors/a/temp are allowed and sensors/# is refused, since it reaches topics the rule
// does not grant. A filter wholly inside a deny rule is refused; one that only overlaps
// a deny rule is allowed and CanRead filters its messages. For a shared subscription
// ($share/<group>/<filter>) the filter after the group is checked.
//
// Mosquitto 2.0's acl_file does not check SUBSCRIBE at all (it grants every filter and
// filters deliveries by read access); Checker offers that behaviour as
// Options.GrantAllSubscriptions.
func (a *ACL) CanSubscribe(clientID, username string, anonymous bool, filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, f, ok := strings.Cut(rest, "/")
		if !ok {
			return false
		}
		filter = f
	}
	if checkFilter(filter) != nil {
		return false
	}
	return a.allowed(clientID, username, anonymous, Read, filter, true)
}

// allowed applies the client's rules to topic: false when any deny rule matches it,
// else true when any rule granting want matches it. A rule matches a topic name when
// the name matches the rule's filter, and (sub) a subscription filter when the rule's
// filter covers it.
func (a *ACL) allowed(clientID, username string, anonymous bool, want Access, topic string, sub bool) bool {
	match := func(aclTopic string) bool {
		if sub {
			return covers(aclTopic, topic)
		}
		return matchTopic(aclTopic, topic)
	}
	section := a.anon
	if !anonymous {
		section = a.users[username]
	}
	for _, r := range section {
		if r.deny && match(r.topic) {
			return false
		}
	}
	for i := range a.patterns {
		r := &a.patterns[i]
		if !r.deny {
			continue
		}
		if t, ok := r.expand(clientID, username, anonymous, false); ok && match(t) {
			return false
		}
	}
	for _, r := range section {
		if !r.deny && r.access&want != 0 && match(r.topic) {
			return true
		}
	}
	for i := range a.patterns {
		r := &a.patterns[i]
		if r.deny || r.access&want == 0 {
			continue
		}
		if t, ok := r.expand(clientID, username, anonymous, true); ok && match(t) {
			return true
		}
	}
	return false
}

// expand returns a pattern's topic with %c and %u replaced, and false when the pattern
// does not apply to the client: it uses %u and the client is anonymous, or, for a grant,
// a substituted value contains + or # and would widen the grant. It allocates only for
// patterns that substitute.
func (r *rule) expand(clientID, username string, anonymous, grant bool) (string, bool) {
	if r.user && anonymous {
		return "", false
	}
	if grant && ((r.client && strings.ContainsAny(clientID, "+#")) || (r.user && strings.ContainsAny(username, "+#"))) {
		return "", false
	}
	if !r.client && !r.user {
		return r.topic, true
	}
	var b strings.Builder
	b.Grow(len(r.topic) + len(clientID) + len(username))
	for s := r.topic; s != ""; {
		i := strings.IndexByte(s, '%')
		if i < 0 || i == len(s)-1 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		switch s[i+1] {
		case 'c':
			b.WriteString(clientID)
		case 'u':
			b.WriteString(username)
		default:
			b.WriteString(s[i : i+2])
		}
		s = s[i+2:]
	}
	return b.String(), true
}
