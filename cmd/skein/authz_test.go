package main

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skein-mq/skein/node/auth/authtest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// These tests run skein serve with a password file written by the real
// mosquitto_passwd, an ACL file, the connection limits, and a mosquitto.conf.
//
// Failed logins are throttled per source address (5 per 10 s), and every test
// connects from 127.0.0.1: the cases that fail a login on purpose connect from an
// address of their own in 127.0.0.0/8 (authzSource), which Linux routes to lo.

// authzUsers are the accounts of authzPasswordFile, with their passwords.
var authzUsers = map[string]string{"alice": "apass", "reader": "rpass", "writer": "w pass:with colon", "bob": "bpass"}

// authzPasswordFile writes the password file with the real mosquitto_passwd (bob
// with the older sha512 hash), skipping the test when it is not installed.
func authzPasswordFile(t *testing.T) string {
	t.Helper()
	authtest.Tool(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "passwd")
	args := [][]string{
		{"-c", "-b", file, "alice", authzUsers["alice"]},
		{"-b", file, "reader", authzUsers["reader"]},
		{"-b", file, "writer", authzUsers["writer"]},
		{"-H", "sha512", "-b", file, "bob", authzUsers["bob"]},
	}
	for _, a := range args {
		if code, out := authtest.Run(t, "mosquitto_passwd", a...); code != 0 {
			t.Fatalf("mosquitto_passwd %q: exit %d: %s", a, code, out)
		}
	}
	return file
}

// authzACL is the ACL file of these tests: read-only and write-only users, %c and
// %u patterns, and a deny rule inside a granted subtree.
const authzACL = `# skein test ACL
user reader
topic read data/#
topic read other/#

user writer
topic write data/#
topic write users/#
topic write partial/#
topic write other/#

user alice
topic readwrite partial/a/#
topic deny partial/a/secret
topic readwrite watch/#

pattern readwrite clients/%c/#
pattern read users/%u/#
`

func authzWrite(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var authzLastIP atomic.Int32

// authzSource returns a loopback source address not used before in this run, so
// that its failed logins count apart from every other connection's.
func authzSource() *net.TCPAddr {
	n := authzLastIP.Add(1)
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+n/250), byte(2+n%250))}
}

// authzDial opens a TCP connection to addr from src (nil: any).
func authzDial(t *testing.T, addr string, src *net.TCPAddr, v proto.Version) *tlsMQTT {
	t.Helper()
	d := net.Dialer{Timeout: nodetest.Timeout}
	if src != nil {
		d.LocalAddr = src
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %v: %v", addr, src, err)
	}
	return tlsWrap(t, nc, v)
}

// authzLogin connects as user with password (user "" sends no username) from src
// and returns the CONNACK's code; a refused connection must then be closed.
func authzLogin(t *testing.T, addr string, src *net.TCPAddr, v proto.Version, user, password string) (*tlsMQTT, proto.ReasonCode) {
	t.Helper()
	c := authzDial(t, addr, src, v)
	cp := &proto.Connect{ClientID: fmt.Sprintf("login-%s-%d", user, authzLastIP.Load()), CleanStart: true, KeepAlive: 60}
	if user != "" {
		cp.UsernameSet, cp.Username = true, user
		cp.PasswordSet, cp.Password = true, []byte(password)
	}
	ack := c.connect(cp)
	if ack.ReasonCode != proto.Success {
		if got := c.expectClosed(); len(got) != 0 {
			t.Fatalf("after CONNACK %v the broker sent %v", ack.ReasonCode, got)
		}
	}
	return c, ack.ReasonCode
}

// authzUser connects as a user of authzUsers from 127.0.0.1, which must succeed.
func authzUser(t *testing.T, addr string, v proto.Version, user, clientID string) *tlsMQTT {
	t.Helper()
	c := authzDial(t, addr, nil, v)
	ack := c.connect(&proto.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 60,
		UsernameSet: true, Username: user, PasswordSet: true, Password: []byte(authzUsers[user])})
	if ack.ReasonCode != proto.Success {
		t.Fatalf("CONNECT as %s refused: %v", user, ack.ReasonCode)
	}
	return c
}

func TestAuthzLogin(t *testing.T) {
	passwd := authzPasswordFile(t)
	acl := authzWrite(t, "acl", authzACL)
	addr, _ := startBrokerProc(t, "--sys-interval", "0", "--allow-anonymous=false", "--password-file", passwd, "--acl-file", acl)

	watch := authzUser(t, addr, proto.V5, "alice", "login-watch")
	watch.subscribe(1, 1, "watch/#")
	var watched int
	stillWatching := func(t *testing.T) {
		t.Helper()
		watched++
		payload := fmt.Sprintf("still here %d", watched)
		pub := authzUser(t, addr, proto.V311, "alice", "login-watch-pub")
		pub.publish(1, 1, "watch/t", payload)
		pub.send(&proto.Disconnect{})
		watch.expectPublish("watch/t", payload)
	}

	cases := []struct {
		name     string
		v        proto.Version
		user     string // "" for no username
		password string
		noPass   bool // send the username without a password
		want     proto.ReasonCode
	}{
		{name: "right password 5.0", v: proto.V5, user: "alice", password: "apass", want: proto.Success},
		{name: "right password 3.1.1", v: proto.V311, user: "reader", password: "rpass", want: proto.Success},
		{name: "right password 3.1", v: proto.V31, user: "writer", password: "w pass:with colon", want: proto.Success},
		{name: "sha512 hash", v: proto.V311, user: "bob", password: "bpass", want: proto.Success},
		{name: "wrong password 5.0", v: proto.V5, user: "alice", password: "apass!", want: proto.BadUserNameOrPassword},
		{name: "wrong password 3.1.1", v: proto.V311, user: "alice", password: "Apass", want: proto.ConnRefusedBadUsernamePasswd},
		{name: "empty password", v: proto.V311, user: "alice", password: "", want: proto.ConnRefusedBadUsernamePasswd},
		{name: "unknown user 5.0", v: proto.V5, user: "mallory", password: "apass", want: proto.BadUserNameOrPassword},
		{name: "unknown user 3.1.1", v: proto.V311, user: "mallory", password: "apass", want: proto.ConnRefusedBadUsernamePasswd},
		{name: "no password 5.0", v: proto.V5, user: "alice", noPass: true, want: proto.BadUserNameOrPassword},
		{name: "no username 5.0", v: proto.V5, want: proto.NotAuthorized},
		{name: "no username 3.1.1", v: proto.V311, want: proto.ConnRefusedNotAuthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := authzDial(t, addr, authzSource(), c.v)
			cp := &proto.Connect{ClientID: "login-case", CleanStart: true, KeepAlive: 60}
			if c.user != "" {
				cp.UsernameSet, cp.Username = true, c.user
				cp.PasswordSet, cp.Password = !c.noPass, []byte(c.password)
			}
			ack := cl.connect(cp)
			if ack.ReasonCode != c.want {
				t.Fatalf("CONNACK %v (0x%02x), want 0x%02x", ack.ReasonCode, byte(ack.ReasonCode), byte(c.want))
			}
			if c.want == proto.Success {
				cl.ping()
			} else if got := cl.expectClosed(); len(got) != 0 {
				t.Fatalf("after the refusal the broker sent %v", got)
			}
			stillWatching(t)
		})
	}

	t.Run("mosquitto_pub", func(t *testing.T) {
		needMosquitto(t)
		src := authzSource().IP.String()
		if code, p := tlsMosq(t, "mosquitto_pub", addr, "-A", src, "-u", "alice", "-P", "apass", "-q", "1", "-t", "watch/t", "-m", "mosq"); code != 0 {
			t.Fatalf("mosquitto_pub with the right password exited with %d\n%s", code, p.output())
		}
		watch.expectPublish("watch/t", "mosq")
		code, p := tlsMosq(t, "mosquitto_pub", addr, "-A", src, "-u", "alice", "-P", "nope", "-t", "watch/t", "-m", "x")
		if code != 4 || !strings.Contains(p.stderr.String(), "Connection Refused: bad user name or password.") {
			t.Fatalf("mosquitto_pub with a wrong password: exit %d, want 4 and the refusal\n%s", code, p.output())
		}
		stillWatching(t)
	})

	t.Run("failed logins rate limited per address", func(t *testing.T) {
		limited, other := authzSource(), authzSource()
		for i := 1; i <= 5; i++ {
			if _, code := authzLogin(t, addr, limited, proto.V5, "alice", "wrong"); code != proto.BadUserNameOrPassword {
				t.Fatalf("failure %d: CONNACK %v, want bad user name or password", i, code)
			}
		}
		// The sixth attempt is refused before the password is checked, even a right one.
		if _, code := authzLogin(t, addr, limited, proto.V5, "alice", "apass"); code != proto.ConnectionRateExceeded {
			t.Fatalf("sixth login within the window: CONNACK %v, want 0x9F connection rate exceeded", code)
		}
		if _, code := authzLogin(t, addr, limited, proto.V311, "alice", "apass"); code != proto.ConnRefusedServerUnavailable {
			t.Fatalf("3.1.1 login within the window: CONNACK %v, want 3 server unavailable", code)
		}
		// Another address is not affected, nor are the connected clients.
		if c, code := authzLogin(t, addr, other, proto.V5, "alice", "apass"); code != proto.Success {
			t.Fatalf("login from another address: CONNACK %v, want success", code)
		} else {
			c.ping()
		}
		stillWatching(t)
	})

	t.Run("a successful login forgets earlier failures", func(t *testing.T) {
		src := authzSource()
		for round := range 3 {
			for i := 1; i <= 4; i++ {
				if _, code := authzLogin(t, addr, src, proto.V5, "bob", "wrong"); code != proto.BadUserNameOrPassword {
					t.Fatalf("round %d failure %d: CONNACK %v", round, i, code)
				}
			}
			if _, code := authzLogin(t, addr, src, proto.V5, "bob", "bpass"); code != proto.Success {
				t.Fatalf("round %d: login after 4 failures: CONNACK %v, want success", round, code)
			}
		}
	})
}

func TestAuthzACL(t *testing.T) {
	passwd := authzPasswordFile(t)
	acl := authzWrite(t, "acl", authzACL)
	addr, _ := startBrokerProc(t, "--sys-interval", "0", "--allow-anonymous=false", "--password-file", passwd, "--acl-file", acl)

	reader := authzUser(t, addr, proto.V5, "reader", "reader-1")
	if codes := reader.subscribe(1, 1, "data/#", "users/reader/#"); !authzCodes(codes, proto.GrantedQoS1, proto.GrantedQoS1) {
		t.Fatalf("reader SUBACK %v, want both granted", codes)
	}
	writer := authzUser(t, addr, proto.V5, "writer", "writer-1")

	t.Run("read-only user", func(t *testing.T) {
		if code := reader.publish(1, 2, "data/from-reader", "x"); code != proto.NotAuthorized {
			t.Fatalf("reader publishing: PUBACK %v, want 0x87 not authorized", code)
		}
		r311 := authzUser(t, addr, proto.V311, "reader", "reader-311")
		// 3.1.1 cannot say no: the message is acknowledged and dropped.
		if code := r311.publish(1, 1, "data/from-reader-311", "x"); code != proto.Success {
			t.Fatalf("3.1.1 reader publishing: PUBACK %v, want 0", code)
		}
		if code := writer.publish(1, 1, "data/w", "from writer"); code != proto.Success {
			t.Fatalf("writer publishing: PUBACK %v, want 0", code)
		}
		// The reader's own messages were not delivered: the writer's comes first.
		reader.expectPublish("data/w", "from writer")
	})

	t.Run("write-only user", func(t *testing.T) {
		if codes := writer.subscribe(2, 1, "data/#"); !authzCodes(codes, proto.NotAuthorized) {
			t.Fatalf("writer SUBACK %v, want 0x87", codes)
		}
		w311 := authzUser(t, addr, proto.V311, "writer", "writer-311")
		if codes := w311.subscribe(1, 1, "data/#", "data/x"); !authzCodes(codes, proto.UnspecifiedError, proto.UnspecifiedError) {
			t.Fatalf("3.1.1 writer SUBACK %v, want 0x80 0x80", codes)
		}
	})

	t.Run("client id pattern", func(t *testing.T) {
		c := authzUser(t, addr, proto.V5, "alice", "c1")
		if codes := c.subscribe(1, 1, "clients/c1/#", "clients/c2/#", "clients/+/x"); !authzCodes(codes, proto.GrantedQoS1, proto.NotAuthorized, proto.NotAuthorized) {
			t.Fatalf("SUBACK %v, want granted, 0x87, 0x87", codes)
		}
		if code := c.publish(1, 2, "clients/c2/x", "not mine"); code != proto.NotAuthorized {
			t.Fatalf("publishing under another client id: PUBACK %v, want 0x87", code)
		}
		if code := c.publish(1, 3, "clients/c1/x", "mine"); code != proto.Success {
			t.Fatalf("publishing under its own client id: PUBACK %v, want 0", code)
		}
		c.expectPublish("clients/c1/x", "mine")
		// The same user with another client id gets that id's subtree.
		c2 := authzUser(t, addr, proto.V5, "alice", "c2")
		if codes := c2.subscribe(1, 0, "clients/c2/#", "clients/c1/#"); !authzCodes(codes, proto.Success, proto.NotAuthorized) {
			t.Fatalf("c2 SUBACK %v", codes)
		}
	})

	t.Run("username pattern", func(t *testing.T) {
		if codes := reader.subscribe(3, 1, "users/writer/#"); !authzCodes(codes, proto.NotAuthorized) {
			t.Fatalf("SUBACK %v for another user's subtree, want 0x87", codes)
		}
		writer.publish(1, 4, "users/writer/x", "not for reader")
		writer.publish(1, 5, "users/reader/x", "for reader")
		reader.expectPublish("users/reader/x", "for reader")
	})

	t.Run("wildcard subscription partly allowed", func(t *testing.T) {
		c := authzUser(t, addr, proto.V5, "alice", "partial")
		codes := c.subscribe(1, 1, "partial/a/+", "partial/#", "partial/+/open", "partial/a/secret")
		if !authzCodes(codes, proto.GrantedQoS1, proto.NotAuthorized, proto.NotAuthorized, proto.NotAuthorized) {
			t.Fatalf("SUBACK %v, want partial/a/+ granted and the rest refused", codes)
		}
		if code := c.publish(1, 2, "partial/a/secret", "x"); code != proto.NotAuthorized {
			t.Fatalf("publishing to the denied topic: PUBACK %v, want 0x87", code)
		}
		// partial/a/+ matches partial/a/secret, which alice may not read.
		writer.publish(1, 6, "partial/a/secret", "hidden")
		writer.publish(1, 7, "partial/b/open", "outside the filter")
		writer.publish(1, 8, "partial/a/open", "visible")
		c.expectPublish("partial/a/open", "visible")
	})

	t.Run("mosquitto_sub refused and allowed", func(t *testing.T) {
		needMosquitto(t)
		// mosquitto_sub (2.0.11) disconnects and exits 0 when every filter is refused.
		code, p := tlsMosq(t, "mosquitto_sub", addr, "-u", "writer", "-P", authzUsers["writer"], "-t", "data/#", "-W", "5")
		if code != 0 || !strings.Contains(p.stderr.String(), "All subscription requests were denied.") {
			t.Fatalf("mosquitto_sub as the write-only user: exit %d, want 0 and the denial\n%s", code, p.output())
		}
		sub := mosqSub(t, addr, "-u", "reader", "-P", authzUsers["reader"], "-v", "-C", "1", "-W", "10", "-t", "other/#")
		eventually(t, "mosquitto_sub to get the message", func() bool {
			writer.publish(0, 0, "other/t", "hello")
			time.Sleep(20 * time.Millisecond)
			return sub.exited()
		})
		wantOutput(t, "mosquitto_sub as reader", sub.finish(t), lines("other/t hello"))
	})
}

func authzCodes(got []proto.ReasonCode, want ...proto.ReasonCode) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// TestAuthzReload checks that SIGHUP reloads the password and ACL files: new users
// log in, removed users do not, ACL changes apply to existing subscriptions, and a
// broken file keeps the previous ones. No connection is dropped.
func TestAuthzReload(t *testing.T) {
	passwd := authzPasswordFile(t)
	acl := authzWrite(t, "acl", authzACL)
	addr, p := startBrokerProc(t, "--sys-interval", "0", "--allow-anonymous=false", "--password-file", passwd, "--acl-file", acl)
	hup := func(logLine string) {
		t.Helper()
		before := strings.Count(p.stderr.String(), logLine)
		p.signal(t, syscall.SIGHUP)
		eventually(t, "skein to log "+logLine, func() bool { return strings.Count(p.stderr.String(), logLine) > before })
	}

	reader := authzUser(t, addr, proto.V5, "reader", "reload-reader")
	reader.subscribe(1, 1, "data/#", "other/#")
	writer := authzUser(t, addr, proto.V5, "writer", "reload-writer")
	writer.publish(1, 1, "data/x", "before")
	reader.expectPublish("data/x", "before")
	if _, code := authzLogin(t, addr, authzSource(), proto.V5, "dave", "dpass"); code != proto.BadUserNameOrPassword {
		t.Fatalf("dave before being added: CONNACK %v", code)
	}

	// mosquitto_passwd adds dave and deletes bob; the reader loses data/#.
	for _, args := range [][]string{{"-b", passwd, "dave", "dpass"}, {"-D", passwd, "bob"}} {
		if code, out := authtest.Run(t, "mosquitto_passwd", args...); code != 0 {
			t.Fatalf("mosquitto_passwd %q: exit %d: %s", args, code, out)
		}
	}
	if err := os.WriteFile(acl, []byte(strings.Replace(authzACL, "topic read data/#\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("reloaded password and ACL files")

	if c, code := authzLogin(t, addr, authzSource(), proto.V5, "dave", "dpass"); code != proto.Success {
		t.Fatalf("dave after SIGHUP: CONNACK %v, want success", code)
	} else {
		c.ping()
	}
	if _, code := authzLogin(t, addr, authzSource(), proto.V311, "bob", "bpass"); code != proto.ConnRefusedBadUsernamePasswd {
		t.Fatalf("bob after being deleted: CONNACK %v, want 4", code)
	}
	// The reader's subscription stays but no longer delivers data/x: other/x, sent
	// after it, is the next message.
	writer.publish(1, 2, "data/x", "after")
	writer.publish(1, 3, "other/x", "after")
	reader.expectPublish("other/x", "after")
	if codes := reader.subscribe(2, 1, "data/#"); !authzCodes(codes, proto.NotAuthorized) {
		t.Fatalf("new subscription to data/# after the reload: SUBACK %v, want 0x87", codes)
	}

	// A broken ACL file: the reload fails and the files loaded last stay.
	if err := os.WriteFile(acl, []byte("user reader\ntopic read data/#\nbogus line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("reload password and ACL files: keeping the previous ones")
	writer.publish(1, 4, "data/x", "after broken")
	writer.publish(1, 5, "other/x", "after broken")
	reader.expectPublish("other/x", "after broken")
	if c, code := authzLogin(t, addr, authzSource(), proto.V5, "dave", "dpass"); code != proto.Success {
		t.Fatalf("dave after a failed reload: CONNACK %v, want success", code)
	} else {
		c.ping()
	}
}

// TestAuthzMaxConnections checks --max-connections: a socket past the limit is
// closed at once without a CONNACK, and a freed slot is usable again.
func TestAuthzMaxConnections(t *testing.T) {
	addr, p := startBrokerProc(t, "--sys-interval", "0", "--max-connections", "2")
	try := func(id string) (*tlsMQTT, bool) {
		t.Helper()
		c := authzDial(t, addr, nil, proto.V311)
		c.send(&proto.Connect{Version: proto.V311, ClientID: id, CleanStart: true, KeepAlive: 60})
		pkt, err := c.recvWithin(nodetest.Timeout)
		if err != nil {
			return nil, false
		}
		if ack, ok := pkt.(*proto.Connack); !ok || ack.ReasonCode != proto.Success {
			t.Fatalf("%s got %s, want CONNACK 0 or a closed connection", id, tlsDescribe(pkt))
		}
		return c, true
	}
	var c1, c2 *tlsMQTT
	// The start-up probe may still hold a slot for a moment.
	eventually(t, "a first connection", func() bool { var ok bool; c1, ok = try("max-1"); return ok })
	eventually(t, "a second connection", func() bool { var ok bool; c2, ok = try("max-2"); return ok })
	for i := range 3 {
		if _, ok := try(fmt.Sprintf("max-over-%d", i)); ok {
			t.Fatalf("connection %d past --max-connections 2 accepted", 3+i)
		}
	}
	c1.ping()
	c2.ping()
	c1.send(&proto.Disconnect{})
	c1.expectClosed()
	eventually(t, "the freed slot to be usable", func() bool { _, ok := try("max-3"); return ok })
	c2.ping()
	if !strings.Contains(p.stderr.String(), "connection refused: max connections reached") {
		t.Errorf("refusals not logged:\n%s", p.stderr.String())
	}
}

// TestAuthzLimits checks --max-keepalive and --max-packet-size.
func TestAuthzLimits(t *testing.T) {
	addr, _ := startBrokerProc(t, "--sys-interval", "0", "--max-keepalive", "30", "--max-packet-size", "1024")
	watch := nodetest.Connect(t, addr, proto.V5, "limits-watch")
	watch.Subscribe(1, 1, "limits/#")
	var watched int
	stillWatching := func(t *testing.T) {
		t.Helper()
		watched++
		payload := fmt.Sprintf("still here %d", watched)
		pub := nodetest.Connect(t, addr, proto.V5, "limits-pub") // told keepalive 30
		pub.Publish(&proto.Publish{QoS: 1, PacketID: 1, Topic: "limits/t", Payload: []byte(payload)})
		pub.Disconnect()
		watch.ExpectPublish("limits/t", payload)
	}

	keepalive := []struct {
		v         proto.Version
		keepAlive uint16
		want      proto.ReasonCode
		server    uint16 // Server Keep Alive in a 5.0 CONNACK; 0 for none
	}{
		{proto.V311, 60, proto.ConnRefusedIdentifierRejected, 0},
		{proto.V311, 0, proto.ConnRefusedIdentifierRejected, 0},
		{proto.V31, 31, proto.ConnRefusedIdentifierRejected, 0},
		{proto.V311, 30, proto.Success, 0},
		{proto.V5, 60, proto.Success, 30},
		{proto.V5, 0, proto.Success, 30},
		{proto.V5, 10, proto.Success, 0},
	}
	for _, k := range keepalive {
		t.Run(fmt.Sprintf("keepalive %d %s", k.keepAlive, k.v), func(t *testing.T) {
			c := authzDial(t, addr, nil, k.v)
			ack := c.connect(&proto.Connect{ClientID: "ka", CleanStart: true, KeepAlive: k.keepAlive})
			if ack.ReasonCode != k.want {
				t.Fatalf("CONNACK %v, want %v", ack.ReasonCode, k.want)
			}
			has := ack.Props.Has(proto.PropServerKeepAlive)
			if (k.server != 0) != has || has && ack.Props.ServerKeepAlive != k.server {
				t.Fatalf("Server Keep Alive present %v value %d, want %d", has, ack.Props.ServerKeepAlive, k.server)
			}
			if k.want != proto.Success {
				c.expectClosed()
			}
		})
	}

	t.Run("max packet size announced", func(t *testing.T) {
		c := authzDial(t, addr, nil, proto.V5)
		ack := c.connect(&proto.Connect{ClientID: "mps", CleanStart: true, KeepAlive: 10})
		if !ack.Props.Has(proto.PropMaximumPacketSize) || ack.Props.MaximumPacketSize != 1024 {
			t.Fatalf("CONNACK Maximum Packet Size %d (present %v), want 1024", ack.Props.MaximumPacketSize, ack.Props.Has(proto.PropMaximumPacketSize))
		}
		if code := c.publish(1, 1, "limits/fits", strings.Repeat("x", 900)); code != proto.Success {
			t.Fatalf("900-byte payload: PUBACK %v", code)
		}
		watch.ExpectPublish("limits/fits", strings.Repeat("x", 900))
	})
	for _, v := range []proto.Version{proto.V5, proto.V311} {
		t.Run("packet too large "+v.String(), func(t *testing.T) {
			c := authzDial(t, addr, nil, v)
			c.connect(&proto.Connect{ClientID: "too-large", CleanStart: true, KeepAlive: 10})
			c.send(&proto.Publish{QoS: 1, PacketID: 1, Topic: "limits/big", Payload: make([]byte, 2000)})
			got := c.expectClosed()
			if v == proto.V5 {
				if len(got) != 1 {
					t.Fatalf("got %v, want one DISCONNECT 0x95", got)
				}
				if d, ok := got[0].(*proto.Disconnect); !ok || d.ReasonCode != proto.PacketTooLarge {
					t.Fatalf("got %s, want DISCONNECT 0x95", tlsDescribe(got[0]))
				}
			} else if len(got) != 0 {
				t.Fatalf("3.1.1 client got %v before the close, want nothing", got)
			}
			stillWatching(t)
		})
	}
}

// authzConf is a mosquitto.conf of these tests; {PLAIN}, {TLS}, {WS}, {USER},
// {PASSWD}, {ACL}, {CA}, {CERT} and {KEY} are replaced.
func authzConf(t *testing.T, text string, vars map[string]string) string {
	t.Helper()
	for k, v := range vars {
		text = strings.ReplaceAll(text, "{"+k+"}", v)
	}
	return authzWrite(t, "mosquitto.conf", text)
}

// authzPort returns the port of a free loopback address.
func authzPort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// authzServeConf runs `skein serve -c conf` and waits until plainAddr serves.
func authzServeConf(t *testing.T, conf, plainAddr string) *proc {
	t.Helper()
	// Only --http-addr, --data-dir and --sys-interval are given: a listener flag on the
	// command line would win over the file's listeners.
	p := startProc(t, 5*time.Minute, t.TempDir(), "", skeinBinary(t), "serve", "-c", conf,
		"--data-dir", t.TempDir(), "--http-addr=", "--sys-interval", "0")
	waitListening(t, p, plainAddr)
	t.Cleanup(func() {
		if !p.stopped {
			stopServe(t, p)
		}
	})
	return p
}

func authzConfVars(t *testing.T, pki *tlsPKI) map[string]string {
	t.Helper()
	me := "root"
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	return map[string]string{
		"PLAIN": authzPort(t), "TLS": authzPort(t), "WS": authzPort(t), "USER": me,
		"PASSWD": authzPasswordFile(t), "ACL": authzWrite(t, "acl", authzACL),
		"CA": pki.CAFile, "CERT": pki.ServerCert, "KEY": pki.ServerKey,
	}
}

// TestAuthzMosquittoConf runs `skein serve -c mosquitto.conf` with three listeners
// (MQTT, MQTT over TLS with client certificates, WebSocket), authentication, an ACL,
// and options skein ignores with a warning.
func TestAuthzMosquittoConf(t *testing.T) {
	pki := tlsNewPKI(t)
	vars := authzConfVars(t, pki)
	conf := authzConf(t, `# a Mosquitto configuration
user {USER}
per_listener_settings false
allow_anonymous false
password_file {PASSWD}
acl_file {ACL}
max_keepalive 120
autosave_interval 1800

listener {PLAIN} 127.0.0.1

listener {TLS} 127.0.0.1
cafile {CA}
certfile {CERT}
keyfile {KEY}
require_certificate true

listener {WS} 127.0.0.1
protocol websockets
`, vars)
	plain := "127.0.0.1:" + vars["PLAIN"]
	secure := "127.0.0.1:" + vars["TLS"]
	p := authzServeConf(t, conf, plain)

	t.Run("warnings for ignored options", func(t *testing.T) {
		stderr := p.stderr.String()
		for _, w := range []string{
			"skein: warning: " + conf + " line 2: option user is not supported by skein and is ignored",
			"skein: warning: " + conf + " line 3: option per_listener_settings is not supported by skein and is ignored",
			"skein: warning: " + conf + " line 8: option autosave_interval is not supported by skein and is ignored",
		} {
			if !strings.Contains(stderr, w+"\n") {
				t.Errorf("stderr lacks %q:\n%s", w, stderr)
			}
		}
		if n := strings.Count(stderr, "skein: warning:"); n != 3 {
			t.Errorf("%d warnings, want 3:\n%s", n, stderr)
		}
	})

	t.Run("mqtt listener with password file and acl", func(t *testing.T) {
		if _, code := authzLogin(t, plain, authzSource(), proto.V5, "", ""); code != proto.NotAuthorized {
			t.Fatalf("anonymous: CONNACK %v, want 0x87 (allow_anonymous false)", code)
		}
		if _, code := authzLogin(t, plain, authzSource(), proto.V5, "alice", "wrong"); code != proto.BadUserNameOrPassword {
			t.Fatalf("wrong password: CONNACK %v, want 0x86", code)
		}
		c := authzUser(t, plain, proto.V5, "reader", "conf-reader")
		if codes := c.subscribe(1, 1, "data/#", "partial/#"); !authzCodes(codes, proto.GrantedQoS1, proto.NotAuthorized) {
			t.Fatalf("SUBACK %v, want the ACL file applied", codes)
		}
	})

	t.Run("tls listener requires a certificate", func(t *testing.T) {
		nc, err := tlsDial(secure, pki.ClientConfig(t, pki.Client(t, "valid", "carol")))
		if err != nil {
			t.Fatal(err)
		}
		c := tlsWrap(t, nc, proto.V5)
		ack := c.connect(&proto.Connect{ClientID: "conf-tls", CleanStart: true, KeepAlive: 60,
			UsernameSet: true, Username: "alice", PasswordSet: true, Password: []byte("apass")})
		if ack.ReasonCode != proto.Success {
			t.Fatalf("CONNACK %v over TLS with a certificate and a password", ack.ReasonCode)
		}
		if err := tlsRefused(t, secure, pki.ClientConfig(t, tlsPair{})); !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("without a client certificate: %v, want the handshake refused (require_certificate true)", err)
		}
	})

	t.Run("websocket listener", func(t *testing.T) {
		c, _ := wsMQTT(t, "ws://127.0.0.1:"+vars["WS"]+"/mqtt", wsClient(t, nil), proto.V311, "mqtt")
		ack := c.connect(&proto.Connect{ClientID: "conf-ws", CleanStart: true, KeepAlive: 60,
			UsernameSet: true, Username: "alice", PasswordSet: true, Password: []byte("apass")})
		if ack.ReasonCode != proto.Success {
			t.Fatalf("CONNACK %v over WebSocket", ack.ReasonCode)
		}
	})

	t.Run("max_keepalive", func(t *testing.T) {
		c := authzDial(t, plain, nil, proto.V5)
		ack := c.connect(&proto.Connect{ClientID: "conf-ka", CleanStart: true, KeepAlive: 600,
			UsernameSet: true, Username: "alice", PasswordSet: true, Password: []byte("apass")})
		if ack.ReasonCode != proto.Success || ack.Props.ServerKeepAlive != 120 {
			t.Fatalf("CONNACK %v with Server Keep Alive %d, want success and 120", ack.ReasonCode, ack.Props.ServerKeepAlive)
		}
	})
}

// TestAuthzMosquittoConfIdentity runs a mosquitto.conf where only the TLS listener
// takes the certificate's CN as the username (use_identity_as_username is a
// per-listener option in Mosquitto): clients of the plain listener still log in with
// their password. The real mosquitto is run on the same file first, to show that
// this is what Mosquitto does.
func TestAuthzMosquittoConfIdentity(t *testing.T) {
	pki := tlsNewPKI(t)
	vars := authzConfVars(t, pki)
	conf := authzConf(t, `user {USER}
allow_anonymous false
password_file {PASSWD}
acl_file {ACL}
listener {PLAIN} 127.0.0.1
listener {TLS} 127.0.0.1
cafile {CA}
certfile {CERT}
keyfile {KEY}
require_certificate true
use_identity_as_username true
`, vars)
	plain := "127.0.0.1:" + vars["PLAIN"]
	secure := "127.0.0.1:" + vars["TLS"]
	alice := pki.Client(t, "valid", "alice")
	check := func(t *testing.T) {
		t.Helper()
		nc, err := tlsDial(secure, pki.ClientConfig(t, alice))
		if err != nil {
			t.Fatal(err)
		}
		c := tlsWrap(t, nc, proto.V311)
		if ack := c.connect(&proto.Connect{ClientID: "conf-identity", CleanStart: true, KeepAlive: 60}); ack.ReasonCode != proto.Success {
			t.Errorf("TLS listener, certificate CN alice, no username: CONNACK %v, want 0", ack.ReasonCode)
		} else if codes := c.subscribe(1, 1, "partial/a/+"); !authzCodes(codes, proto.GrantedQoS1) {
			t.Errorf("TLS listener: SUBACK %v, want the ACL of alice", codes)
		}
		c2 := authzDial(t, plain, nil, proto.V311)
		ack := c2.connect(&proto.Connect{ClientID: "conf-password", CleanStart: true, KeepAlive: 60,
			UsernameSet: true, Username: "alice", PasswordSet: true, Password: []byte("apass")})
		if ack.ReasonCode != proto.Success {
			t.Errorf("plain listener, alice with her password: CONNACK %v, want 0: use_identity_as_username belongs to the TLS listener", ack.ReasonCode)
		}
	}

	t.Run("mosquitto", func(t *testing.T) {
		bin := authtest.Tool(t, "mosquitto")
		p := startProc(t, time.Minute, t.TempDir(), "", bin, "-c", conf)
		eventually(t, "mosquitto to listen", func() bool {
			if p.exited() {
				t.Fatalf("mosquitto exited\n%s", p.output())
			}
			c, err := net.DialTimeout("tcp", secure, time.Second)
			if err != nil {
				return false
			}
			c.Close()
			return true
		})
		check(t)
		p.signal(t, syscall.SIGTERM)
		p.wait(t, waitTimeout)
	})
	t.Run("skein", func(t *testing.T) {
		authzServeConf(t, conf, plain)
		check(t)
	})
}
