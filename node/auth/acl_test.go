package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testACL = `# Anonymous section: clients without a username.
topic read public/#
topic write public/anon/in
  # an indented comment

pattern read devices/%c/#
pattern readwrite users/%u/#
pattern deny devices/%c/secret

user reader
topic read sensors/+/temp
topic read $SYS/#
topic read status/+

user writer
topic write sensors/+/temp

user both
topic readwrite home/#
topic deny home/private/#
topic read with space/x

user admin
topic readwrite #
`

func parseTestACL(t *testing.T, text string) *ACL {
	t.Helper()
	a, err := ParseACL(strings.NewReader(text), "acl")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type aclCase struct {
	name      string
	clientID  string
	username  string
	anonymous bool
	topic     string
	want      bool
}

func TestACLPublishAndRead(t *testing.T) {
	a := parseTestACL(t, testACL)
	read := []aclCase{
		{"read-only user reads", "c1", "reader", false, "sensors/a/temp", true},
		{"read-only user, other topic", "c1", "reader", false, "sensors/a/humidity", false},
		{"read-only user reads $SYS when granted", "c1", "reader", false, "$SYS/broker/uptime", true},
		{"write-only user cannot read", "c2", "writer", false, "sensors/a/temp", false},
		{"readwrite reads", "c3", "both", false, "home/kitchen/light", true},
		{"deny overrides a broader grant", "c3", "both", false, "home/private/diary", false},
		{"deny # covers its parent", "c3", "both", false, "home/private", false},
		{"topic with a space", "c3", "both", false, "with space/x", true},
		{"# grants everything", "c4", "admin", false, "any/topic", true},
		{"# does not grant $SYS", "c4", "admin", false, "$SYS/broker/uptime", false},
		{"anonymous section", "anon1", "", true, "public/news", true},
		{"anonymous section is not for users", "c1", "reader", false, "public/news", false},
		{"username ignored when anonymous", "anon1", "reader", true, "sensors/a/temp", false},
		{"%c pattern, anonymous client", "dev1", "", true, "devices/dev1/status", true},
		{"%c pattern, user client", "dev1", "reader", false, "devices/dev1/status", true},
		{"%c pattern, unknown user", "dev1", "nobody", false, "devices/dev1/status", true},
		{"%c pattern, another client's topic", "dev1", "", true, "devices/dev2/status", false},
		{"%c pattern deny", "dev1", "", true, "devices/dev1/secret", false},
		{"pattern deny overrides a user grant", "dev1", "admin", false, "devices/dev1/secret", false},
		{"%u pattern", "c1", "reader", false, "users/reader/inbox", true},
		{"%u pattern, another user's topic", "c1", "reader", false, "users/writer/inbox", false},
		{"%u pattern skipped for anonymous", "c1", "", true, "users//inbox", false},
		{"client id with / spans levels", "a/b", "", true, "devices/a/b/status", true},
		{"client id + gets no pattern grant", "+", "", true, "devices/x/status", false},
		{"client id # gets no pattern grant", "#", "", true, "devices/x/status", false},
		{"username with # gets no pattern grant", "c1", "x#", false, "users/x/inbox", false},
		{"unknown user gets no section", "c1", "nobody", false, "sensors/a/temp", false},
	}
	for _, tt := range read {
		if got := a.CanRead(tt.clientID, tt.username, tt.anonymous, tt.topic); got != tt.want {
			t.Errorf("CanRead %s: (%q, %q, anonymous=%v, %q) = %v, want %v", tt.name, tt.clientID, tt.username, tt.anonymous, tt.topic, got, tt.want)
		}
	}
	publish := []aclCase{
		{"read-only user cannot publish", "c1", "reader", false, "sensors/a/temp", false},
		{"write-only user publishes", "c2", "writer", false, "sensors/a/temp", true},
		{"write-only user, other topic", "c2", "writer", false, "sensors/a/humidity", false},
		{"readwrite publishes", "c3", "both", false, "home/kitchen", true},
		{"deny overrides for publish", "c3", "both", false, "home/private/x", false},
		{"read-only topic", "c3", "both", false, "with space/x", false},
		{"anonymous write", "anon1", "", true, "public/anon/in", true},
		{"anonymous read-only topic", "anon1", "", true, "public/news", false},
		{"read pattern does not grant write", "dev1", "", true, "devices/dev1/status", false},
		{"readwrite %u pattern", "c2", "writer", false, "users/writer/outbox", true},
		{"wildcards are not topic names", "c4", "admin", false, "a/+", false},
		{"# does not grant $SYS", "c4", "admin", false, "$SYS/x", false},
	}
	for _, tt := range publish {
		if got := a.CanPublish(tt.clientID, tt.username, tt.anonymous, tt.topic); got != tt.want {
			t.Errorf("CanPublish %s: (%q, %q, anonymous=%v, %q) = %v, want %v", tt.name, tt.clientID, tt.username, tt.anonymous, tt.topic, got, tt.want)
		}
	}
}

func TestACLSubscribe(t *testing.T) {
	a := parseTestACL(t, testACL)
	tests := []aclCase{
		{"the ACL's own wildcard filter", "c1", "reader", false, "sensors/+/temp", true},
		{"a topic inside it", "c1", "reader", false, "sensors/a/temp", true},
		{"a wider wildcard", "c1", "reader", false, "sensors/#", false},
		{"a wider single-level wildcard", "c1", "reader", false, "sensors/+/+", false},
		{"everything", "c1", "reader", false, "#", false},
		{"# below a + rule", "c1", "reader", false, "status/#", false},
		{"+ rule", "c1", "reader", false, "status/+", true},
		{"$SYS when granted", "c1", "reader", false, "$SYS/broker/#", true},
		{"shared subscription", "c1", "reader", false, "$share/g/sensors/+/temp", true},
		{"shared subscription, too wide", "c1", "reader", false, "$share/g/sensors/#", false},
		{"shared subscription without filter", "c1", "reader", false, "$share/g", false},
		{"write-only user", "c2", "writer", false, "sensors/+/temp", false},
		{"overlapping a deny is allowed", "c3", "both", false, "home/#", true},
		{"inside a deny is refused", "c3", "both", false, "home/private/#", false},
		{"a topic inside a deny", "c3", "both", false, "home/private/x", false},
		{"admin everything", "c4", "admin", false, "#", true},
		{"admin $SYS", "c4", "admin", false, "$SYS/#", false},
		{"%c pattern", "dev1", "", true, "devices/dev1/#", true},
		{"%c pattern, all devices", "dev1", "", true, "devices/+/status", false},
		{"%c pattern deny", "dev1", "", true, "devices/dev1/secret", false},
		{"invalid filter", "c4", "admin", false, "a/#/b", false},
	}
	for _, tt := range tests {
		if got := a.CanSubscribe(tt.clientID, tt.username, tt.anonymous, tt.topic); got != tt.want {
			t.Errorf("CanSubscribe %s: (%q, %q, anonymous=%v, %q) = %v, want %v", tt.name, tt.clientID, tt.username, tt.anonymous, tt.topic, got, tt.want)
		}
	}
}

func TestACLParsing(t *testing.T) {
	t.Run("no access word means readwrite", func(t *testing.T) {
		a := parseTestACL(t, "topic a/b\r\npattern c/%c\n")
		if !a.CanPublish("x", "", true, "a/b") || !a.CanRead("x", "", true, "a/b") {
			t.Error("topic a/b without access word does not grant read and write")
		}
		if !a.CanPublish("x", "", true, "c/x") || !a.CanRead("x", "", true, "c/x") {
			t.Errorf("pattern %s without access word does not grant read and write", "c/%c")
		}
	})
	t.Run("lone word is the topic", func(t *testing.T) {
		// Mosquitto reads "topic read" as readwrite on the topic "read".
		a := parseTestACL(t, "topic read\n")
		if !a.CanPublish("x", "", true, "read") {
			t.Error(`"topic read" does not grant readwrite on "read"`)
		}
	})
	t.Run("repeated user sections add up", func(t *testing.T) {
		a := parseTestACL(t, "user u\ntopic read a\nuser v\ntopic read b\nuser u\ntopic read c\n")
		if !a.CanRead("x", "u", false, "a") || !a.CanRead("x", "u", false, "c") || a.CanRead("x", "u", false, "b") {
			t.Error("user u should read a and c, not b")
		}
	})
	t.Run("username with spaces", func(t *testing.T) {
		a := parseTestACL(t, "user  John Smith \ntopic read a\n")
		if !a.CanRead("x", "John Smith", false, "a") {
			t.Error(`user "John Smith" cannot read a`)
		}
	})
	t.Run("empty file allows nothing", func(t *testing.T) {
		a := parseTestACL(t, "# nothing yet\n")
		if a.CanRead("x", "", true, "a") || a.CanPublish("x", "u", false, "a") || a.CanSubscribe("x", "u", false, "a") {
			t.Error("an ACL without rules allowed something")
		}
	})

	errs := []struct {
		name, text, want string
	}{
		{"topic without topic", "# c\ntopic\n", "acl:2: topic line without a topic"},
		{"pattern without topic", "pattern  \n", "acl:1: pattern line without a topic"},
		{"bad access word", "topic rw a/b\n", `acl:1: invalid access "rw"`},
		{"topic with space needs access", "topic a b\n", `acl:1: invalid access "a"`},
		{"unknown keyword", "\nuser u\nfrob x\n", `acl:3: unknown keyword "frob"`},
		{"keywords are case-sensitive", "TOPIC read a\n", `acl:1: unknown keyword "TOPIC"`},
		{"user without name", "user\n", "acl:1: user line without a username"},
		{"+ inside a level", "topic read a/+x\n", `acl:1: invalid topic "a/+x"`},
		{"# not last", "topic read a/#/b\n", `acl:1: invalid topic "a/#/b"`},
		{"trailing comment is part of the topic", "topic read a #note\n", `acl:1: invalid topic "a #note"`},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseACL(strings.NewReader(tt.text), "acl")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("err = %#v, want a *ParseError", err)
			}
		})
	}
}

func TestLoadACLFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadACLFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
	file := filepath.Join(dir, "acl")
	if err := os.WriteFile(file, []byte("topic read a\nuser\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadACLFile(file); err == nil || !strings.HasPrefix(err.Error(), file+":2: ") {
		t.Errorf("err = %v, want one starting with %q", err, file+":2: ")
	}
}

func BenchmarkCanRead(b *testing.B) {
	a, err := ParseACL(strings.NewReader(testACL), "acl")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("user section", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.CanRead("c1", "reader", false, "sensors/a/temp")
		}
	})
	b.Run("pattern", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.CanRead("dev1", "", true, "devices/dev1/status")
		}
	})
}
