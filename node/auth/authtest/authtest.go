// Package authtest runs the real Mosquitto programs (mosquitto, mosquitto_passwd,
// mosquitto_pub) from tests, to check that the password files Skein reads and writes
// are the ones Mosquitto reads and writes. Tests skip when the programs are missing.
package authtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeout bounds every wait here and every program run.
const Timeout = 10 * time.Second

// Tool returns the path of the Mosquitto program name, from PATH or from /usr/sbin
// (where Debian installs the broker), and skips t when it is not installed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	pkg := "mosquitto"
	if name == "mosquitto_pub" || name == "mosquitto_sub" {
		pkg = "mosquitto-clients"
	}
	t.Skipf("%s not installed: apt-get install %s (.ci/run installs it)", name, pkg)
	return ""
}

// Run runs the Mosquitto program name with args and returns its exit code and its
// combined output. It fails t when the program cannot be started or times out.
func Run(t testing.TB, name string, args ...string) (int, string) {
	t.Helper()
	return RunStdin(t, nil, name, args...)
}

// RunStdin is Run with stdin as the program's standard input (nil: none).
func RunStdin(t testing.TB, stdin io.Reader, name string, args ...string) (int, string) {
	t.Helper()
	bin := Tool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case ctx.Err() != nil:
		t.Fatalf("%s %q: timed out after %v; output:\n%s", name, args, Timeout, out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("%s %q: %v", name, args, err)
	}
	return -1, ""
}

// Broker is a mosquitto broker running as a child process for one test.
type Broker struct {
	Port int
	log  *syncBuffer
}

// BrokerConfig is what StartBroker puts in mosquitto.conf.
type BrokerConfig struct {
	PasswordFile   string // password_file; "" for none
	ACLFile        string // acl_file; "" for none
	AllowAnonymous bool   // allow_anonymous
}

// StartBroker runs mosquitto on a free 127.0.0.1 port with c, and stops it when the
// test ends. It skips t when mosquitto is not installed.
func StartBroker(t testing.TB, c BrokerConfig) *Broker {
	t.Helper()
	bin := Tool(t, "mosquitto")
	// Started as root, mosquitto drops privileges to the user "mosquitto", which
	// cannot read the test's private temp dir; tell it to stay who we are.
	me := "root"
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "allow_anonymous %v\npersistence false\nuser %s\n", c.AllowAnonymous, me)
	for _, f := range []struct{ key, path string }{{"password_file", c.PasswordFile}, {"acl_file", c.ACLFile}} {
		if f.path == "" {
			continue
		}
		abs, err := filepath.Abs(f.path)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "%s %s\n", f.key, abs)
	}
	// A port found free may be taken before mosquitto binds it: retry a few times.
	var lastErr error
	for range 3 {
		port := freePort(t)
		path := filepath.Join(t.TempDir(), "mosquitto.conf")
		text := fmt.Sprintf("listener %d 127.0.0.1\n%s", port, conf.String())
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		b := &Broker{Port: port, log: &syncBuffer{}}
		if lastErr = b.start(t, bin, path); lastErr == nil {
			return b
		}
	}
	t.Fatalf("start mosquitto: %v", lastErr)
	return nil
}

// start runs the broker and waits until its port accepts connections. On failure the
// process is gone when start returns.
func (b *Broker) start(t testing.TB, bin, conf string) error {
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = cmd.Wait() // the exit status of a killed broker says nothing useful
	}()
	stop := func() {
		_ = cmd.Process.Kill() // fails only when the broker already exited
		<-exited
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close() // a probe connection: nothing was sent
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("mosquitto exited before listening; its log:\n%s", b.log)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("mosquitto not listening on %s after %v; its log:\n%s", addr, Timeout, b.log)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.log)
		}
	})
	return nil
}

// Publish runs mosquitto_pub against b as username with password (MQTT 3.1.1, QoS 1)
// and returns its exit code, 0 when the broker accepted the login and the message, and
// its output.
func (b *Broker) Publish(t testing.TB, username, password string) (int, string) {
	t.Helper()
	return b.PublishTopic(t, "skein-authtest", username, password, "skein/authtest")
}

// PublishTopic is Publish with a client id and a topic. An empty username connects
// without one. A publish the ACL refuses still exits 0: MQTT 3.1.1 has no way to say.
func (b *Broker) PublishTopic(t testing.TB, clientID, username, password, topic string) (int, string) {
	t.Helper()
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(b.Port), "-V", "mqttv311", "-q", "1",
		"-i", clientID, "-t", topic, "-m", clientID}
	if username != "" {
		args = append(args, "-u", username, "-P", password)
	}
	return Run(t, "mosquitto_pub", args...)
}

// Subscriber is a mosquitto_sub process.
type Subscriber struct {
	out    *syncBuffer
	exited chan struct{}
}

// Subscribe starts mosquitto_sub on filter as clientID (without a username when
// username is empty), returns once the broker has answered the SUBSCRIBE, and stops it
// when the test ends.
func (b *Broker) Subscribe(t testing.TB, clientID, username, password, filter string) *Subscriber {
	t.Helper()
	bin := Tool(t, "mosquitto_sub")
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(b.Port), "-V", "mqttv311", "-q", "1",
		"-i", clientID, "-t", filter, "-F", "%t %p", "-d"}
	if username != "" {
		args = append(args, "-u", username, "-P", password)
	}
	// mosquitto_sub buffers its output in a pipe until a message arrives; stdbuf (GNU
	// coreutils) makes it line-buffered so that the SUBACK line shows at once.
	stdbuf, err := exec.LookPath("stdbuf")
	if err != nil {
		t.Skip("stdbuf not installed: apt-get install coreutils")
	}
	s := &Subscriber{out: &syncBuffer{}, exited: make(chan struct{})}
	cmd := exec.Command(stdbuf, append([]string{"-oL", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.exited)
		_ = cmd.Wait() // killed at the end: its status says nothing
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails only when it already exited
		<-s.exited
	})
	if !s.poll(func(out string) bool { return strings.Contains(out, "Subscribed (mid:") }) {
		t.Fatalf("mosquitto_sub -i %s -t %s: no SUBACK; output:\n%s", clientID, filter, s.out)
	}
	return s
}

// poll waits until cond holds for the output, the program exits, or Timeout.
func (s *Subscriber) poll(cond func(out string) bool) bool {
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond(s.out.String()) {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-s.exited:
			return cond(s.out.String())
		case <-tick.C:
		}
	}
	return true
}

// Message is a message a Subscriber received. PublishTopic makes the payload the
// publisher's client id.
type Message struct {
	Topic, Payload string
}

// MessagesUntil waits until the subscriber has received a message on last and returns
// the messages it received before, in order. Topics must not contain spaces.
func (s *Subscriber) MessagesUntil(t testing.TB, last string) []Message {
	t.Helper()
	var msgs []Message
	found := s.poll(func(out string) bool {
		msgs = msgs[:0]
		for _, line := range strings.Split(out, "\n") {
			if line == "" || strings.HasPrefix(line, "Client ") || strings.HasPrefix(line, "Subscribed (") {
				continue
			}
			topic, payload, _ := strings.Cut(line, " ")
			if topic == last {
				return true
			}
			msgs = append(msgs, Message{topic, payload})
		}
		return false
	})
	if !found {
		t.Fatalf("mosquitto_sub received nothing on %s; output:\n%s", last, s.out)
	}
	return msgs
}

// Log returns what the broker has logged so far.
func (b *Broker) Log() string { return b.log.String() }

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// syncBuffer is a bytes.Buffer that the broker's output copier and the test may use at
// the same time.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
