package auth

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skein-mq/skein/node/auth/authtest"
)

// interopACL is an ACL file on which Skein and Mosquitto 2.0 must agree. It leaves out
// the one place where they differ on purpose: a pattern deny against a user's own grant.
// "pattern read sync/%c" lets every client receive a last message that ends its run.
const interopACL = `# anonymous clients
topic read public/#
topic write public/anon/in
pattern read devices/%c/#
pattern readwrite users/%u/#
pattern deny devices/%c/secret
pattern read sync/%c

user reader
topic read sensors/+/temp

user writer
topic write sensors/+/temp

user both
topic readwrite home/#
topic deny home/private/#
topic write public/#

user root
topic readwrite #
`

// interopTopics are published by every client; none starts with $, which Mosquitto
// reserves for itself whatever the ACL says.
var interopTopics = []string{
	"public/news", "public/anon/in",
	"sensors/a/temp", "sensors/a/humidity",
	"home/kitchen", "home/private/diary",
	"devices/dev1/status", "devices/dev1/secret", "devices/dev2/status", "devices/a/b/status",
	"users/reader/inbox", "users/both/inbox", "users/writer/inbox",
	"other",
}

// interopClients connect with these ids and usernames ("" is anonymous).
var interopClients = []struct{ id, user string }{
	{"anon-sub", ""},
	{"dev1", ""},
	{"a/b", ""},
	{"reader-sub", "reader"},
	{"dev2", "reader"},
	{"writer-sub", "writer"},
	{"both-sub", "both"},
	{"stranger-sub", "stranger"}, // in the password file, not in the ACL
}

// TestACLAgreesWithMosquitto runs the real broker with interopACL and checks that
// every client receives exactly the messages CanRead allows and can publish exactly
// where CanPublish allows: users keep their ACL file and get the same behaviour.
func TestACLAgreesWithMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real mosquitto broker and many clients")
	}
	authtest.Tool(t, "mosquitto")
	authtest.Tool(t, "mosquitto_pub")
	authtest.Tool(t, "mosquitto_sub")
	acl := parseTestACL(t, interopACL)
	dir := t.TempDir()
	aclFile := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclFile, []byte(interopACL), 0o600); err != nil {
		t.Fatal(err)
	}
	var pw strings.Builder
	for _, u := range []string{"reader", "writer", "both", "stranger", "root"} {
		pw.WriteString(passwdLine(t, u, u+"-pw"))
	}
	pwFile := filepath.Join(dir, "passwd")
	if err := os.WriteFile(pwFile, []byte(pw.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	broker := authtest.StartBroker(t, authtest.BrokerConfig{PasswordFile: pwFile, ACLFile: aclFile, AllowAnonymous: true})
	publish := func(id, user, topic string) {
		t.Helper()
		if code, out := broker.PublishTopic(t, id, user, user+"-pw", topic); code != 0 {
			t.Fatalf("mosquitto_pub -i %s -u %q -t %s: exit %d: %s", id, user, topic, code, out)
		}
	}

	t.Run("read", func(t *testing.T) {
		subs := make([]*authtest.Subscriber, len(interopClients))
		for i, c := range interopClients {
			// Mosquitto grants every SUBSCRIBE and filters each delivery.
			subs[i] = broker.Subscribe(t, c.id, c.user, c.user+"-pw", "#")
		}
		for _, topic := range interopTopics {
			publish("root-pub", "root", topic)
		}
		for i, c := range interopClients {
			publish("root-pub", "root", "sync/"+c.id)
			var got, want []string
			for _, m := range subs[i].MessagesUntil(t, "sync/"+c.id) {
				got = append(got, m.Topic)
			}
			for _, topic := range interopTopics {
				if acl.CanRead(c.id, c.user, c.user == "", topic) {
					want = append(want, topic)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("client %q user %q: mosquitto delivered %q, CanRead allows %q", c.id, c.user, got, want)
			}
		}
	})

	t.Run("publish", func(t *testing.T) {
		root := broker.Subscribe(t, "root-sub", "root", "root-pw", "#")
		var want []string
		for _, c := range interopClients {
			for _, topic := range interopTopics {
				publish(c.id, c.user, topic)
				if acl.CanPublish(c.id, c.user, c.user == "", topic) {
					want = append(want, topic+" from "+c.id)
				}
			}
		}
		publish("root-pub", "root", "sync/root-sub")
		var got []string
		for _, m := range root.MessagesUntil(t, "sync/root-sub") {
			got = append(got, m.Topic+" from "+m.Payload)
		}
		if !slices.Equal(got, want) {
			t.Errorf("mosquitto accepted publishes\n%q\nCanPublish allows\n%q", got, want)
		}
	})
}
