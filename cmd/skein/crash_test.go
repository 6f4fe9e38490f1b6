package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/proto/client"
)

// These tests run the real skein binary on a data directory and kill it: SIGKILL at
// random moments under load, SIGTERM, and starts on a damaged or locked data file.

// crashTimeout bounds every wait on the broker or a client: generous, since the
// binary may be built with -race.
const crashTimeout = 20 * time.Second

// crashBinary builds skein into dir. TestCrash builds once per run, into its own
// temporary directory, and its subtests share the binary: a build shared across
// runs (sync.Once) would point at a directory removed after the first run of
// -count=N, and a directory outside the tests' would be left behind. The go build
// cache makes the second and later builds a link only.
func crashBinary(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "skein")
	args := []string{"build", "-o", path}
	if crashRaceEnabled() {
		args = append(args, "-race") // a data race in the broker then fails the run
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return path
}

func crashRaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// crashOutput collects a child's output while exec's goroutine writes it.
type crashOutput struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (o *crashOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *crashOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// crashBroker is one run of skein serve.
type crashBroker struct {
	cmd    *exec.Cmd
	out    *crashOutput // stdout and stderr
	done   chan struct{}
	err    error // Wait's result, once done is closed
	killed bool  // ended by the test with SIGKILL
}

// crashServe starts skein serve on addr with data in dataDir. It does not wait for
// the listener; see crashStart.
func crashServe(t *testing.T, bin, addr, dataDir string) *crashBroker {
	t.Helper()
	b := &crashBroker{out: &crashOutput{}, done: make(chan struct{})}
	b.cmd = exec.Command(bin, "serve", "--mqtt-addr", addr, "--ws-addr", "", "--http-addr", "",
		"--data-dir", dataDir, "--sys-interval", "0", "--log-level", "info")
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start skein serve: %v", err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = b.cmd.Process.Kill() // the test failed before it stopped the broker
			<-b.done
		}
		if t.Failed() {
			t.Logf("skein serve output:\n%s", crashTail(b.out.String(), 60))
		}
	})
	return b
}

// crashStart starts skein serve and waits until addr accepts connections.
func crashStart(t *testing.T, bin, addr, dataDir string) *crashBroker {
	t.Helper()
	b := crashServe(t, bin, addr, dataDir)
	deadline := time.Now().Add(crashTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return b
		}
		select {
		case <-b.done:
			t.Fatalf("skein serve exited at start (%v):\n%s", b.err, b.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("skein serve does not accept on %s after %v: %v", addr, crashTimeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling the port, bounded by the deadline
	}
}

// kill ends the broker with SIGKILL, as a crash or the OOM killer would.
func (b *crashBroker) kill(t *testing.T) {
	t.Helper()
	b.killed = true
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	b.wait(t)
}

// stop ends the broker with SIGTERM and checks that it exited cleanly.
func (b *crashBroker) stop(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	b.wait(t)
	if b.err != nil {
		t.Fatalf("skein serve after SIGTERM: %v\n%s", b.err, crashTail(b.out.String(), 40))
	}
}

func (b *crashBroker) wait(t *testing.T) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(crashTimeout):
		t.Fatalf("skein serve still running %v after the signal", crashTimeout)
	}
}

// crashCheckOutput fails the test if the broker's output shows a panic or a race.
func crashCheckOutput(t *testing.T, b *crashBroker) {
	t.Helper()
	out := b.out.String()
	for _, bad := range []string{"panic:", "fatal error", "DATA RACE", "goroutine "} {
		if strings.Contains(out, bad) {
			t.Errorf("skein serve output contains %q:\n%s", bad, crashTail(out, 60))
			return
		}
	}
}

// crashTail returns the last n lines of s.
func crashTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// crashFreeAddr returns a loopback address with a port nobody listens on.
func crashFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestCrash runs the broker binary through crashes and restarts. Its subtests
// share one build of the binary.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the skein binary")
	}
	bin := crashBinary(t, t.TempDir())
	t.Run("kill -9 under load", func(t *testing.T) { crashKillUnderLoad(t, bin) })
	t.Run("sigterm keeps everything", func(t *testing.T) { crashGracefulRestart(t, bin) })
	t.Run("damaged data file", func(t *testing.T) { crashDamagedFile(t, bin) })
	t.Run("data dir in use", func(t *testing.T) { crashLockedDataDir(t, bin) })
}

// crashLog is what the subscriber received and the publishers had acknowledged.
type crashLog struct {
	mu sync.Mutex // guards everything below
	// received lists the numbers received per topic, in arrival order, with
	// duplicates.
	received map[string][]int
	// acked holds the numbers each publisher got an acknowledgement for (PUBACK for
	// QoS 1, PUBREC for QoS 2: the broker's promise that the message is durable).
	acked map[string]map[int]bool
	// failures are protocol violations the clients saw.
	failures []string
}

func (l *crashLog) receive(topic string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received[topic] = append(l.received[topic], n)
}

func (l *crashLog) ack(topic string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[topic][n] = true
}

func (l *crashLog) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

func (l *crashLog) ackedCount(topic string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked[topic])
}

// missing returns the acknowledged numbers of topic not received yet.
func (l *crashLog) missing(topic string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := map[int]bool{}
	for _, n := range l.received[topic] {
		got[n] = true
	}
	var out []int
	for n := range l.acked[topic] {
		if !got[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

const (
	crashTopicQoS1 = "crash/q1"
	crashTopicQoS2 = "crash/q2"
	crashTopicEnd  = "crash/end"
)

// crashSubscriber is the persistent subscriber "crash-sub" (3.1.1, clean session 0,
// QoS 2 subscription to crash/#), reconnecting whenever the broker goes away.
//
// The client library keeps a QoS 2 message between PUBLISH and PUBREL in its Client
// object, and a new object (after a reconnect) does not have it: a message whose
// PUBREL comes after a reconnect would never reach OnMessage. So the subscriber
// records messages itself, from OnPacket, as a receiver that delivers on PUBLISH
// (the spec's method B, [MQTT-4.3.3-9] for a receiver): a QoS 2 PUBLISH is delivered
// when it arrives unless its packet id is still held from an earlier PUBLISH, and
// the id is held until its PUBREL. The held ids belong to the session, so they
// survive reconnects here, as the broker's inflight state does. With that, a QoS 2
// number recorded twice is a message the broker sent again after having sent its
// PUBREL (or sent twice as two deliveries): the broker's fault, not the client's.
func crashSubscriber(ctx context.Context, addr string, log *crashLog, ready chan<- struct{}) {
	held := map[uint16]bool{} // QoS 2 ids received and not yet released; only OnPacket (one reader at a time) uses it
	onPacket := func(sent bool, p proto.Packet) {
		if sent {
			return
		}
		switch p := p.(type) {
		case *proto.Publish:
			n, err := strconv.Atoi(string(p.Payload))
			if err != nil {
				log.fail("subscriber: payload %q is not a number", p.Payload)
				return
			}
			if p.QoS == 2 {
				if held[p.PacketID] {
					if !p.Dup {
						log.fail("subscriber: %s %d: QoS 2 PUBLISH with a held id %d without DUP", p.Topic, n, p.PacketID)
					}
					return
				}
				held[p.PacketID] = true
			}
			log.receive(p.Topic, n)
		case *proto.Pubrel:
			delete(held, p.PacketID)
		}
	}
	first := true
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := client.Connect(cctx, client.Options{
			Addr:     addr,
			Connect:  proto.Connect{ClientID: "crash-sub", CleanStart: false},
			OnPacket: onPacket,
		})
		cancel()
		if err != nil {
			crashPause(ctx, 20*time.Millisecond) // broker restarting: try again
			continue
		}
		if first {
			if c.Connack.SessionPresent {
				log.fail("subscriber: first connection with session present 1")
			}
			sctx, cancel := context.WithTimeout(ctx, crashTimeout)
			ack, err := c.Subscribe(sctx, &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: "crash/#", QoS: 2}}})
			cancel()
			if err != nil || ack.ReasonCodes[0] != 2 {
				log.fail("subscriber: subscribe: %v %v", err, ack)
				c.Close()
				return
			}
			first = false
			close(ready)
		} else if !c.Connack.SessionPresent {
			// The session (and its subscription) was lost; the test fails and the
			// rest of the run shows what else went.
			log.fail("subscriber: reconnected with session present 0")
		}
		select {
		case <-c.Done():
			c.Close()
		case <-ctx.Done():
			_ = c.Disconnect(nil) // the test is over
		}
	}
}

// crashPublisherQoS1 publishes 1, 2, 3… at QoS 1 on crash/q1 with the client
// library, one at a time, as a clean session. The library cannot resend a message
// on a new connection with its packet id and DUP, so after a reconnect the number
// whose PUBACK did not come is published again as a new message: QoS 1 allows the
// duplicate that may make.
func crashPublisherQoS1(ctx context.Context, addr string, log *crashLog) {
	n := 1
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := client.Connect(cctx, client.Options{Addr: addr, Connect: proto.Connect{ClientID: "crash-pub1", CleanStart: true}})
		cancel()
		if err != nil {
			crashPause(ctx, 20*time.Millisecond)
			continue
		}
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // not ctx: a publish in flight finishes
			err := c.Publish(pctx, &proto.Publish{Topic: crashTopicQoS1, QoS: 1, Payload: []byte(strconv.Itoa(n))})
			cancel()
			if err != nil {
				break // broker gone: reconnect and publish n again
			}
			log.ack(crashTopicQoS1, n)
			n++
		}
		c.Close()
	}
}

// crashPublisherQoS2 publishes 1, 2, 3… at QoS 2 on crash/q2 with a persistent
// session ("crash-pub2", clean session 0), speaking the protocol itself to do what
// a QoS 2 sender must after a reconnect: resend the PUBLISH with its packet id and
// DUP while no PUBREC came, or the PUBREL after it [MQTT-4.4.0-1]. Every number is
// therefore one message, to be delivered exactly once.
func crashPublisherQoS2(ctx context.Context, addr string, log *crashLog) {
	n, id := 1, uint16(1)
	sent := false     // the PUBLISH of n went out at least once: a resend carries DUP
	released := false // PUBREC of n arrived: PUBREL is what is left
	everAcked := false
	for ctx.Err() == nil {
		conn, r, present, err := crashRawConnect(ctx, addr, "crash-pub2")
		if err != nil {
			crashPause(ctx, 20*time.Millisecond)
			continue
		}
		if everAcked && !present {
			// The broker acknowledged a PUBREC for this session, which it only does
			// once the session is on disk.
			log.fail("QoS 2 publisher: reconnected with session present 0 after PUBRECs")
		}
		for ctx.Err() == nil || released {
			var out proto.Packet
			if released {
				out = &proto.Pubrel{PacketID: id}
			} else {
				out = &proto.Publish{Topic: crashTopicQoS2, QoS: 2, PacketID: id, Dup: sent, Payload: []byte(strconv.Itoa(n))}
				sent = true
			}
			in, err := crashRoundTrip(conn, r, out)
			if err != nil {
				break // broker gone: reconnect and resend
			}
			switch in := in.(type) {
			case *proto.Pubrec:
				if released || in.PacketID != id || in.ReasonCode.IsError() {
					log.fail("QoS 2 publisher: %s for %d (released %v), want PUBREC %d", crashPacket(in), n, released, id)
					conn.Close()
					return
				}
				log.ack(crashTopicQoS2, n)
				released, everAcked = true, true
			case *proto.Pubcomp:
				if !released || in.PacketID != id || in.ReasonCode != 0 {
					log.fail("QoS 2 publisher: %s for %d (released %v), want PUBCOMP %d", crashPacket(in), n, released, id)
					conn.Close()
					return
				}
				released, sent = false, false
				n++
				if id++; id == 0 {
					id = 1
				}
			default:
				log.fail("QoS 2 publisher: unexpected %s", crashPacket(in))
				conn.Close()
				return
			}
		}
		if ctx.Err() != nil && !released {
			b, _ := (&proto.Disconnect{}).Append(nil, proto.V311)
			_, _ = conn.Write(b) // best effort: the test is over
		}
		conn.Close()
		if ctx.Err() != nil && !released {
			return
		}
	}
}

// crashRawConnect connects with a persistent 3.1.1 session and returns session present.
func crashRawConnect(ctx context.Context, addr, id string) (net.Conn, *bufio.Reader, bool, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, nil, false, err
	}
	r := bufio.NewReader(conn)
	in, err := crashRoundTrip(conn, r, &proto.Connect{Version: proto.V311, ClientID: id, CleanStart: false})
	if err != nil {
		conn.Close()
		return nil, nil, false, err
	}
	ack, ok := in.(*proto.Connack)
	if !ok || ack.ReasonCode != 0 {
		conn.Close()
		return nil, nil, false, fmt.Errorf("CONNECT answered with %s", crashPacket(in))
	}
	return conn, r, ack.SessionPresent, nil
}

// crashRoundTrip sends out and reads the answer, within a deadline.
func crashRoundTrip(conn net.Conn, r *bufio.Reader, out proto.Packet) (proto.Packet, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second)) // a dead broker shows in the write or read
	b, err := out.Append(nil, proto.V311)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(b); err != nil {
		return nil, err
	}
	return proto.ReadPacket(r, proto.V311, 0)
}

func crashPacket(p proto.Packet) string { return fmt.Sprintf("%s %+v", p.Type(), p) }

// crashPause waits d or until ctx ends: the pause between reconnect attempts.
func crashPause(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// crashEventually polls cond until it holds or crashTimeout passes.
func crashEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(crashTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
}

func crashKillUnderLoad(t *testing.T, bin string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SKEIN_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SKEIN_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("kill schedule seed %d (rerun with SKEIN_CRASH_SEED=%d)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, seed))

	dataDir := t.TempDir()
	addr := crashFreeAddr(t)
	b := crashStart(t, bin, addr, dataDir)
	log := &crashLog{received: map[string][]int{}, acked: map[string]map[int]bool{crashTopicQoS1: {}, crashTopicQoS2: {}}}

	ctx, cancel := context.WithCancel(context.Background())
	pubCtx, stopPublishers := context.WithCancel(ctx)
	var wg, pubs sync.WaitGroup
	defer func() {
		cancel()
		pubs.Wait()
		wg.Wait()
	}()
	ready := make(chan struct{})
	wg.Go(func() { crashSubscriber(ctx, addr, log, ready) })
	select {
	case <-ready:
	case <-time.After(crashTimeout):
		t.Fatal("the subscriber did not subscribe")
	}
	pubs.Go(func() { crashPublisherQoS1(pubCtx, addr, log) })
	pubs.Go(func() { crashPublisherQoS2(pubCtx, addr, log) })

	const cycles = 3
	for i := range cycles {
		// Let traffic flow: some new acknowledgements since the last start, then a
		// random while longer, so the kill lands anywhere in the flows.
		q1, q2 := log.ackedCount(crashTopicQoS1), log.ackedCount(crashTopicQoS2)
		crashEventually(t, "publishers acknowledged after a start", func() bool {
			return log.ackedCount(crashTopicQoS1) > q1+5 && log.ackedCount(crashTopicQoS2) > q2+5
		})
		run := time.Duration(200+rnd.IntN(800)) * time.Millisecond
		crashPause(ctx, run)
		b.kill(t)
		crashCheckOutput(t, b)
		t.Logf("cycle %d: SIGKILL after %v more; acknowledged so far: %d QoS 1, %d QoS 2", i+1, run,
			log.ackedCount(crashTopicQoS1), log.ackedCount(crashTopicQoS2))
		b = crashStart(t, bin, addr, dataDir)
	}
	q1, q2 := log.ackedCount(crashTopicQoS1), log.ackedCount(crashTopicQoS2)
	crashEventually(t, "publishers acknowledged after the last start", func() bool {
		return log.ackedCount(crashTopicQoS1) > q1+5 && log.ackedCount(crashTopicQoS2) > q2+5
	})
	stopPublishers()
	pubs.Wait()

	// Every acknowledged message arrives (the subscriber may still be catching up).
	deadline := time.Now().Add(crashTimeout)
	for len(log.missing(crashTopicQoS1))+len(log.missing(crashTopicQoS2)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
	// Then an end marker: what the broker still had for the subscriber (a late
	// duplicate) is delivered before it.
	ectx, ecancel := context.WithTimeout(ctx, crashTimeout)
	defer ecancel()
	if end, err := client.Connect(ectx, client.Options{Addr: addr, Connect: proto.Connect{ClientID: "crash-end", CleanStart: true}}); err != nil {
		t.Errorf("end marker: %v", err)
	} else {
		if err := end.Publish(ectx, &proto.Publish{Topic: crashTopicEnd, QoS: 1, Payload: []byte("0")}); err != nil {
			t.Errorf("end marker: %v", err)
		}
		end.Close()
		crashEventually(t, "the end marker", func() bool {
			log.mu.Lock()
			defer log.mu.Unlock()
			return len(log.received[crashTopicEnd]) > 0
		})
	}
	cancel()
	wg.Wait()
	b.stop(t)
	crashCheckOutput(t, b)

	log.mu.Lock()
	defer log.mu.Unlock()
	for _, f := range log.failures {
		t.Error(f)
	}
	for _, topic := range []string{crashTopicQoS1, crashTopicQoS2} {
		got := log.received[topic]
		t.Logf("%s: %d acknowledged, %d received (with duplicates)", topic, len(log.acked[topic]), len(got))
		seen := map[int]bool{}
		var firsts []int
		for _, n := range got {
			if seen[n] {
				if topic == crashTopicQoS2 {
					t.Errorf("%s: %d delivered twice at QoS 2", topic, n)
				}
				continue
			}
			seen[n] = true
			firsts = append(firsts, n)
		}
		var lost []int
		for n := range log.acked[topic] {
			if !seen[n] {
				lost = append(lost, n)
			}
		}
		slices.Sort(lost)
		if len(lost) > 0 {
			t.Errorf("%s: %d acknowledged messages never delivered: %v", topic, len(lost), crashHeadInts(lost, 20))
		}
		if !slices.IsSorted(firsts) {
			for i := 1; i < len(firsts); i++ {
				if firsts[i] < firsts[i-1] {
					t.Errorf("%s: order lost: %d arrived (first) after %d", topic, firsts[i], firsts[i-1])
					break
				}
			}
		}
	}
}

func crashHeadInts(s []int, n int) string {
	if len(s) <= n {
		return fmt.Sprint(s)
	}
	return fmt.Sprint(s[:n]) + "…"
}

func crashGracefulRestart(t *testing.T, bin string) {
	dataDir := t.TempDir()
	addr := crashFreeAddr(t)
	b := crashStart(t, bin, addr, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), crashTimeout)
	defer cancel()

	// A 5.0 persistent subscriber leaves; QoS 1 and 2 messages queue for it, and
	// retained messages are set and cleared.
	subOpts := client.Options{Addr: addr, Connect: proto.Connect{Version: proto.V5, ClientID: "term-sub", CleanStart: true}}
	subOpts.Connect.Props.SessionExpiry = 3600
	subOpts.Connect.Props.Set(proto.PropSessionExpiry)
	sub, err := client.Connect(ctx, subOpts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: "g/#", QoS: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Disconnect(nil); err != nil {
		t.Fatal(err)
	}
	pub, err := client.Connect(ctx, client.Options{Addr: addr, Connect: proto.Connect{ClientID: "term-pub", CleanStart: true}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := 1; i <= n; i++ {
		if err := pub.Publish(ctx, &proto.Publish{Topic: "g/t", QoS: byte(1 + i%2), Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for _, m := range []struct{ topic, payload string }{{"ret/kept", "old"}, {"ret/gone", "x"}, {"ret/kept", "kept"}, {"ret/gone", ""}} {
		if err := pub.Publish(ctx, &proto.Publish{Topic: m.topic, QoS: 1, Retain: true, Payload: []byte(m.payload)}); err != nil {
			t.Fatal(err)
		}
	}
	pub.Close()

	b.stop(t)
	crashCheckOutput(t, b)
	b = crashStart(t, bin, addr, dataDir)

	// PUBLISHes are recorded as they arrive (OnMessage would see a QoS 2 message only
	// at its PUBREL, after QoS 1 messages that came later).
	var mu sync.Mutex // guards got
	var got []string
	gotAll := make(chan struct{})
	subOpts.Connect.CleanStart = false
	subOpts.OnPacket = func(sent bool, p proto.Packet) {
		pub, ok := p.(*proto.Publish)
		if sent || !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s q%d", pub.Payload, pub.QoS))
		if len(got) == n {
			close(gotAll)
		}
	}
	sub, err = client.Connect(ctx, subOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if !sub.Connack.SessionPresent {
		t.Fatal("after SIGTERM and a restart: session present 0")
	}
	select {
	case <-gotAll:
	case <-ctx.Done():
	}
	mu.Lock()
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, fmt.Sprintf("%d q%d", i, 1+i%2))
	}
	if !slices.Equal(got, want) {
		t.Errorf("after SIGTERM and a restart, received %d messages %v…, want %d in order", len(got), got[:min(len(got), 10)], n)
	}
	mu.Unlock()

	// Retained: ret/kept with its last value, ret/gone cleared. A message published
	// after subscribing comes after the retained ones, so its arrival ends the wait.
	retained := make(chan string, 10)
	reader, err := client.Connect(ctx, client.Options{Addr: addr, Connect: proto.Connect{ClientID: "term-reader", CleanStart: true},
		OnMessage: func(p *proto.Publish) { retained <- fmt.Sprintf("%s=%s retain=%v", p.Topic, p.Payload, p.Retain) }})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, err := reader.Subscribe(ctx, &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: "ret/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := reader.Publish(ctx, &proto.Publish{Topic: "ret/zz", QoS: 1, Payload: []byte("end")}); err != nil {
		t.Fatal(err)
	}
	var gotRetained []string
	for {
		select {
		case s := <-retained:
			if s == "ret/zz=end retain=false" {
				if want := []string{"ret/kept=kept retain=true"}; !slices.Equal(gotRetained, want) {
					t.Errorf("retained after SIGTERM and a restart: %q, want %q", gotRetained, want)
				}
				b.stop(t)
				crashCheckOutput(t, b)
				return
			}
			gotRetained = append(gotRetained, s)
		case <-ctx.Done():
			t.Fatalf("retained messages: got %q and no end marker", gotRetained)
		}
	}
}

// crashFill runs a broker on dataDir and leaves a persistent session with queued
// messages and retained messages in its file, then stops it with SIGTERM.
func crashFill(t *testing.T, bin, dataDir string) {
	t.Helper()
	addr := crashFreeAddr(t)
	b := crashStart(t, bin, addr, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), crashTimeout)
	defer cancel()
	sub, err := client.Connect(ctx, client.Options{Addr: addr, Connect: proto.Connect{ClientID: "fill-sub", CleanStart: false}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: "f/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	_ = sub.Disconnect(nil) // its session stays
	pub, err := client.Connect(ctx, client.Options{Addr: addr, Connect: proto.Connect{ClientID: "fill-pub", CleanStart: true}, MaxInflight: 50})
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 1000)
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := range 300 {
		wg.Go(func() {
			errs <- pub.Publish(ctx, &proto.Publish{Topic: fmt.Sprintf("f/%d", i), QoS: 1, Retain: i%3 == 0, Payload: payload})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pub.Close()
	b.stop(t)
}

func crashDamagedFile(t *testing.T, bin string) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"truncated to half its used size", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var used int64
			_ = db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
			db.Close()
			if err := os.Truncate(path, used/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated at the freelist page", func(t *testing.T, path string) {
			// The meta pages point past the end of the file: reading there faults.
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second, PreLoadFreelist: true})
			if err != nil {
				t.Fatal(err)
			}
			var at int64
			_ = db.View(func(tx *bolt.Tx) error {
				for id := 2; ; id++ {
					p, err := tx.Page(id)
					if err != nil || p == nil {
						return err
					}
					if p.Type == "freelist" {
						at = int64(id) * int64(db.Info().PageSize)
					}
					id += p.OverflowCount
				}
			})
			db.Close()
			if at == 0 {
				t.Fatal("no freelist page in the file")
			}
			if err := os.Truncate(path, at); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			rnd := rand.New(rand.NewPCG(3, 4))
			b := make([]byte, fi.Size())
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dataDir := t.TempDir()
			crashFill(t, bin, dataDir)
			path := filepath.Join(dataDir, "skein.db")
			c.damage(t, path)
			b := crashServe(t, bin, crashFreeAddr(t), dataDir)
			b.wait(t)
			out := b.out.String()
			var exit *exec.ExitError
			if !errors.As(b.err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("skein serve on a damaged file: %v, want a non-zero exit\n%s", b.err, crashTail(out, 20))
			}
			if !strings.Contains(out, path) {
				t.Errorf("the message does not name %s:\n%s", path, crashTail(out, 20))
			}
			for _, bad := range []string{"panic:", "goroutine ", "fatal error"} {
				if strings.Contains(out, bad) {
					t.Errorf("skein serve crashed instead of refusing the file with a message (output has %q):\n%s", bad, crashTail(out, 30))
					break
				}
			}
		})
	}
}

func crashLockedDataDir(t *testing.T, bin string) {
	dataDir := t.TempDir()
	first := crashStart(t, bin, crashFreeAddr(t), dataDir)
	second := crashServe(t, bin, crashFreeAddr(t), dataDir)
	start := time.Now()
	second.wait(t)
	out := second.out.String()
	if second.err == nil {
		t.Fatalf("a second skein serve on a data dir in use exited 0:\n%s", out)
	}
	if !strings.Contains(out, "locked by another process") || !strings.Contains(out, filepath.Join(dataDir, "skein.db")) {
		t.Errorf("second skein serve: want a message naming the file and saying it is locked by another process:\n%s", crashTail(out, 20))
	}
	t.Logf("second broker gave up after %v", time.Since(start).Round(time.Millisecond))
	first.stop(t)
	crashCheckOutput(t, first)
}
