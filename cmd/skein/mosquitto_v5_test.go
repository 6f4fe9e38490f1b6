package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/proto/client"
)

// MQTT 5.0 features through mosquitto_pub -V mqttv5 -D ..., mosquitto_sub -V mqttv5
// and mosquitto_rr against skein serve. TestMosquittoV5Properties (mosquitto_test.go)
// and the compat tests cover the PUBLISH properties, -x and subscription
// identifiers already.
//
// mosquitto_sub 2.0.11 cannot take topic aliases from a broker (libmosquitto 2.0.11
// has no receiving side for them: "-D connect topic-alias-maximum" makes it fail
// with a protocol error on the first aliased PUBLISH), so that direction is tested
// in package node with paho.golang.

// mosqV5Run runs a mosquitto tool to completion and returns stdout and stderr,
// failing the test unless it exits 0.
func mosqV5Run(t *testing.T, addr, stdin, tool string, args ...string) (stdout, stderr string) {
	t.Helper()
	p := mosq(t, addr, stdin, tool, args...)
	if code := p.wait(t, waitTimeout); code != 0 {
		t.Fatalf("%s %q exited with %d\n%s", tool, args, code, p.output())
	}
	return p.stdout.String(), p.stderr.String()
}

// mosqV5Quiet fails the test if p prints s within d.
func mosqV5Quiet(t *testing.T, p *proc, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(p.stdout.String(), s) {
			t.Fatalf("%s printed %q:\n%s", p.name, s, p.stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMosquittoV5TopicAlias: mosquitto_pub sends the topic with alias 1 once, then
// the alias alone; 5.0 and 3.1.1 subscribers get the full topic every time.
func TestMosquittoV5TopicAlias(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	addr := startBroker(t)
	mk := marker(t, addr)
	var subs []*proc
	for _, v := range []string{"mqttv5", "mqttv311"} {
		s := mosqSub(t, addr, "-V", v, "-q", "1", "-v", "-C", "4", "-W", "10", "-t", "alias/#", "-t", mk)
		s.waitStdout(t, mk+" ready")
		subs = append(subs, s)
	}
	out, _ := mosqV5Run(t, addr, "one\ntwo\nthree\n", "mosquitto_pub", "-d", "-V", "mqttv5", "-q", "1",
		"-t", "alias/t", "-l", "-D", "publish", "topic-alias", "1")
	if n := strings.Count(out, "'(null)'"); n != 2 {
		t.Fatalf("mosquitto_pub sent %d PUBLISH with the alias alone, want 2 (the test proves nothing otherwise):\n%s", n, out)
	}
	for _, s := range subs {
		wantOutput(t, "mosquitto_sub", s.finish(t), lines(mk+" ready", "alias/t one", "alias/t two", "alias/t three"))
	}
}

// TestMosquittoV5SessionExpiry: with -x 2 the session and its subscription outlive
// the connection, and the broker ends them when the interval passes; PUBACK tells
// (0x00, then 0x10 No matching subscribers).
func TestMosquittoV5SessionExpiry(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	addr := startBroker(t)
	mosqSub(t, addr, "-V", "mqttv5", "-c", "-i", "v5-exp", "-x", "2", "-q", "1", "-t", "exp/t", "-E").finish(t)
	left := time.Now()
	pubDebug := func(payload string) string {
		out, _ := mosqV5Run(t, addr, "", "mosquitto_pub", "-d", "-V", "mqttv5", "-q", "1", "-t", "exp/t", "-m", payload)
		return out
	}
	if out := pubDebug("kept"); !strings.Contains(out, "RC:0)") {
		t.Fatalf("publish while the session is kept:\n%s\nwant PUBACK RC:0", out)
	}
	eventually(t, "the broker to end the session", func() bool {
		return strings.Contains(pubDebug("probe"), "RC:16)")
	})
	if d := time.Since(left); d < 1500*time.Millisecond {
		t.Fatalf("session ended %v after the disconnect, want 2 s", d)
	}
	mk := marker(t, addr)
	again := mosqSub(t, addr, "-V", "mqttv5", "-c", "-i", "v5-exp", "-x", "60", "-q", "1", "-v", "-C", "1", "-W", "10", "-t", "exp/t", "-t", mk)
	// A kept session would deliver "kept" before the SUBACK, so before the marker.
	wantOutput(t, "mosquitto_sub", again.finish(t), lines(mk+" ready"))
}

// TestMosquittoV5WillDelay: -D will will-delay-interval 1 holds the will for a
// second after the connection drops, and a reconnect within it cancels the will.
func TestMosquittoV5WillDelay(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	addr := startBroker(t)
	mk := marker(t, addr)
	watcher := mosqSub(t, addr, "-V", "mqttv5", "-v", "-C", "3", "-W", "20", "-t", "wd/#", "-t", mk)
	watcher.waitStdout(t, mk+" ready")
	holderArgs := []string{"-V", "mqttv5", "-i", "v5-will", "-c", "-x", "30", "-v", "-t", mk,
		"--will-topic", "wd/w", "--will-payload", "gone", "--will-qos", "1", "-D", "will", "will-delay-interval", "1"}
	holder := mosqSub(t, addr, holderArgs...)
	holder.waitStdout(t, mk+" ready")
	holder.signal(t, syscall.SIGKILL)
	killed := time.Now()
	holder.wait(t, waitTimeout)
	watcher.waitStdout(t, "wd/w gone")
	if d := time.Since(killed); d < 800*time.Millisecond {
		t.Fatalf("will published %v after the connection dropped, want after the 1 s delay", d)
	}

	holder = mosqSub(t, addr, holderArgs...)
	holder.waitStdout(t, mk+" ready")
	holder.signal(t, syscall.SIGKILL)
	holder.wait(t, waitTimeout)
	back := mosqSub(t, addr, holderArgs...) // the same session, within the delay
	back.waitStdout(t, mk+" ready")
	mosqV5Quiet(t, watcher, "wd/w gone\nwd/w gone", 1500*time.Millisecond)
	back.signal(t, syscall.SIGINT) // DISCONNECT 0x00: no will
	back.finish(t)
	mosqPub(t, addr, "", "-q", "1", "-t", "wd/end", "-m", "done")
	wantOutput(t, "watcher", watcher.finish(t), lines(mk+" ready", "wd/w gone", "wd/end done"))
}

// TestMosquittoV5ReasonCodes: what mosquitto_pub and mosquitto_sub report from the
// broker's 5.0 reason codes.
func TestMosquittoV5ReasonCodes(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	bad := filepath.Join(dir, "bad")
	for f, text := range map[string]string{acl: "topic readwrite rc/#\n", bad: "\xff\xfe"} {
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := startBroker(t, "--acl-file", acl)
	cases := []struct {
		name         string
		tool         string
		args         []string
		stdout, errs string // expected in stdout (-d) and in stderr
	}{
		{"PUBACK 0x10 no matching subscribers", "mosquitto_pub", []string{"-q", "1", "-t", "rc/none", "-m", "x"}, "received PUBACK (Mid: 1, RC:16)", ""},
		{"PUBACK 0x87 not authorized", "mosquitto_pub", []string{"-q", "1", "-t", "denied/x", "-m", "x"}, "received PUBACK (Mid: 1, RC:135)", "Not authorized"},
		{"PUBREC 0x87 not authorized", "mosquitto_pub", []string{"-q", "2", "-t", "denied/x", "-m", "x"}, "received PUBREC (Mid: 1)", "Not authorized"},
		{"PUBACK 0x99 payload format invalid", "mosquitto_pub", []string{"-q", "1", "-t", "rc/pf", "-f", bad,
			"-D", "publish", "payload-format-indicator", "1"}, "received PUBACK (Mid: 1, RC:153)", "Payload format invalid"},
		{"SUBACK 0x87 not authorized", "mosquitto_sub", []string{"-t", "denied/#", "-E"}, "Subscribed (mid: 1): 135", "All subscription requests were denied"},
		{"SUBACK granted", "mosquitto_sub", []string{"-q", "2", "-t", "rc/#", "-E"}, "Subscribed (mid: 1): 2", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs := mosqV5Run(t, addr, "", c.tool, append([]string{"-d", "-V", "mqttv5"}, c.args...)...)
			if !strings.Contains(out, c.stdout) {
				t.Errorf("stdout:\n%s\nwant %q", out, c.stdout)
			}
			if c.errs != "" && !strings.Contains(errs, c.errs) || c.errs == "" && errs != "" {
				t.Errorf("stderr:\n%s\nwant %q", errs, c.errs)
			}
		})
	}
}

// TestMosquittoV5Limits: a mosquitto_sub with Maximum Packet Size 100 does not get a
// larger message (the broker drops it for that client alone) and, with Receive
// Maximum 1, gets the others one at a time (libmosquitto fails with a protocol error
// on a second unacknowledged one).
func TestMosquittoV5Limits(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	addr := startBroker(t)
	mk := marker(t, addr)
	small := mosqSub(t, addr, "-V", "mqttv5", "-q", "2", "-v", "-C", "21", "-W", "10", "-t", "lim/#", "-t", mk,
		"-D", "connect", "maximum-packet-size", "100", "-D", "connect", "receive-maximum", "1")
	large := mosqSub(t, addr, "-V", "mqttv5", "-q", "2", "-v", "-C", "22", "-W", "10", "-t", "lim/#", "-t", mk)
	small.waitStdout(t, mk+" ready")
	large.waitStdout(t, mk+" ready")
	big := strings.Repeat("b", 200)
	mosqPub(t, addr, "", "-V", "mqttv5", "-q", "1", "-t", "lim/big", "-m", big)
	var in strings.Builder
	want := []string{mk + " ready"}
	for i := range 20 {
		in.WriteString(strconv.Itoa(i) + "\n")
		want = append(want, "lim/t "+strconv.Itoa(i))
	}
	mosqPub(t, addr, in.String(), "-V", "mqttv5", "-q", strconv.Itoa(1), "-t", "lim/t", "-l")
	wantOutput(t, "mosquitto_sub with the limits", small.finish(t), lines(want...))
	wantOutput(t, "mosquitto_sub without limits", large.finish(t), lines(append([]string{want[0], "lim/big " + big}, want[1:]...)...))
}

// TestMosquittoV5SharedMixed: a 3.1.1 and a 5.0 mosquitto_sub in one shared
// subscription group split the messages, each to one of them, round robin.
func TestMosquittoV5SharedMixed(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	addr := startBroker(t)
	mk := marker(t, addr)
	// Round robin takes the members in client id order: a, then b.
	a := mosqSub(t, addr, "-V", "mqttv311", "-i", "v5-shr-a", "-q", "1", "-v", "-C", "4", "-W", "10", "-t", "$share/g/shr/t", "-t", mk)
	b := mosqSub(t, addr, "-V", "mqttv5", "-i", "v5-shr-b", "-q", "1", "-v", "-C", "4", "-W", "10", "-t", "$share/g/shr/t", "-t", mk)
	a.waitStdout(t, mk+" ready")
	b.waitStdout(t, mk+" ready")
	mosqPub(t, addr, "m0\nm1\nm2\nm3\nm4\nm5\n", "-V", "mqttv5", "-q", "1", "-t", "shr/t", "-l")
	wantOutput(t, "3.1.1 member", a.finish(t), lines(mk+" ready", "shr/t m0", "shr/t m2", "shr/t m4"))
	wantOutput(t, "5.0 member", b.finish(t), lines(mk+" ready", "shr/t m1", "shr/t m3", "shr/t m5"))
}

// TestMosquittoV5MessageExpiry: a message whose expiry interval passed while it
// waited for an offline session is not delivered; one still alive is, with what is
// left of its interval.
func TestMosquittoV5MessageExpiry(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	addr := startBroker(t)
	args := []string{"-V", "mqttv5", "-c", "-i", "v5-mexp", "-x", "60", "-q", "1", "-t", "mexp/t"}
	mosqSub(t, addr, append(args, "-E")...).finish(t)
	mosqPub(t, addr, "", "-V", "mqttv5", "-q", "1", "-t", "mexp/t", "-m", "short", "-D", "publish", "message-expiry-interval", "1")
	mosqPub(t, addr, "", "-V", "mqttv5", "-q", "1", "-t", "mexp/t", "-m", "long", "-D", "publish", "message-expiry-interval", "60")
	published := time.Now()
	for time.Since(published) < 1500*time.Millisecond { // let "short" expire
		time.Sleep(50 * time.Millisecond)
	}
	again := mosqSub(t, addr, append(args, "-C", "2", "-W", "10", "-F", "%p %E")...)
	again.waitStdout(t, "long ")
	endSession(t, addr, "mqttv5", "mexp/t")
	got := strings.Split(strings.TrimSuffix(again.finish(t), "\n"), "\n")
	if len(got) != 2 || got[1] != "end " || !strings.HasPrefix(got[0], "long ") {
		t.Fatalf("mosquitto_sub printed %q, want the long-lived message then end", got)
	}
	if e, err := strconv.Atoi(strings.TrimPrefix(got[0], "long ")); err != nil || e < 50 || e > 59 {
		t.Fatalf("message expiry %q after 1.5 s offline, want 50..59 (60 less the time queued)", got[0])
	}
}

// TestMosquittoV5RequestResponse: mosquitto_rr publishes a request with a response
// topic and correlation data; a responder (the project's client) answers on that
// topic with the same correlation data, which mosquitto_rr prints.
func TestMosquittoV5RequestResponse(t *testing.T) {
	needMosquitto(t)
	if _, err := exec.LookPath("mosquitto_rr"); err != nil {
		t.Skip(mosquittoSkip)
	}
	t.Parallel()
	addr := startBroker(t, "--response-information", "replies/")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	replies := make(chan *proto.Publish, 1)
	cp := proto.Connect{Version: proto.V5, ClientID: "v5-responder", CleanStart: true, KeepAlive: 30}
	cp.Props.RequestResponseInfo = 1
	cp.Props.Set(proto.PropRequestResponseInfo)
	responder, err := client.Connect(ctx, client.Options{Addr: addr, Connect: cp, OnMessage: func(p *proto.Publish) {
		r := &proto.Publish{Topic: p.Props.ResponseTopic, QoS: 1, Payload: append([]byte("pong:"), p.Payload...)}
		r.Props.CorrelationData = p.Props.CorrelationData
		r.Props.Set(proto.PropCorrelationData)
		select {
		case replies <- r:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = responder.Disconnect(nil) }()
	if ri := responder.Connack.Props.ResponseInfo; ri != "replies/" {
		t.Fatalf("CONNACK Response Information %q, want replies/", ri)
	}
	if _, err := responder.Subscribe(ctx, &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: "rr/service", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		// The reply is published from here, not from OnMessage, which runs on the
		// client's reader and would wait for its own PUBACK.
		select {
		case r := <-replies:
			_ = responder.Publish(ctx, r) // mosquitto_rr's output tells whether it came
		case <-ctx.Done():
		}
	}()
	rr := mosq(t, addr, "", "mosquitto_rr", "-V", "mqttv5", "-q", "1", "-t", "rr/service", "-e", "replies/rr", "-m", "ping",
		"-W", "10", "-F", "%t %p %D", "-D", "publish", "correlation-data", "corr-1")
	wantOutput(t, "mosquitto_rr", rr.finish(t), lines("replies/rr pong:ping corr-1"))
}

// TestMosquittoV5ServerKeepAlive: with --max-keepalive 1 a 5.0 client asking for 60
// is told Server Keep Alive 1 in CONNACK; libmosquitto then pings every second and
// its connection lasts past the 1.5 s the broker allows a silent one.
func TestMosquittoV5ServerKeepAlive(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	addr := startBroker(t, "--max-keepalive", "1")
	sub := mosqSub(t, addr, "-d", "-V", "mqttv5", "-k", "60", "-q", "1", "-C", "1", "-W", "20", "-t", "ka/t")
	// -d output to a pipe is block-buffered: it is read at the end. Stay connected
	// for 2.5 s, past 1.5 x the Server Keep Alive.
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		if sub.exited() {
			t.Fatalf("mosquitto_sub exited:\n%s", sub.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	mosqPub(t, addr, "", "-V", "mqttv5", "-q", "1", "-t", "ka/t", "-m", "still here")
	out := sub.finish(t)
	if !strings.Contains(out, "\nstill here\n") || strings.Count(out, "sending CONNECT") != 1 || strings.Count(out, "received PINGRESP") < 2 {
		t.Fatalf("mosquitto_sub output:\n%s\nwant one connection, pinging every second, that got the message", out)
	}
}
