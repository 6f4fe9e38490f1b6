package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/user"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skein-mq/skein/node/auth/authtest"
)

// These tests check that skein pub and skein sub are drop-in replacements for
// mosquitto_pub and mosquitto_sub: each case runs the same command lines with the
// mosquitto tool and with the skein one, against the same broker, and compares
// what they print (stdout, stderr) and their exit codes, plus what a neutral
// mosquitto_sub saw them publish and which retained messages they left. Every case
// runs against the real mosquitto broker and against skein serve.
//
// Each run of a case gets a namespace of its own (a topic prefix and client id part,
// "ns0001"), which the comparison replaces with NS; generated client ids and
// process ids are replaced too.

// compatStep is one step of a case. Exactly one of sub, pub, mpub, kill, observe or
// settle is set.
type compatStep struct {
	// sub and pub run the tool under test (mosquitto_sub or skein sub, mosquitto_pub
	// or skein pub) with these arguments, after -h and -p of the broker.
	sub, pub []string
	stdin    string
	// bg starts the tool and goes on once the broker has a new subscription to wait
	// (default: the argument after the first -t); the tool must end by itself.
	bg   bool
	wait string
	// mpub runs the neutral mosquitto_pub with these arguments.
	mpub []string
	// kill sends SIGKILL to the last tool started in the background.
	kill bool
	// observe starts a neutral 5.0 mosquitto_sub on this filter; what it received by
	// the end of the case is part of the comparison.
	observe string
	// settle waits (up to a second) until the observer has received a message on
	// this topic, for messages the broker publishes on its own (wills).
	settle string
}

// compatCase is one comparison.
type compatCase struct {
	name  string
	steps []compatStep
	// retained, when set, lists the retained messages under this filter at the end.
	retained string
	// usage marks a command-line error: the exit codes and the "Error" lines must
	// match, but not the usage text mosquitto_pub prints with some of them (skein's
	// own usage text differs by design) nor the blank lines around it.
	usage bool
	// drop removes the stdout lines it matches before the comparison.
	drop *regexp.Regexp
}

// compatBroker is a broker the cases run against.
type compatBroker struct {
	name, host, port string
	// subscriptions counts the subscriptions to filter: current ones for skein,
	// SUBSCRIBEs seen so far for mosquitto. A wait ends when it grows.
	subscriptions func(t *testing.T, filter string) int
}

var compatNS atomic.Int64

// compatObserverFormat shows every field a publisher sets.
const compatObserverFormat = `%t|%p|q%q|r%r|%P|%C|%D|%R|%F`

var (
	compatAssignedID = regexp.MustCompile(`auto-[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}|skein-[0-9a-f]{24}`)
	compatPrefixID   = regexp.MustCompile(`NSp-[0-9]+`)
	compatTimestamp  = regexp.MustCompile(`"tst":"[^"]*"`)
	compatBlankLines = regexp.MustCompile(`\n\n+`)
)

// compatNormalize makes the output of two runs comparable.
func compatNormalize(s, ns string) string {
	s = strings.ReplaceAll(s, ns, "NS")
	s = compatAssignedID.ReplaceAllString(s, "<assigned id>")
	s = compatPrefixID.ReplaceAllString(s, "NSp-<pid>")
	s = compatTimestamp.ReplaceAllString(s, `"tst":"<time>"`)
	for _, tool := range []string{"mosquitto_sub", "skein sub", "mosquitto_pub", "skein pub"} {
		s = strings.ReplaceAll(s, tool, "<tool>")
	}
	return s
}

// compatMosquittoBroker runs the real mosquitto, logging subscriptions to stderr
// (unbuffered), for the rest of the test.
func compatMosquittoBroker(t *testing.T) *compatBroker {
	t.Helper()
	bin := authtest.Tool(t, "mosquitto")
	me := "root"
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		conf := authzWrite(t, "mosquitto.conf", fmt.Sprintf(
			"user %s\npersistence false\nallow_anonymous true\nlistener %s %s\nlog_dest stderr\nlog_type subscribe\nlog_type unsubscribe\nlog_timestamp false\n",
			me, port, host))
		p := startProc(t, 5*time.Minute, t.TempDir(), "", bin, "-c", conf)
		listening := false
		eventually(t, "mosquitto to listen", func() bool {
			if p.exited() {
				return true
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false
			}
			c.Close()
			listening = true
			return true
		})
		if !listening {
			if attempt < 3 {
				continue
			}
			t.Fatalf("mosquitto exited\n%s", p.output())
		}
		t.Cleanup(func() {
			p.signal(t, syscall.SIGTERM)
			p.wait(t, waitTimeout)
		})
		return &compatBroker{name: "mosquitto", host: host, port: port, subscriptions: func(_ *testing.T, filter string) int {
			// Lines are "<client id> <qos> <filter>" for each subscription.
			n := 0
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				_, rest, _ := strings.Cut(l, " ")
				if q, f, ok := strings.Cut(rest, " "); ok && len(q) == 1 && q >= "0" && q <= "2" && f == filter {
					n++
				}
			}
			return n
		}}
	}
}

// compatSkeinBroker runs skein serve with its admin API, which lists subscriptions.
func compatSkeinBroker(t *testing.T) *compatBroker {
	t.Helper()
	httpAddr := freeAddr(t)
	addr, _ := startBrokerProc(t, "--sys-interval", "0", "--http-addr", httpAddr)
	host, port := hostPort(t, addr)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: waitTimeout}
	return &compatBroker{name: "skein", host: host, port: port, subscriptions: func(t *testing.T, filter string) int {
		resp, err := hc.Get("http://" + httpAddr + "/api/v1/subscriptions?limit=1&topic=" + url.QueryEscape(filter))
		if err != nil {
			t.Fatalf("admin API: %v", err)
		}
		defer resp.Body.Close()
		var page struct {
			Meta struct{ Count int } `json:"meta"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			t.Fatalf("admin API: %v", err)
		}
		return page.Meta.Count
	}}
}

// compatTool is the implementation under test: "mosquitto" or "skein".
type compatTool string

// command returns the program and leading arguments of kind ("pub" or "sub").
func (tool compatTool) command(t *testing.T, kind string) (string, []string) {
	if tool == "skein" {
		return skeinBinary(t), []string{kind}
	}
	return "mosquitto_" + kind, nil
}

// compatRun runs the case with tool in a namespace of its own and returns the
// normalized record of what happened.
func compatRun(t *testing.T, b *compatBroker, c compatCase, tool compatTool, deadPort, file string) string {
	t.Helper()
	ns := fmt.Sprintf("ns%04d", compatNS.Add(1))
	subst := strings.NewReplacer("{ns}", ns, "{host}", b.host, "{port}", b.port, "{deadport}", deadPort, "{file}", file)
	expand := func(args []string) []string {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = subst.Replace(a)
		}
		return out
	}
	var (
		rec      strings.Builder
		bg       []*proc
		observer *proc
	)
	report := func(i int, p *proc, code int) {
		if c.usage {
			var errs []string
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				if strings.HasPrefix(l, "Error") {
					errs = append(errs, l)
				}
			}
			fmt.Fprintf(&rec, "step %d: exit %d\n-- errors\n%s\n", i, code, strings.Join(errs, "\n"))
			return
		}
		stdout := p.stdout.String()
		if c.drop != nil {
			stdout = c.drop.ReplaceAllString(stdout, "")
		}
		fmt.Fprintf(&rec, "step %d: exit %d\n-- stdout\n%s-- stderr\n%s", i, code, stdout, compatBlankLines.ReplaceAllString(p.stderr.String(), "\n"))
	}
	for i, s := range c.steps {
		switch {
		case s.sub != nil || s.pub != nil:
			kind, args := "sub", s.sub
			if s.pub != nil {
				kind, args = "pub", s.pub
			}
			bin, pre := tool.command(t, kind)
			args = append(append(pre, "-h", b.host, "-p", b.port), expand(args)...)
			wait := ""
			if s.bg {
				wait = subst.Replace(s.wait)
				if wait == "" {
					for j := range len(args) - 1 {
						if args[j] == "-t" {
							wait = args[j+1]
							break
						}
					}
				}
			}
			before := 0
			if wait != "" {
				before = b.subscriptions(t, wait)
			}
			p := startProc(t, time.Minute, t.TempDir(), s.stdin, bin, args...)
			if !s.bg {
				report(i, p, compatWait(t, p))
				continue
			}
			bg = append(bg, p)
			deadline := time.Now().Add(waitTimeout)
			for b.subscriptions(t, wait) <= before && !p.exited() {
				if time.Now().After(deadline) {
					t.Fatalf("%s %s %q: no subscription to %s after %v\n%s", tool, kind, args, wait, waitTimeout, p.output())
				}
				time.Sleep(10 * time.Millisecond)
			}
		case s.mpub != nil:
			p := startProc(t, time.Minute, t.TempDir(), s.stdin, "mosquitto_pub",
				append([]string{"-h", b.host, "-p", b.port}, expand(s.mpub)...)...)
			if code := p.wait(t, waitTimeout); code != 0 {
				t.Fatalf("mosquitto_pub %q exited with %d\n%s", s.mpub, code, p.output())
			}
		case s.kill:
			p := bg[len(bg)-1]
			_ = p.cmd.Process.Kill() // fails only if it already exited, which the record shows
		case s.observe != "":
			filter := subst.Replace(s.observe)
			before := b.subscriptions(t, filter)
			observer = startProc(t, time.Minute, t.TempDir(), "", "mosquitto_sub",
				"-h", b.host, "-p", b.port, "-V", "mqttv5", "-q", "2", "-F", compatObserverFormat, "-t", filter)
			eventually(t, "the observer to subscribe", func() bool { return b.subscriptions(t, filter) > before || observer.exited() })
		case s.settle != "":
			topic := subst.Replace(s.settle)
			deadline := time.Now().Add(time.Second)
			for !strings.Contains(observer.stdout.String(), topic+"|") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	for i, p := range bg {
		fmt.Fprintf(&rec, "background %d: ", i)
		report(i, p, compatWait(t, p))
	}
	if observer != nil {
		// An end marker, published after everything else, ends what the observer saw.
		// It goes at QoS 2 like the observer's subscription: libmosquitto passes a
		// QoS 2 message on only at PUBREL, so a QoS 1 marker could overtake one.
		end := ns + "/compat-end"
		p := startProc(t, time.Minute, t.TempDir(), "", "mosquitto_pub", "-h", b.host, "-p", b.port, "-q", "2", "-t", end, "-m", "end")
		p.wait(t, waitTimeout)
		observer.waitStdout(t, end+"|end|")
		observer.signal(t, syscall.SIGINT)
		observer.wait(t, waitTimeout)
		fmt.Fprintf(&rec, "observer:\n%s", compatObserved(strings.ReplaceAll(observer.stdout.String(), end+"|end|q2|r0|||||\n", "")))
	}
	if c.retained != "" {
		fmt.Fprintf(&rec, "retained: %q\n", retainedOf(t, net.JoinHostPort(b.host, b.port), subst.Replace(c.retained)))
	}
	return compatNormalize(rec.String(), ns)
}

// compatObserved sorts the retained messages the observer got when it subscribed:
// MQTT leaves their order to the broker.
func compatObserved(out string) string {
	ls := strings.SplitAfter(out, "\n")
	n := 0
	for n < len(ls) && strings.Contains(ls[n], "|r1|") {
		n++
	}
	slices.Sort(ls[:n])
	return strings.Join(ls, "")
}

// compatWait waits for a tool to exit and returns its exit code; one that does not
// exit is killed and reported as code -2.
func compatWait(t *testing.T, p *proc) int {
	t.Helper()
	select {
	case <-p.done:
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", p.name, p.stderr.String())
		}
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(waitTimeout):
		_ = p.cmd.Process.Kill() // it is stuck; the record shows -2
		<-p.done
		return -2
	}
}

// compatSub and the others build steps.
func compatSub(args ...string) compatStep   { return compatStep{sub: args} }
func compatSubBg(args ...string) compatStep { return compatStep{sub: args, bg: true} }
func compatPub(args ...string) compatStep   { return compatStep{pub: args} }
func compatMpub(args ...string) compatStep  { return compatStep{mpub: args} }
func compatObserve() compatStep             { return compatStep{observe: "{ns}/#"} }

// compatSubCases vary the options of the subscriber.
var compatSubCases = []compatCase{
	{name: "verbose", steps: []compatStep{
		compatSubBg("-v", "-C", "2", "-t", "{ns}/a"),
		compatMpub("-q", "1", "-t", "{ns}/a", "-m", "hello world"),
		compatMpub("-q", "1", "-t", "{ns}/a", "-n"),
	}},
	{name: "payload only", steps: []compatStep{
		compatSubBg("-C", "2", "-t", "{ns}/a"),
		compatMpub("-q", "1", "-t", "{ns}/a", "-m", "line one"),
		compatMpub("-q", "1", "-t", "{ns}/a", "-m", "two\nlines"),
	}},
	{name: "-F fields", steps: []compatStep{
		compatSubBg("-q", "1", "-C", "2", "-F", "%t|%p|%q|%r|%l|%m|%x|%X|%%", "-t", "{ns}/#"),
		compatMpub("-q", "1", "-t", "{ns}/f", "-m", "hi there"),
		compatMpub("-q", "0", "-r", "-t", "{ns}/g", "-m", "\x01\xff"),
	}},
	{name: "-F width precision escapes", steps: []compatStep{
		compatSubBg("-C", "1", "-F", `[%20t][%-12p][%.6t][%05l][%-5l]\t|\\|\e|\n|@@|end`, "-t", "{ns}/w"),
		compatMpub("-q", "1", "-t", "{ns}/w", "-m", "payload"),
	}},
	// mosquitto_sub 2.0.11 applies a precision to %t but not to %p.
	{name: "-F precision on the payload", steps: []compatStep{
		compatSubBg("-C", "1", "-F", `[%.3p][%10.3p]`, "-t", "{ns}/w"),
		compatMpub("-q", "1", "-t", "{ns}/w", "-m", "payload"),
	}},
	{name: "-F unknown specifier", usage: true, steps: []compatStep{compatSub("-F", "%t %z", "-E", "-t", "{ns}/z")}},
	{name: "-F json", steps: []compatStep{
		compatSubBg("-C", "2", "-F", "%j", "-t", "{ns}/j"),
		compatMpub("-q", "1", "-t", "{ns}/j", "-m", `{"a": [1, 2]}`),
		compatMpub("-q", "1", "-t", "{ns}/j", "-m", "not \"json\""),
	}},
	{name: "-F json with properties", steps: []compatStep{
		compatSubBg("-V", "mqttv5", "-C", "2", "-F", "%J", "-t", "{ns}/j"),
		compatMpub("-V", "mqttv5", "-q", "1", "-t", "{ns}/j", "-m", `{"a": [1, 2]}`,
			"-D", "publish", "content-type", "application/json", "-D", "publish", "user-property", "k", "v"),
		compatMpub("-q", "1", "-t", "{ns}/j", "-m", "plain"),
	}},
	{name: "-F properties", steps: []compatStep{
		compatSubBg("-V", "mqttv5", "-D", "subscribe", "subscription-identifier", "7", "-C", "1",
			"-F", "%t|%P|%C|%D|%R|%F|%S", "-t", "{ns}/p"),
		compatMpub("-V", "mqttv5", "-q", "1", "-t", "{ns}/p", "-m", "x",
			"-D", "publish", "user-property", "k", "v", "-D", "publish", "user-property", "k", "v2",
			"-D", "publish", "content-type", "text/plain", "-D", "publish", "correlation-data", "corr",
			"-D", "publish", "response-topic", "reply/here", "-D", "publish", "payload-format-indicator", "1"),
	}},
	{name: "-N", steps: []compatStep{
		compatSubBg("-N", "-C", "2", "-v", "-t", "{ns}/n"),
		compatMpub("-q", "1", "-t", "{ns}/n", "-m", "one"),
		compatMpub("-q", "1", "-t", "{ns}/n", "-m", "two"),
	}},
	{name: "-R skips retained", steps: []compatStep{
		compatMpub("-q", "1", "-r", "-t", "{ns}/r", "-m", "old"),
		compatSubBg("-R", "-C", "1", "-v", "-t", "{ns}/r"),
		compatMpub("-q", "1", "-t", "{ns}/r", "-m", "new"),
	}},
	{name: "-q 2", steps: []compatStep{
		compatSubBg("-q", "2", "-C", "3", "-F", "%q %p", "-t", "{ns}/q"),
		compatMpub("-q", "0", "-t", "{ns}/q", "-m", "zero"),
		compatMpub("-q", "1", "-t", "{ns}/q", "-m", "one"),
		compatMpub("-q", "2", "-t", "{ns}/q", "-m", "two"),
	}},
	{name: "-T filters out", steps: []compatStep{
		compatSubBg("-T", "{ns}/x/#", "-T", "{ns}/y", "-C", "2", "-v", "-t", "{ns}/#"),
		compatMpub("-q", "1", "-t", "{ns}/x/1", "-m", "a"),
		compatMpub("-q", "1", "-t", "{ns}/y", "-m", "b"),
		compatMpub("-q", "1", "-t", "{ns}/x", "-m", "c"),
		compatMpub("-q", "1", "-t", "{ns}/z", "-m", "d"),
		compatMpub("-q", "1", "-t", "{ns}/w", "-m", "e"),
	}},
	{name: "-U unsubscribes", steps: []compatStep{
		{sub: []string{"-t", "{ns}/u", "-t", "{ns}/k", "-U", "{ns}/u", "-C", "1", "-v"}, bg: true, wait: "{ns}/k"},
		compatMpub("-q", "1", "-t", "{ns}/u", "-m", "unsubscribed"),
		compatMpub("-q", "1", "-t", "{ns}/k", "-m", "kept"),
	}},
	{name: "--retained-only", steps: []compatStep{
		compatMpub("-q", "1", "-r", "-t", "{ns}/r1", "-m", "a"),
		compatSubBg("--retained-only", "-v", "-t", "{ns}/r1", "-t", "{ns}/live"),
		compatMpub("-q", "1", "-t", "{ns}/live", "-m", "ends it"),
		compatMpub("-q", "1", "-t", "{ns}/live", "-m", "too late"),
	}},
	// mosquitto_sub clears each retained message as it arrives and, subscribed to
	// the topic, may print the clearing message it gets back, depending on timing.
	{name: "--remove-retained", retained: "{ns}/#", drop: regexp.MustCompile(`(?m)^.* \(null\)\n`), steps: []compatStep{
		compatMpub("-q", "1", "-r", "-t", "{ns}/r1", "-m", "a"),
		compatMpub("-q", "1", "-r", "-t", "{ns}/keep", "-m", "kept"),
		compatSub("--remove-retained", "-v", "-W", "1", "-t", "{ns}/r1"),
	}},
	{name: "-c -i persistent session", steps: []compatStep{
		compatSub("-c", "-i", "{ns}-c", "-q", "1", "-t", "{ns}/p", "-E"),
		compatMpub("-q", "1", "-t", "{ns}/p", "-m", "m1"),
		compatMpub("-q", "1", "-t", "{ns}/p", "-m", "m2"),
		compatSub("-c", "-i", "{ns}-c", "-q", "1", "-C", "2", "-v", "-t", "{ns}/p"),
	}},
	{name: "-x session expiry", steps: []compatStep{
		compatSub("-V", "mqttv5", "-c", "-i", "{ns}-x", "-x", "60", "-q", "1", "-t", "{ns}/x", "-E"),
		compatMpub("-q", "1", "-t", "{ns}/x", "-m", "queued"),
		compatSub("-V", "mqttv5", "-c", "-i", "{ns}-x", "-x", "60", "-q", "1", "-C", "1", "-v", "-t", "{ns}/x"),
	}},
	{name: "-x 0 ends the session", steps: []compatStep{
		compatSub("-V", "mqttv5", "-c", "-i", "{ns}-y", "-x", "0", "-q", "1", "-t", "{ns}/y", "-E"),
		compatMpub("-q", "1", "-t", "{ns}/y", "-m", "lost"),
		compatSubBg("-V", "mqttv5", "-c", "-i", "{ns}-y", "-x", "0", "-q", "1", "-C", "1", "-v", "-t", "{ns}/y"),
		compatMpub("-q", "1", "-t", "{ns}/y", "-m", "live"),
	}},
	{name: "-W times out with 27", steps: []compatStep{compatSub("-W", "1", "-t", "{ns}/w")}},
	{name: "-E", steps: []compatStep{compatSub("-E", "-t", "{ns}/e")}},
	{name: "-L url", steps: []compatStep{
		{sub: []string{"-L", "mqtt://{host}:{port}/{ns}/url", "-C", "1", "-v"}, bg: true, wait: "{ns}/url"},
		compatMpub("-q", "1", "-t", "{ns}/url", "-m", "via url"),
	}},
	{name: "-V mqttv31", steps: []compatStep{
		compatSubBg("-V", "mqttv31", "-i", "{ns}31", "-q", "1", "-C", "1", "-v", "-t", "{ns}/31"),
		compatMpub("-q", "1", "-t", "{ns}/31", "-m", "old protocol"),
	}},
	{name: "-d", steps: []compatStep{
		compatSubBg("-d", "-q", "1", "-C", "1", "-t", "{ns}/d"),
		compatMpub("-q", "1", "-t", "{ns}/d", "-m", "hello"),
	}},
	{name: "-d -V mqttv5 qos 2", steps: []compatStep{
		compatSubBg("-d", "-V", "mqttv5", "-q", "2", "-C", "1", "-t", "{ns}/d"),
		compatMpub("-q", "2", "-t", "{ns}/d", "-m", "hello"),
	}},
	{name: "-d with -I prefix", steps: []compatStep{
		compatSubBg("-d", "-I", "{ns}p-", "-C", "1", "-t", "{ns}/i"),
		compatMpub("-q", "1", "-t", "{ns}/i", "-m", "hello"),
	}},
	{name: "-u -P -k -A", steps: []compatStep{
		compatSubBg("-u", "someone", "-P", "secret", "-k", "5", "-A", "127.0.0.1", "-C", "1", "-v", "-t", "{ns}/u"),
		compatMpub("-q", "1", "-t", "{ns}/u", "-m", "hi"),
	}},
	{name: "will published when killed", steps: []compatStep{
		compatObserve(),
		compatSubBg("--will-topic", "{ns}/will", "--will-payload", "bye", "--will-qos", "1", "--will-retain", "-t", "{ns}/wt"),
		{kill: true},
		{settle: "{ns}/will"},
	}, retained: "{ns}/will"},
	{name: "no topic", usage: true, steps: []compatStep{compatSub("-v")}},
	{name: "qos 3", usage: true, steps: []compatStep{compatSub("-t", "a", "-q", "3")}},
	{name: "bad filter", usage: true, steps: []compatStep{compatSub("-t", "a/#/b")}},
	{name: "-c without -i", usage: true, steps: []compatStep{compatSub("-t", "a", "-c")}},
	{name: "unknown option", usage: true, steps: []compatStep{compatSub("--bogus")}},
	{name: "bad protocol version", usage: true, steps: []compatStep{compatSub("-t", "a", "-V", "6")}},
	{name: "keepalive 3", usage: true, steps: []compatStep{compatSub("-t", "a", "-k", "3")}},
	{name: "bad -T filter", usage: true, steps: []compatStep{compatSub("-t", "a", "-T", "a/#/b")}},
	{name: "-x without mqttv5", steps: []compatStep{compatSub("-t", "{ns}/x", "-x", "60", "-E")}},
	{name: "connection refused", steps: []compatStep{compatSub("-p", "{deadport}", "-t", "a")}},
	{name: "--quiet connection refused", steps: []compatStep{compatSub("--quiet", "-p", "{deadport}", "-t", "a")}},
}

// compatPubCases vary the options of the publisher; a neutral subscriber shows
// what it sent.
var compatPubCases = []compatCase{
	{name: "-m", steps: []compatStep{compatObserve(), compatPub("-q", "1", "-t", "{ns}/m", "-m", "hello world")}},
	{name: "-m qos 0", steps: []compatStep{compatObserve(), compatPub("-t", "{ns}/m", "-m", "zero")}},
	{name: "-m qos 2", steps: []compatStep{compatObserve(), compatPub("-q", "2", "-t", "{ns}/m", "-m", "two")}},
	{name: "-r", retained: "{ns}/#", steps: []compatStep{compatObserve(), compatPub("-q", "1", "-r", "-t", "{ns}/r", "-m", "keep")}},
	{name: "-n", steps: []compatStep{compatObserve(), compatPub("-q", "1", "-n", "-t", "{ns}/n")}},
	{name: "-r -n clears", retained: "{ns}/#", steps: []compatStep{
		compatMpub("-q", "1", "-r", "-t", "{ns}/r", "-m", "old"),
		compatMpub("-q", "1", "-r", "-t", "{ns}/r2", "-m", "stays"),
		compatObserve(),
		compatPub("-q", "1", "-r", "-n", "-t", "{ns}/r"),
	}},
	{name: "-l", steps: []compatStep{compatObserve(), {pub: []string{"-q", "1", "-l", "-t", "{ns}/l"}, stdin: "a\nb c\n\nlast without newline"}}},
	{name: "-l qos 0 -M 1", steps: []compatStep{compatObserve(), {pub: []string{"-M", "1", "-l", "-t", "{ns}/l"}, stdin: "1\n2\n3\n"}}},
	{name: "-s", steps: []compatStep{compatObserve(), {pub: []string{"-q", "1", "-s", "-t", "{ns}/s"}, stdin: "whole\nfile\n"}}},
	{name: "-f", steps: []compatStep{compatObserve(), compatPub("-q", "1", "-f", "{file}", "-t", "{ns}/f")}},
	{name: "--repeat", steps: []compatStep{compatObserve(), compatPub("-q", "1", "--repeat", "3", "--repeat-delay", "0.01", "-t", "{ns}/rep", "-m", "again")}},
	{name: "-V mqttv5 properties", steps: []compatStep{compatObserve(), compatPub("-V", "mqttv5", "-q", "1", "-t", "{ns}/p", "-m", "x",
		"-D", "publish", "user-property", "k", "v", "-D", "publish", "user-property", "k", "v2",
		"-D", "publish", "content-type", "text/plain", "-D", "publish", "correlation-data", "corr",
		"-D", "publish", "response-topic", "reply/here", "-D", "publish", "payload-format-indicator", "1",
		"-D", "connect", "user-property", "c", "d", "-D", "disconnect", "reason-string", "bye")}},
	{name: "-V mqttv31 -i", steps: []compatStep{compatObserve(), compatPub("-V", "mqttv31", "-i", "{ns}31", "-q", "1", "-t", "{ns}/31", "-m", "old")}},
	{name: "-L url", steps: []compatStep{compatObserve(), compatPub("-L", "mqtt://{host}:{port}/{ns}/url", "-q", "1", "-m", "via url")}},
	{name: "--will-* clean exit", steps: []compatStep{compatObserve(),
		compatPub("--will-topic", "{ns}/will", "--will-payload", "bye", "--will-retain", "-q", "1", "-t", "{ns}/t", "-m", "m")}},
	{name: "-c -i -x", steps: []compatStep{compatObserve(), compatPub("-V", "mqttv5", "-c", "-i", "{ns}-pc", "-x", "30", "-q", "1", "-t", "{ns}/c", "-m", "x")}},
	{name: "-u -P -k -A", steps: []compatStep{compatObserve(), compatPub("-u", "someone", "-P", "pw", "-k", "5", "-A", "127.0.0.1", "-q", "1", "-t", "{ns}/u", "-m", "x")}},
	{name: "-d qos 0", steps: []compatStep{compatObserve(), compatPub("-d", "-i", "{ns}-d", "-t", "{ns}/d", "-m", "x")}},
	{name: "-d qos 1", steps: []compatStep{compatObserve(), compatPub("-d", "-i", "{ns}-d", "-q", "1", "-t", "{ns}/d", "-m", "x")}},
	{name: "-d qos 2 -r", steps: []compatStep{compatObserve(), compatPub("-d", "-i", "{ns}-d", "-q", "2", "-r", "-t", "{ns}/d", "-m", "x")}},
	{name: "-d -V mqttv5 generated id", steps: []compatStep{compatObserve(), compatPub("-d", "-V", "mqttv5", "-q", "1", "-t", "{ns}/d", "-m", "x")}},
	{name: "no topic", usage: true, steps: []compatStep{compatPub("-m", "x")}},
	{name: "no message", usage: true, steps: []compatStep{compatPub("-t", "a")}},
	{name: "wildcard topic", usage: true, steps: []compatStep{compatPub("-t", "a/+", "-m", "x")}},
	{name: "two messages", usage: true, steps: []compatStep{compatPub("-t", "a", "-m", "x", "-n")}},
	{name: "qos 3", usage: true, steps: []compatStep{compatPub("-t", "a", "-m", "x", "-q", "3")}},
	{name: "-x without mqttv5", steps: []compatStep{compatObserve(), compatPub("-t", "{ns}/x", "-m", "x", "-x", "60")}},
	{name: "properties without mqttv5", steps: []compatStep{compatObserve(), compatPub("-t", "{ns}/p", "-m", "x", "-D", "publish", "content-type", "c")}},
	{name: "connection refused", steps: []compatStep{compatPub("-p", "{deadport}", "-t", "a", "-m", "x")}},
	{name: "--quiet connection refused", steps: []compatStep{compatPub("--quiet", "-p", "{deadport}", "-t", "a", "-m", "x")}},
}

// TestCompatPubSub runs every case with both tools against both brokers.
func TestCompatPubSub(t *testing.T) {
	needMosquitto(t)
	file := authzWrite(t, "payload", "file payload\nwith two lines\n")
	deadPort := authzPort(t) // nothing listens there
	skeinBinary(t)           // build before the parallel cases start
	brokers := []func(*testing.T) *compatBroker{compatMosquittoBroker, compatSkeinBroker}
	for _, start := range brokers {
		b := start(t)
		t.Run(b.name, func(t *testing.T) {
			for _, group := range []struct {
				kind  string
				cases []compatCase
			}{{"sub", compatSubCases}, {"pub", compatPubCases}} {
				for _, c := range group.cases {
					t.Run(group.kind+" "+c.name, func(t *testing.T) {
						t.Parallel()
						mosq := compatRun(t, b, c, "mosquitto", deadPort, file)
						skein := compatRun(t, b, c, "skein", deadPort, file)
						if mosq != skein {
							t.Errorf("output differs\n--- mosquitto_%s:\n%s\n--- skein %s:\n%s", group.kind, mosq, group.kind, skein)
						}
					})
				}
			}
		})
	}
}

// TestCompatSubscriptionDenied compares the tools when the broker refuses every
// filter of the SUBSCRIBE.
func TestCompatSubscriptionDenied(t *testing.T) {
	needMosquitto(t)
	passwd := authzPasswordFile(t)
	acl := authzWrite(t, "acl", authzACL)
	addr, _ := startBrokerProc(t, "--sys-interval", "0", "--allow-anonymous=false", "--password-file", passwd, "--acl-file", acl)
	host, port := hostPort(t, addr)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			var got []string
			for _, tool := range []compatTool{"mosquitto", "skein"} {
				bin, pre := tool.command(t, "sub")
				p := startProc(t, time.Minute, t.TempDir(), "", bin, append(pre, "-h", host, "-p", port, "-V", v,
					"-u", "writer", "-P", authzUsers["writer"], "-t", "data/#", "-W", "5")...)
				code := compatWait(t, p)
				got = append(got, compatNormalize(fmt.Sprintf("exit %d\nstdout:\n%sstderr:\n%s", code, p.stdout.String(), p.stderr.String()), "\x00"))
			}
			if got[0] != got[1] {
				t.Errorf("output differs\n--- mosquitto_sub:\n%s\n--- skein sub:\n%s", got[0], got[1])
			}
		})
	}
}
