package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// waitTimeout bounds every wait of these tests on a child process: generous, since
// the broker may be built with -race and several processes start per test.
const waitTimeout = 20 * time.Second

// syncBuffer collects a child's output; exec's copying goroutine writes while the
// test reads.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a child process of a test. It is killed at the latest when its timeout
// passes or the test ends.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed once the process exited and its output is copied
	// stopped is set when the test ended the process on purpose (stopServe, crash).
	stopped bool
}

// startProc starts name with args in dir, with stdin as its input, killed after
// timeout at the latest.
func startProc(t testing.TB, timeout time.Duration, dir, stdin, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// A -race build of skein sleeps a second at exit by default, to let other
	// goroutines report; the tests wait for every exit. The user's GORACE still wins.
	cmd.Env = append(os.Environ(), strings.TrimSpace("GORACE=atexit_sleep_ms=10 "+os.Getenv("GORACE")))
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	p := &proc{name: filepath.Base(name), cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.WaitDelay = 5 * time.Second // do not hang on output pipes kept open by a grandchild
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		cancel()
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// output describes the process's output for failure messages.
func (p *proc) output() string {
	return "stdout:\n" + p.stdout.String() + "\nstderr:\n" + p.stderr.String()
}

// wait waits for the process to exit and returns its exit code (-1 when a signal
// killed it), failing the test if it runs past d.
func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running after %v\n%s", p.name, d, p.output())
	}
	if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race:\n%s", p.name, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
}

// eventually polls cond until it holds, failing the test after waitTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return addr
}

// runSkein runs the skein binary to completion in a fresh directory and returns its
// output and exit code.
func runSkein(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := startProc(t, waitTimeout, t.TempDir(), "", skeinBinary(t), args...)
	code = p.wait(t, waitTimeout)
	return p.stdout.String(), p.stderr.String(), code
}

// noExtraListeners turns off the listeners skein serve opens by default besides
// MQTT over TCP (WebSocket on :8083, health on :18083), so that tests, and test runs
// of other packages, do not fight over fixed ports. Flags given later win.
var noExtraListeners = []string{"--ws-addr=", "--http-addr="}

// startServe starts `skein serve args...` in a fresh directory, with only the
// listeners args ask for.
func startServe(t testing.TB, args ...string) *proc {
	t.Helper()
	args = append(append([]string{"serve"}, noExtraListeners...), args...)
	return startProc(t, 5*time.Minute, t.TempDir(), "", skeinBinary(t), args...)
}

// waitListening waits until addr accepts TCP connections and skein has logged that
// it started, failing the test if p exits first.
//
// Waiting for the log line as well keeps the other tests clear of a bug that
// TestServeSignalAsSoonAsListening shows: skein installs its signal handlers only
// after it starts serving, so a signal right after the port opens kills it.
func waitListening(t testing.TB, p *proc, addr string) {
	t.Helper()
	if !waitStarted(t, p, addr) {
		t.Fatalf("skein exited with %d before listening on %s\n%s", p.cmd.ProcessState.ExitCode(), addr, p.output())
	}
}

// waitStarted waits as waitListening does, and reports false if p exited first.
func waitStarted(t testing.TB, p *proc, addr string) bool {
	t.Helper()
	eventually(t, "skein to listen on "+addr, func() bool {
		if p.exited() {
			return true
		}
		if !strings.Contains(p.stderr.String(), "skein started") {
			return false
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close() // a probe; the broker drops it
		return true
	})
	return !p.exited()
}

// stopServe sends SIGTERM and requires a clean exit (code 0).
func stopServe(t testing.TB, p *proc) {
	t.Helper()
	p.stopped = true
	if p.exited() {
		t.Errorf("skein exited during the test with %d\n%s", p.cmd.ProcessState.ExitCode(), p.output())
		return
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, waitTimeout); code != 0 {
		t.Errorf("skein exited with %d after SIGTERM, want 0\n%s", code, p.output())
	}
}

// startBroker runs `skein serve` on a free loopback port for the rest of the test,
// stopping it cleanly at the end, and returns its address. A port taken between
// freeAddr and the broker's listen is retried.
func startBroker(t testing.TB, extra ...string) string {
	t.Helper()
	addr, _ := startBrokerProc(t, extra...)
	return addr
}

// crash kills skein with SIGKILL, as a power cut would, and waits for it.
func crash(t testing.TB, p *proc) {
	t.Helper()
	p.stopped = true
	p.signal(t, syscall.SIGKILL)
	if code := p.wait(t, waitTimeout); code != -1 {
		t.Fatalf("skein exited with %d, not by SIGKILL\n%s", code, p.output())
	}
}

// startBrokerProc is startBroker that also returns the process, for tests that stop
// it themselves (stopServe or crash) before the end.
func startBrokerProc(t testing.TB, extra ...string) (string, *proc) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		p := startServe(t, append([]string{"--mqtt-addr", addr, "--data-dir", t.TempDir()}, extra...)...)
		if waitStarted(t, p, addr) {
			t.Cleanup(func() {
				if !p.stopped {
					stopServe(t, p)
				}
			})
			return addr, p
		}
		if attempt < 3 && strings.Contains(p.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("skein exited with %d before listening\n%s", p.cmd.ProcessState.ExitCode(), p.output())
	}
}

var goosArch = runtime.GOOS + "/" + runtime.GOARCH

func TestVersion(t *testing.T) {
	cases := []struct {
		name    string
		ldflags string
		want    string // regexp for the whole output
	}{
		{"default", "", `^skein \S+ go\S+ ` + goosArch + `\n$`},
		{"set at build time", "-X main.version=v9.8.7", `^skein v9\.8\.7 go\S+ ` + goosArch + `\n$`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bin := buildSkein(t, c.ldflags)
			p := startProc(t, waitTimeout, t.TempDir(), "", bin, "version")
			if code := p.wait(t, waitTimeout); code != 0 {
				t.Fatalf("skein version exited with %d\n%s", code, p.output())
			}
			if out := p.stdout.String(); !regexp.MustCompile(c.want).MatchString(out) {
				t.Fatalf("skein version printed %q, want it to match %s", out, c.want)
			}
		})
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	stdout, stderr, code := runSkein(t, "serve", "--help")
	if code != 0 {
		t.Fatalf("skein serve --help exited with %d: %s", code, stderr)
	}
	for _, flag := range []string{"--config", "--mqtt-addr", "--data-dir", "--log-level", "--log-format", "--max-packet-size",
		"--max-inflight", "--max-queued-messages", "--connect-timeout", "--shared-subscription-strategy", "--shutdown-timeout",
		"--forward-timeout", "--peer-spool-max-messages", "--peer-spool-max-bytes"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("help does not mention %s:\n%s", flag, stdout)
		}
	}
}

// TestServeRejectsBadSettings checks that a bad flag or config file stops `skein
// serve` at once with a non-zero exit code and one line on stderr that names the
// setting at fault (and, for the file, where).
func TestServeRejectsBadSettings(t *testing.T) {
	const file = "skein.yaml"
	cases := []struct {
		name   string
		args   []string
		config string // content of skein.yaml, passed with --config when not ""
		want   []string
	}{
		{name: "max packet size too small", args: []string{"--max-packet-size", "5"}, want: []string{"--max-packet-size", "5"}},
		{name: "max packet size too large", args: []string{"--max-packet-size", "268435461"}, want: []string{"--max-packet-size"}},
		{name: "max inflight 0", args: []string{"--max-inflight", "0"}, want: []string{"--max-inflight"}},
		{name: "max inflight 65536", args: []string{"--max-inflight", "65536"}, want: []string{"--max-inflight"}},
		{name: "max inflight not a number", args: []string{"--max-inflight", "many"}, want: []string{"max-inflight", "many"}},
		{name: "max queued negative", args: []string{"--max-queued-messages", "-1"}, want: []string{"--max-queued-messages"}},
		{name: "log level", args: []string{"--log-level", "loud"}, want: []string{"--log-level", "loud"}},
		{name: "log format", args: []string{"--log-format", "xml"}, want: []string{"--log-format", "xml"}},
		{name: "shared subscription strategy", args: []string{"--shared-subscription-strategy", "bogus"}, want: []string{"--shared-subscription-strategy", "bogus"}},
		{name: "connect timeout 0", args: []string{"--connect-timeout", "0s"}, want: []string{"--connect-timeout"}},
		{name: "connect timeout not a duration", args: []string{"--connect-timeout", "soon"}, want: []string{"connect-timeout", "soon"}},
		{name: "shutdown timeout negative", args: []string{"--shutdown-timeout", "-1s"}, want: []string{"--shutdown-timeout"}},
		{name: "empty data dir", args: []string{"--data-dir", ""}, want: []string{"--data-dir"}},
		{name: "no listener", args: []string{"--mqtt-addr="}, want: []string{"no listener", "--mqtt-addr"}},
		{name: "queue drop policy", args: []string{"--queue-drop-policy", "random"}, want: []string{"--queue-drop-policy", "random"}},
		{name: "max queued bytes negative", args: []string{"--max-queued-bytes", "-1"}, want: []string{"--max-queued-bytes"}},
		{name: "sys interval negative", args: []string{"--sys-interval", "-1s"}, want: []string{"--sys-interval"}},
		{name: "tombstone retention 0", args: []string{"--bootstrap-expect", "1", "--tombstone-retention", "0s"}, want: []string{"--tombstone-retention"}},
		{name: "config tombstone retention negative", config: "bootstrap-expect: 1\ntombstone-retention: -1h\n", want: []string{"--tombstone-retention"}},
		{name: "tls cert missing", args: []string{"--tls-cert", "nonexistent.pem", "--tls-key", "nonexistent.key"}, want: []string{"--tls-cert"}},
		{name: "tls ca without cert", args: []string{"--tls-ca", "ca.pem"}, want: []string{"--tls-ca"}},
		{name: "mqtt addr without port", args: []string{"--mqtt-addr", "nonsense"}, want: []string{"--mqtt-addr", "nonsense"}},
		{name: "unknown flag", args: []string{"--no-such-flag"}, want: []string{"--no-such-flag"}},
		{name: "unknown flag with value", args: []string{"--mqtt-adr", "x"}, want: []string{"--mqtt-adr"}},
		{name: "argument", args: []string{"extra"}, want: []string{"extra"}},
		{name: "forward timeout 0", args: []string{"--bootstrap-expect", "1", "--forward-timeout", "0s"}, want: []string{"--forward-timeout"}},
		{name: "peer spool max messages 0", args: []string{"--bootstrap-expect", "1", "--peer-spool-max-messages", "0"}, want: []string{"--peer-spool-max-messages"}},
		{name: "peer spool max bytes negative", args: []string{"--bootstrap-expect", "1", "--peer-spool-max-bytes", "-1"}, want: []string{"--peer-spool-max-bytes"}},

		{name: "config unknown key", config: "log-level: info\nmqtt_adr: x\n", want: []string{`"mqtt_adr"`, "line 2", file}},
		{name: "config key config", config: "config: other.yaml\n", want: []string{`"config"`, "line 1"}},
		{name: "config bad value", config: "max-inflight: -1\n", want: []string{"max-inflight", "-1"}},
		{name: "config value not a number", config: "log-level: info\nmax-inflight: lots\n", want: []string{`"max-inflight"`, "line 2", "lots"}},
		{name: "config bad log format", config: "log-format: xml\n", want: []string{"log-format", "xml"}},
		{name: "config bad strategy", config: "shared-subscription-strategy: bogus\n", want: []string{"shared-subscription-strategy"}},
		{name: "config bad duration", config: "connect-timeout: 0s\n", want: []string{"connect-timeout"}},
		{name: "config mapping value", config: "log-level:\n  level: debug\n", want: []string{`"log-level"`, "line"}},
		{name: "config list of lists", config: "log-level:\n  - [a, b]\n", want: []string{`"log-level"`, "line"}},
		{name: "config list", config: "- mqtt-addr\n- x\n", want: []string{file, "mapping"}},
		{name: "config scalar", config: "mqtt-addr\n", want: []string{file, "mapping"}},
		{name: "config not yaml", config: "mqtt-addr: [\n", want: []string{file}},
		{name: "config missing", args: []string{"--config", "nonexistent.yaml"}, want: []string{"nonexistent.yaml"}},
		{name: "config bad spool bound", config: "bootstrap-expect: 1\npeer-spool-max-messages: 0\n", want: []string{"peer-spool-max-messages"}},
		{name: "config forward timeout not a duration", config: "forward-timeout: soon\n", want: []string{`"forward-timeout"`, "line 1", "soon"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			// A case that wrongly succeeds serves on a throwaway port, not :1883.
			args := append([]string{"serve", "--mqtt-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data")}, noExtraListeners...)
			if c.config != "" {
				path := filepath.Join(dir, file)
				if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			args = append(args, c.args...)
			stdout, stderr, code := runSkein(t, args...)
			if code == 0 {
				t.Fatalf("skein %q exited with 0, want a failure\nstderr:\n%s", args, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing (no usage dump)", stdout)
			}
			checkFailure(t, stderr, c.want...)
		})
	}
}

// checkFailure checks the stderr of a skein that failed to start: log lines, if any,
// then one last line "skein: ..." that contains every string of want.
func checkFailure(t *testing.T, stderr string, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "skein: ") || !strings.HasSuffix(stderr, "\n") {
		t.Fatalf("stderr = %q, want it to end with one line \"skein: ...\"", stderr)
	}
	for _, l := range lines[:len(lines)-1] {
		if strings.HasPrefix(l, "skein: ") {
			t.Errorf("stderr has more than one error line: %q", stderr)
		}
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("error %q does not name %q", last, w)
		}
	}
}

// TestServePortInUse checks that a listen address already in use stops the start,
// naming the flag; the other listeners, already bound, are released.
func TestServePortInUse(t *testing.T) {
	for _, flag := range []string{"--mqtt-addr", "--ws-addr", "--http-addr"} {
		t.Run(flag, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			others := map[string]string{"--mqtt-addr": freeAddr(t), "--ws-addr": freeAddr(t), "--http-addr": freeAddr(t)}
			others[flag] = ln.Addr().String()
			args := []string{"serve", "--data-dir", t.TempDir()}
			for f, a := range others {
				args = append(args, f, a)
			}
			_, stderr, code := runSkein(t, args...)
			if code == 0 {
				t.Fatalf("skein serve with %s on a port in use exited with 0", flag)
			}
			checkFailure(t, stderr, flag, "address already in use")
		})
	}
}

// TestServeConfigFile checks which address the broker listens on when the config
// file and the flags both have a say: the flag wins, other file keys still apply.
func TestServeConfigFile(t *testing.T) {
	cases := []struct {
		name   string
		config string // {A} and {B} stand for two free addresses
		args   []string
		listen string // "{A}" or "{B}": where the broker must listen
		closed string // where it must not, or ""
		// configLast puts --config after the other flags (the order must not matter).
		configLast bool
	}{
		{name: "file sets mqtt-addr", config: "mqtt-addr: {A}\n", listen: "{A}"},
		{name: "flag overrides the file", config: "mqtt-addr: {B}\n", args: []string{"--mqtt-addr", "{A}"}, listen: "{A}", closed: "{B}"},
		{name: "flag before --config overrides the file", config: "mqtt-addr: {B}\n", args: []string{"--mqtt-addr", "{A}"}, listen: "{A}", closed: "{B}", configLast: true},
		{name: "flag overrides a bad value in the file", config: "mqtt-addr: {A}\nmax-inflight: -1\n", args: []string{"--max-inflight", "5"}, listen: "{A}"},
		{name: "quoted value", config: "mqtt-addr: \"{A}\"\n", listen: "{A}"},
		{name: "empty file", config: "", args: []string{"--mqtt-addr", "{A}"}, listen: "{A}"},
		{name: "comments only", config: "# nothing here\n", args: []string{"--mqtt-addr", "{A}"}, listen: "{A}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := freeAddr(t), freeAddr(t)
			r := strings.NewReplacer("{A}", a, "{B}", b)
			dir := t.TempDir()
			path := filepath.Join(dir, "skein.yaml")
			if err := os.WriteFile(path, []byte(r.Replace(c.config)), 0o600); err != nil {
				t.Fatal(err)
			}
			var args []string
			for _, arg := range c.args {
				args = append(args, r.Replace(arg))
			}
			if c.configLast {
				args = append(args, "--config", path, "--data-dir", filepath.Join(dir, "data"))
			} else {
				args = append([]string{"--config", path, "--data-dir", filepath.Join(dir, "data")}, args...)
			}
			p := startServe(t, args...)
			listen := r.Replace(c.listen)
			waitListening(t, p, listen)
			cl := nodetest.Connect(t, listen, proto.V5, "probe")
			cl.Disconnect()
			if c.closed != "" {
				if conn, err := net.DialTimeout("tcp", r.Replace(c.closed), time.Second); err == nil {
					conn.Close()
					t.Fatalf("the broker also listens on %s, the address the flag replaced", r.Replace(c.closed))
				}
			}
			stopServe(t, p)
		})
	}
}

// TestServeConfigApplied checks that settings from the file reach the broker: the
// log format, and the inflight window a subscriber sees.
func TestServeConfigApplied(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "skein.yaml")
	config := "# broker settings\nmqtt-addr: " + addr + "\nlog-format: json\nmax-inflight: 3\n"
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, "--config", path, "--data-dir", filepath.Join(dir, "data"))
	waitListening(t, p, addr)

	sub := nodetest.Connect(t, addr, proto.V5, "sub")
	if codes := sub.Subscribe(1, 1, "t"); len(codes) != 1 || codes[0] != proto.GrantedQoS1 {
		t.Fatalf("SUBACK %v", codes)
	}
	pub := nodetest.Connect(t, addr, proto.V5, "pub")
	for i := 1; i <= 5; i++ {
		pub.Publish(&proto.Publish{QoS: 1, Topic: "t", PacketID: uint16(i), Payload: []byte{byte('0' + i)}})
	}
	var first *proto.Publish
	for i := range 3 {
		got := nodetest.Expect[*proto.Publish](sub)
		if want := string(rune('1' + i)); string(got.Payload) != want {
			t.Fatalf("publish %d has payload %q, want %q", i, got.Payload, want)
		}
		if first == nil {
			first = got
		}
	}
	sub.ExpectNothing(300 * time.Millisecond) // max-inflight 3 from the file holds the rest
	sub.Send(&proto.Puback{PacketID: first.PacketID})
	if got := nodetest.Expect[*proto.Publish](sub); string(got.Payload) != "4" {
		t.Fatalf("after one PUBACK got payload %q, want 4", got.Payload)
	}
	sub.Disconnect()
	pub.Disconnect()
	stopServe(t, p)

	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("stderr has %d lines:\n%s", len(lines), p.stderr.String())
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil {
			t.Fatalf("log line %q is not a JSON record (log-format: json from the file): %v", line, err)
		}
	}
}

// TestServeGracefulShutdown checks SIGTERM and SIGINT: connected 5.0 clients get
// DISCONNECT 0x8B (Server shutting down), 3.1.1 clients a closed connection, and the
// process exits with 0.
func TestServeGracefulShutdown(t *testing.T) {
	cases := []struct {
		name    string
		sig     os.Signal
		version proto.Version
	}{
		{"sigterm 5.0", syscall.SIGTERM, proto.V5},
		{"sigint 5.0", syscall.SIGINT, proto.V5},
		{"sigterm 3.1.1", syscall.SIGTERM, proto.V311},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := freeAddr(t)
			p := startServe(t, "--mqtt-addr", addr, "--data-dir", t.TempDir())
			waitListening(t, p, addr)
			cl := nodetest.Connect(t, addr, c.version, "c1")
			cl.Subscribe(1, 1, "a/#")

			p.signal(t, c.sig)
			got := cl.ExpectClosed()
			if c.version == proto.V5 {
				if len(got) != 1 {
					t.Fatalf("before closing the broker sent %d packets, want one DISCONNECT: %v", len(got), got)
				}
				d, ok := got[0].(*proto.Disconnect)
				if !ok || d.ReasonCode != proto.ServerShuttingDown {
					t.Fatalf("got %s, want DISCONNECT 0x8B", nodetest.String(got[0]))
				}
			} else if len(got) != 0 {
				t.Fatalf("a 3.1.1 client got %d packets before the close, want none: %v", len(got), got)
			}
			if code := p.wait(t, waitTimeout); code != 0 {
				t.Fatalf("exit code %d after %v, want 0\n%s", code, c.sig, p.output())
			}
			if stderr := p.stderr.String(); !strings.Contains(stderr, "shutting down") || !strings.Contains(stderr, "stopped") {
				t.Fatalf("stderr does not log the shutdown:\n%s", stderr)
			}
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				t.Fatal("still accepting after exit")
			}
		})
	}
}

// TestServeSignalAsSoonAsListening sends a signal the moment the MQTT port accepts
// connections, as an orchestrator that probes the port and then stops the pod does.
// From then on the broker must handle the signal: SIGTERM and SIGINT shut it down
// gracefully (exit 0, not death by the signal), SIGHUP reloads certificates and
// keeps it running.
func TestServeSignalAsSoonAsListening(t *testing.T) {
	cases := []struct {
		name         string
		sig          syscall.Signal
		keepsRunning bool
	}{
		{"sigterm", syscall.SIGTERM, false},
		{"sigint", syscall.SIGINT, false},
		{"sighup", syscall.SIGHUP, true},
	}
	const attempts = 10 // the window is short; one attempt often misses it
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for attempt := 1; attempt <= attempts; attempt++ {
				addr := freeAddr(t)
				p := startServe(t, "--mqtt-addr", addr, "--data-dir", t.TempDir())
				// Probe as fast as a tight readiness check would.
				deadline := time.Now().Add(waitTimeout)
				for {
					if p.exited() {
						t.Fatalf("attempt %d: skein exited before listening\n%s", attempt, p.output())
					}
					if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
						conn.Close()
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("attempt %d: skein not listening on %s after %v", attempt, addr, waitTimeout)
					}
					time.Sleep(time.Millisecond)
				}
				p.signal(t, c.sig)
				if !c.keepsRunning {
					if code := p.wait(t, waitTimeout); code != 0 {
						t.Fatalf("attempt %d: exit code %d (%v) after %v sent once the port accepted, want 0 from a graceful shutdown\n%s",
							attempt, code, p.cmd.ProcessState, c.sig, p.output())
					}
					continue
				}
				eventually(t, "the SIGHUP to be handled", func() bool {
					return p.exited() || strings.Contains(p.stderr.String(), "reloaded TLS certificates")
				})
				if p.exited() {
					t.Fatalf("attempt %d: skein died of SIGHUP sent once the port accepted (%v), want it to keep running\n%s",
						attempt, p.cmd.ProcessState, p.output())
				}
				cl := nodetest.Connect(t, addr, proto.V5, "after-hup")
				cl.Disconnect()
				stopServe(t, p)
			}
		})
	}
}

// TestServeEventLoopFlag checks --event-loop: with true (the default on Linux) the
// MQTT listener is served by the event loop, with false by a goroutine per
// connection, as its "listening" log line says, and the broker works either way.
func TestServeEventLoopFlag(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			addr, p := startBrokerProc(t, "--event-loop="+fmt.Sprint(on), "--log-format", "json", "--ws-addr", "", "--http-addr", "", "--sys-interval", "0")
			sub := nodetest.Connect(t, addr, proto.V311, "sub")
			sub.Subscribe(1, 1, "loop/t")
			pub := nodetest.Connect(t, addr, proto.V5, "pub")
			pub.Publish(&proto.Publish{QoS: 1, Topic: "loop/t", PacketID: 1, Payload: []byte("x")})
			sub.Ack(sub.ExpectPublish("loop/t", "x"))
			stopServe(t, p)
			var listening map[string]any
			for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "listening" && rec["addr"] == addr {
					listening = rec
				}
			}
			if listening == nil {
				t.Fatalf("no listening line for %s:\n%s", addr, p.stderr.String())
			}
			if got := listening["event_loop"] == true; got != on {
				t.Fatalf("--event-loop=%v, listening line %v", on, listening)
			}
		})
	}
}
