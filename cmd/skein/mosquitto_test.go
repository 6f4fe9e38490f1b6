package main

import (
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests drive the skein binary with the real mosquitto_pub and mosquitto_sub,
// the clients users try a broker with first.
//
// Waiting for a subscription: a test publishes a retained marker message on a topic
// of its own (marker) and has mosquitto_sub subscribe to it as well. The broker
// records a SUBSCRIBE's subscriptions before it sends their retained messages, so
// once "<marker> ready" is printed every subscription of that mosquitto_sub is in
// place and the test may publish.

const mosquittoSkip = "mosquitto_pub not installed: apt-get install mosquitto-clients (.ci/run installs it)"

func needMosquitto(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(mosquittoSkip)
		}
	}
}

// mosq starts a mosquitto client against the broker at addr.
func mosq(t *testing.T, addr, stdin, tool string, args ...string) *proc {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return startProc(t, time.Minute, t.TempDir(), stdin, tool, append([]string{"-h", host, "-p", port}, args...)...)
}

// mosqSub starts mosquitto_sub; finish or waitStdout read what it prints.
func mosqSub(t *testing.T, addr string, args ...string) *proc {
	t.Helper()
	return mosq(t, addr, "", "mosquitto_sub", args...)
}

// mosqPub runs mosquitto_pub to completion (with -l, stdin holds the messages, one
// per line, sent in order on one connection) and fails the test unless it exits 0.
// With QoS 1 or 2 it returns after the broker acknowledged every message, which the
// broker does once the message reached every matching session.
func mosqPub(t *testing.T, addr, stdin string, args ...string) {
	t.Helper()
	p := mosq(t, addr, stdin, "mosquitto_pub", args...)
	if code := p.wait(t, waitTimeout); code != 0 {
		t.Fatalf("mosquitto_pub %q exited with %d\n%s", args, code, p.output())
	}
}

var markers atomic.Int64

// marker publishes a retained "ready" on a new topic and returns the topic.
func marker(t *testing.T, addr string) string {
	t.Helper()
	topic := fmt.Sprintf("ready/%d", markers.Add(1))
	mosqPub(t, addr, "", "-q", "1", "-r", "-t", topic, "-m", "ready")
	return topic
}

// waitStdout waits until the process has printed s, failing the test if it exits
// first.
func (p *proc) waitStdout(t *testing.T, s string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to print %q", p.name, s), func() bool {
		if strings.Contains(p.stdout.String(), s) {
			return true
		}
		if p.exited() {
			t.Fatalf("%s exited with %d before printing %q\n%s", p.name, p.cmd.ProcessState.ExitCode(), s, p.output())
		}
		return false
	})
}

// finish waits for the process to exit 0 and returns its stdout.
func (p *proc) finish(t *testing.T) string {
	t.Helper()
	if code := p.wait(t, waitTimeout); code != 0 {
		t.Fatalf("%s exited with %d\n%s", p.name, code, p.output())
	}
	return p.stdout.String()
}

// lines joins lines with a newline after each, as mosquitto_sub prints them.
func lines(ls ...string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}

func wantOutput(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s printed:\n%s\nwant:\n%s", what, got, want)
	}
}

func TestMosquittoPubSub(t *testing.T) {
	needMosquitto(t)
	addr := startBroker(t)
	cases := []struct {
		pubV, subV string
		pubQ, subQ int
	}{
		{"mqttv311", "mqttv311", 0, 0},
		{"mqttv311", "mqttv311", 1, 1},
		{"mqttv311", "mqttv311", 2, 2},
		{"mqttv5", "mqttv5", 0, 0},
		{"mqttv5", "mqttv5", 1, 1},
		{"mqttv5", "mqttv5", 2, 2},
		{"mqttv31", "mqttv31", 1, 1},
		{"mqttv311", "mqttv5", 2, 1}, // granted QoS is the lower one
		{"mqttv5", "mqttv311", 1, 2},
		{"mqttv5", "mqttv5", 2, 0},
		{"mqttv311", "mqttv5", 0, 2},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s q%d to %s q%d", c.pubV, c.pubQ, c.subV, c.subQ)
		t.Run(name, func(t *testing.T) {
			topic := fmt.Sprintf("ps/%s/%d/%s/%d", c.pubV, c.pubQ, c.subV, c.subQ)
			mk := marker(t, addr)
			sub := mosqSub(t, addr, "-V", c.subV, "-q", strconv.Itoa(c.subQ), "-C", "4", "-W", "10",
				"-F", "%t %p q%q", "-t", topic, "-t", mk)
			sub.waitStdout(t, mk+" ready")
			mosqPub(t, addr, "one\ntwo words\nthree\n", "-V", c.pubV, "-q", strconv.Itoa(c.pubQ), "-t", topic, "-l")
			q := min(c.pubQ, c.subQ)
			wantOutput(t, "mosquitto_sub", sub.finish(t), lines(
				fmt.Sprintf("%s ready q%d", mk, min(1, c.subQ)),
				fmt.Sprintf("%s one q%d", topic, q),
				fmt.Sprintf("%s two words q%d", topic, q),
				fmt.Sprintf("%s three q%d", topic, q),
			))
		})
	}

	t.Run("verbose output", func(t *testing.T) {
		mk := marker(t, addr)
		sub := mosqSub(t, addr, "-v", "-C", "3", "-W", "10", "-t", "verbose/t", "-t", mk)
		sub.waitStdout(t, mk+" ready")
		mosqPub(t, addr, "", "-q", "1", "-t", "verbose/t", "-m", "hello world")
		mosqPub(t, addr, "", "-q", "1", "-t", "verbose/t", "-n") // empty payload
		// mosquitto_sub prints an empty payload as (null).
		wantOutput(t, "mosquitto_sub -v", sub.finish(t), lines(mk+" ready", "verbose/t hello world", "verbose/t (null)"))
	})
}

func TestMosquittoWildcards(t *testing.T) {
	needMosquitto(t)
	addr := startBroker(t)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			p := "wc-" + v // a prefix per case, so the cases do not see each other's messages
			mk := marker(t, addr)
			sub := mosqSub(t, addr, "-V", v, "-q", "1", "-v", "-C", "7", "-W", "10",
				"-t", p+"/+/x", "-t", p+"2/#", "-t", "+/a/"+p, "-t", mk)
			sub.waitStdout(t, mk+" ready")
			// One publisher connection per message, each acknowledged before the next:
			// the order of arrival is the order below. A match comes last, so a wrong
			// delivery of any non-matching topic shows up within -C 7.
			publish := []struct {
				topic   string
				matches bool
			}{
				{p + "/a/y", false},
				{p + "/a/x", true},
				{p + "/x", false},
				{p + "/a/x/y", false},
				{"other/" + p, false},
				{p + "/b/x", true},
				{p + "2", true},             // # matches the parent level
				{p + "2/a/" + p, true},      // matches p2/# and +/a/p: delivered once
				{"x/a/" + p, true},          // +/a/p
				{"x/y/a/" + p, false},       // + is one level
				{p + "2/" + p + "/a", true}, // p2/#
			}
			want := []string{mk + " ready"}
			for _, m := range publish {
				mosqPub(t, addr, "", "-V", v, "-q", "1", "-t", m.topic, "-m", "m")
				if m.matches {
					want = append(want, m.topic+" m")
				}
			}
			wantOutput(t, "mosquitto_sub", sub.finish(t), lines(want...))
		})
	}
}

// retainedOf returns the retained messages (as "topic payload", sorted) a new
// subscription to filter receives.
func retainedOf(t *testing.T, addr, filter string) []string {
	t.Helper()
	mk := marker(t, addr)
	// --retained-only prints retained messages and exits at the first live one.
	sub := mosqSub(t, addr, "-v", "--retained-only", "-W", "10", "-t", filter, "-t", mk)
	sub.waitStdout(t, mk+" ready")
	mosqPub(t, addr, "", "-q", "1", "-t", mk, "-m", "end") // live: ends mosquitto_sub
	var got []string
	for _, l := range strings.Split(sub.finish(t), "\n") {
		if l != "" && l != mk+" ready" {
			got = append(got, l)
		}
	}
	slices.Sort(got)
	return got
}

func TestMosquittoRetained(t *testing.T) {
	needMosquitto(t)
	addr := startBroker(t)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run("later subscriber "+v, func(t *testing.T) {
			topic := "ret/later/" + v
			mosqPub(t, addr, "", "-V", v, "-q", "1", "-r", "-t", topic, "-m", "keep")
			sub := mosqSub(t, addr, "-V", v, "-q", "2", "-C", "1", "-W", "10", "-F", "%t %p r%r q%q", "-t", topic)
			// Retained flag set [MQTT-3.3.1-8], QoS as published (1, below the granted 2).
			wantOutput(t, "mosquitto_sub", sub.finish(t), lines(topic+" keep r1 q1"))
		})
		t.Run("live delivery clears the retain flag "+v, func(t *testing.T) {
			topic := "ret/live/" + v
			mk := marker(t, addr)
			sub := mosqSub(t, addr, "-V", v, "-q", "1", "-C", "2", "-W", "10", "-F", "%t %p r%r", "-t", topic, "-t", mk)
			sub.waitStdout(t, mk+" ready")
			mosqPub(t, addr, "", "-V", v, "-q", "1", "-r", "-t", topic, "-m", "now")
			// [MQTT-3.3.1-9] retain 0 to an existing subscription (5.0: without Retain
			// As Published, which mosquitto_sub does not set).
			wantOutput(t, "mosquitto_sub", sub.finish(t), lines(mk+" ready r1", topic+" now r0"))
		})
	}
	t.Run("replace", func(t *testing.T) {
		mosqPub(t, addr, "", "-q", "1", "-r", "-t", "ret/replace", "-m", "first")
		mosqPub(t, addr, "", "-q", "1", "-r", "-t", "ret/replace", "-m", "second")
		if got, want := retainedOf(t, addr, "ret/replace"), []string{"ret/replace second"}; !slices.Equal(got, want) {
			t.Fatalf("retained %q, want %q", got, want)
		}
	})
	t.Run("clear with -r -n", func(t *testing.T) {
		mosqPub(t, addr, "", "-q", "1", "-r", "-t", "ret/clear/a", "-m", "A")
		mosqPub(t, addr, "", "-q", "1", "-r", "-t", "ret/clear/b", "-m", "B")
		if got, want := retainedOf(t, addr, "ret/clear/#"), []string{"ret/clear/a A", "ret/clear/b B"}; !slices.Equal(got, want) {
			t.Fatalf("before clearing: retained %q, want %q", got, want)
		}
		mosqPub(t, addr, "", "-q", "1", "-r", "-n", "-t", "ret/clear/b")
		if got, want := retainedOf(t, addr, "ret/clear/#"), []string{"ret/clear/a A"}; !slices.Equal(got, want) {
			t.Fatalf("after clearing ret/clear/b: retained %q, want %q", got, want)
		}
	})
	t.Run("qos 0 retained", func(t *testing.T) {
		// mosquitto_pub at QoS 0 gets no acknowledgement: poll until it is stored.
		mosqPub(t, addr, "", "-q", "0", "-r", "-t", "ret/q0", "-m", "zero")
		eventually(t, "the QoS 0 retained message", func() bool {
			return slices.Equal(retainedOf(t, addr, "ret/q0"), []string{"ret/q0 zero"})
		})
	})
}

// TestMosquittoSys checks the $SYS topics against the [MQTT-4.7.2-1] rule: a filter
// starting with a wildcard does not match them, an explicit $SYS filter does.
func TestMosquittoSys(t *testing.T) {
	needMosquitto(t)
	addr := startBroker(t)
	t.Run("explicit filter", func(t *testing.T) {
		sub := mosqSub(t, addr, "-v", "-C", "1", "-W", "10", "-t", "$SYS/broker/version")
		out := sub.finish(t)
		if !strings.HasPrefix(out, "$SYS/broker/version skein version ") {
			t.Fatalf("$SYS/broker/version printed %q", out)
		}
	})
	for _, filter := range []string{"#", "+/broker/version", "+/+/version"} {
		t.Run(filter, func(t *testing.T) {
			for _, l := range retainedOf(t, addr, filter) {
				if strings.HasPrefix(l, "$") {
					t.Fatalf("%s matched %q", filter, l)
				}
			}
		})
	}
}

func TestMosquittoWill(t *testing.T) {
	needMosquitto(t)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run("killed "+v, func(t *testing.T) {
			addr := startBroker(t)
			mk := marker(t, addr)
			watcher := mosqSub(t, addr, "-V", v, "-v", "-C", "2", "-W", "15", "-t", "w", "-t", mk)
			watcher.waitStdout(t, mk+" ready")
			holder := mosqSub(t, addr, "-V", v, "-v", "-t", mk, "--will-topic", "w", "--will-payload", "gone")
			holder.waitStdout(t, mk+" ready") // connected
			if err := holder.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			holder.wait(t, waitTimeout)
			wantOutput(t, "watcher", watcher.finish(t), lines(mk+" ready", "w gone"))
		})
		t.Run("clean exit "+v, func(t *testing.T) {
			addr := startBroker(t)
			mk := marker(t, addr)
			watcher := mosqSub(t, addr, "-V", v, "-v", "-C", "2", "-W", "15", "-t", "w", "-t", mk)
			watcher.waitStdout(t, mk+" ready")
			// -C 1: exit with DISCONNECT after the marker, which discards the will.
			holder := mosqSub(t, addr, "-V", v, "-v", "-C", "1", "-t", mk, "--will-topic", "w", "--will-payload", "gone")
			wantOutput(t, "will holder", holder.finish(t), lines(mk+" ready"))
			// A will would be published as soon as the broker handles the close; give
			// it a second to show before the message that ends the watcher.
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				if strings.Contains(watcher.stdout.String(), "w gone") {
					t.Fatalf("will published after a clean disconnect:\n%s", watcher.stdout.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			mosqPub(t, addr, "", "-q", "1", "-t", "w", "-m", "done")
			wantOutput(t, "watcher", watcher.finish(t), lines(mk+" ready", "w done"))
		})
	}
}

// endSession publishes "end" to topic: a mosquitto_sub that resumed a session must
// stop (-C) on a message that comes after the SUBACK to its resubscription. Stopping
// on the last queued message, which comes before the SUBACK, closes the socket with
// the SUBACK unread, so the kernel resets the connection and may drop the client's
// last PUBACKs before the broker reads them; the broker then rightly sends those
// messages again.
func endSession(t *testing.T, addr, v, topic string) {
	t.Helper()
	mosqPub(t, addr, "", "-V", v, "-q", "1", "-t", topic, "-m", "end")
}

func TestMosquittoPersistentSession(t *testing.T) {
	needMosquitto(t)
	addr := startBroker(t)
	cases := []struct {
		v    string
		pubQ int
		subQ int
		// stop is how the first mosquitto_sub ends: "-E" (exit after the SUBACK),
		// "sigint" (Ctrl-C: DISCONNECT) or "sigkill" (the connection just drops).
		stop string
	}{
		{"mqttv311", 1, 1, "-E"},
		{"mqttv311", 2, 2, "sigint"},
		{"mqttv311", 1, 1, "sigkill"},
		{"mqttv5", 1, 1, "-E"},
		{"mqttv5", 2, 2, "sigkill"},
		{"mqttv5", 2, 1, "sigint"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s pub q%d sub q%d %s", c.v, c.pubQ, c.subQ, c.stop), func(t *testing.T) {
			id := fmt.Sprintf("persist-%s-%d-%d-%s", c.v, c.pubQ, c.subQ, c.stop)
			topic := "persist/" + id
			subArgs := []string{"-V", c.v, "-c", "-i", id, "-q", strconv.Itoa(c.subQ), "-t", topic}
			switch c.stop {
			case "-E":
				// Subscribe, wait for the SUBACK, disconnect; the session stays.
				mosqSub(t, addr, append(subArgs, "-E")...).finish(t)
			case "sigint", "sigkill":
				mk := marker(t, addr)
				first := mosqSub(t, addr, append(subArgs, "-v", "-t", mk)...)
				first.waitStdout(t, mk+" ready")
				if c.stop == "sigint" {
					first.signal(t, syscall.SIGINT)
					wantOutput(t, "first mosquitto_sub", first.finish(t), lines(mk+" ready"))
				} else {
					first.signal(t, syscall.SIGKILL)
					first.wait(t, waitTimeout)
				}
			}
			mosqPub(t, addr, "m1\nm2\nm3\n", "-V", c.v, "-q", strconv.Itoa(c.pubQ), "-t", topic, "-l")
			again := mosqSub(t, addr, append(subArgs, "-v", "-C", "4", "-W", "10")...)
			again.waitStdout(t, topic+" m3\n")
			endSession(t, addr, c.v, topic)
			wantOutput(t, "mosquitto_sub reconnected", again.finish(t), lines(topic+" m1", topic+" m2", topic+" m3", topic+" end"))
			// Acknowledged messages are not delivered again: the next session start
			// gets only what was published after.
			mosqPub(t, addr, "", "-V", c.v, "-q", strconv.Itoa(c.pubQ), "-t", topic, "-m", "m4")
			third := mosqSub(t, addr, append(subArgs, "-v", "-C", "1", "-W", "10")...)
			wantOutput(t, "mosquitto_sub third start", third.finish(t), lines(topic+" m4"))
		})
	}
	t.Run("clean session loses offline messages", func(t *testing.T) {
		topic := "persist/clean"
		mosqSub(t, addr, "-i", "clean-1", "-q", "1", "-t", topic, "-E").finish(t)
		mosqPub(t, addr, "", "-q", "1", "-t", topic, "-m", "lost")
		mk := marker(t, addr)
		// Messages of a kept session would come before the SUBACK, so before the marker.
		sub := mosqSub(t, addr, "-i", "clean-1", "-q", "1", "-v", "-C", "1", "-W", "10", "-t", topic, "-t", mk)
		wantOutput(t, "mosquitto_sub", sub.finish(t), lines(mk+" ready"))
	})
}

// TestMosquittoBrokerRestart checks that a persistent session's queued messages and
// the retained messages outlive a restart on the same --data-dir: a clean one, and a
// crash right after the publishers got their acknowledgements.
func TestMosquittoBrokerRestart(t *testing.T) {
	needMosquitto(t)
	for _, c := range []struct{ stop, v string }{{"sigterm", "mqttv311"}, {"sigkill", "mqttv5"}} {
		t.Run(c.stop, func(t *testing.T) {
			dir := t.TempDir()
			addr, p := startBrokerProc(t, "--data-dir", dir)
			id, topic := "restart-"+c.stop, "restart/"+c.stop
			subArgs := []string{"-V", c.v, "-c", "-i", id, "-q", "1", "-t", topic}
			mosqSub(t, addr, append(subArgs, "-E")...).finish(t)
			mosqPub(t, addr, "m1\nm2\nm3\n", "-V", c.v, "-q", "1", "-t", topic, "-l")
			mosqPub(t, addr, "", "-V", c.v, "-q", "1", "-r", "-t", topic+"/retained", "-m", "kept")
			if c.stop == "sigkill" {
				crash(t, p)
			} else {
				stopServe(t, p)
			}

			addr = startBroker(t, "--data-dir", dir)
			sub := mosqSub(t, addr, append(subArgs, "-v", "-C", "4", "-W", "10")...)
			sub.waitStdout(t, topic+" m3\n")
			endSession(t, addr, c.v, topic)
			wantOutput(t, "mosquitto_sub after the restart", sub.finish(t), lines(topic+" m1", topic+" m2", topic+" m3", topic+" end"))
			if got, want := retainedOf(t, addr, topic+"/#"), []string{topic + "/retained kept"}; !slices.Equal(got, want) {
				t.Fatalf("retained after the restart: %q, want %q", got, want)
			}
		})
	}
}

// TestMosquittoV5Properties checks that the properties a 5.0 publisher sets reach
// 5.0 subscribers unchanged (and in order, for user properties), live and retained,
// and that 3.1.1 subscribers get the message without them.
func TestMosquittoV5Properties(t *testing.T) {
	needMosquitto(t)
	addr := startBroker(t)
	props := []string{
		"-D", "publish", "user-property", "k", "v",
		"-D", "publish", "user-property", "k", "v2",
		"-D", "publish", "user-property", "a", "b",
		"-D", "publish", "content-type", "text/x",
		"-D", "publish", "correlation-data", "abc",
		"-D", "publish", "response-topic", "r/t",
		"-D", "publish", "payload-format-indicator", "1",
	}
	const format = "%t|%p|%P|%C|%D|%R|%F"
	t.Run("live", func(t *testing.T) {
		topic := "props/live"
		mk := marker(t, addr)
		sub5 := mosqSub(t, addr, "-V", "mqttv5", "-q", "1", "-C", "2", "-W", "10", "-F", format, "-t", topic, "-t", mk)
		sub311 := mosqSub(t, addr, "-V", "mqttv311", "-q", "1", "-C", "2", "-W", "10", "-F", format, "-t", topic, "-t", mk)
		sub5.waitStdout(t, mk+"|ready")
		sub311.waitStdout(t, mk+"|ready")
		mosqPub(t, addr, "", append([]string{"-V", "mqttv5", "-q", "1", "-t", topic, "-m", "x"}, props...)...)
		wantOutput(t, "5.0 mosquitto_sub", sub5.finish(t), lines(mk+"|ready|||||", topic+"|x|k:v k:v2 a:b|text/x|abc|r/t|1"))
		wantOutput(t, "3.1.1 mosquitto_sub", sub311.finish(t), lines(mk+"|ready|||||", topic+"|x|||||"))
	})
	t.Run("retained", func(t *testing.T) {
		topic := "props/retained"
		mosqPub(t, addr, "", append([]string{"-V", "mqttv5", "-q", "1", "-r", "-t", topic, "-m", "x"}, props...)...)
		sub := mosqSub(t, addr, "-V", "mqttv5", "-C", "1", "-W", "10", "-F", format, "-t", topic)
		wantOutput(t, "mosquitto_sub", sub.finish(t), lines(topic+"|x|k:v k:v2 a:b|text/x|abc|r/t|1"))
	})
	t.Run("message expiry", func(t *testing.T) {
		topic := "props/expiry"
		mk := marker(t, addr)
		sub := mosqSub(t, addr, "-V", "mqttv5", "-q", "1", "-C", "3", "-W", "10", "-F", "%t %p %E", "-t", topic, "-t", mk)
		sub.waitStdout(t, mk+" ready")
		mosqPub(t, addr, "", "-V", "mqttv5", "-q", "1", "-t", topic, "-m", "x", "-D", "publish", "message-expiry-interval", "60")
		mosqPub(t, addr, "", "-V", "mqttv5", "-q", "1", "-t", topic, "-m", "none")
		out := strings.Split(strings.TrimSuffix(sub.finish(t), "\n"), "\n")
		if len(out) != 3 || out[0] != mk+" ready " || out[2] != topic+" none " {
			t.Fatalf("mosquitto_sub printed %q", out)
		}
		// Sent with the time left, rounded up: 60 unless a second passed on the way.
		e, err := strconv.Atoi(strings.TrimPrefix(out[1], topic+" x "))
		if err != nil || e < 50 || e > 60 {
			t.Fatalf("message expiry line %q, want an interval in 50..60", out[1])
		}
	})
}
