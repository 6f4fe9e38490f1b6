package node_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// itShutdown runs b.Shutdown with nodetest's timeout and fails the test on an error.
// nodetest.Start's cleanup calls Shutdown once more, so every test here also checks
// that a second Shutdown is harmless.
func itShutdown(t *testing.T, b *nodetest.Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestShutdownDisconnects: Shutdown closes every connection; a 5.0 client first gets
// DISCONNECT 0x8B Server shutting down (section 4.13), an older one only the close,
// and a connection that never sent CONNECT is closed too.
func TestShutdownDisconnects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		v       proto.Version
		connect bool
	}{
		{"3.1.1 gets EOF", proto.V311, true},
		{"5.0 gets DISCONNECT 0x8B then EOF", proto.V5, true},
		{"before CONNECT gets EOF", proto.V311, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := nodetest.Start(t, node.DefaultConfig())
			c := nodetest.Dial(t, b.Addr, tc.v)
			if tc.connect {
				if ack := c.Connect(&proto.Connect{ClientID: "c", CleanStart: true}); ack.ReasonCode != 0 {
					t.Fatalf("CONNECT refused: %v", ack.ReasonCode)
				}
			} else {
				nodetest.Eventually(t, "the connection to be accepted", func() bool { return b.Stats.ConnectionsTotal.Load() == 1 })
			}
			itShutdown(t, b)
			itClosedWith(t, c, proto.ServerShuttingDown)
		})
	}
}

// TestShutdownFlushes: what is queued to a subscriber when Shutdown starts is written
// before its connection closes. The subscriber reads only once Shutdown has begun,
// and the messages are large, so most of them still wait in the broker's write queue
// then.
func TestShutdownFlushes(t *testing.T) {
	t.Parallel()
	const n = 50
	for _, v := range itVersions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			payload := make([]byte, 64<<10)
			b := nodetest.Start(t, node.DefaultConfig())
			sub := nodetest.Connect(t, b.Addr, v, "sub")
			sub.Subscribe(1, 0, "flush/t")
			pub := nodetest.Connect(t, b.Addr, v, "pub")
			for i := range n {
				copy(payload, strconv.Itoa(i))
				pub.Send(&proto.Publish{Topic: "flush/t", Payload: payload})
			}
			// The broker handles a client's packets in order: after PINGRESP every
			// message above is in the subscriber's queue.
			pub.Send(&proto.Pingreq{})
			nodetest.Expect[*proto.Pingresp](pub)

			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
				defer cancel()
				done <- b.Shutdown(ctx)
			}()
			for i := range n {
				p := nodetest.Expect[*proto.Publish](sub)
				if want := strconv.Itoa(i); string(p.Payload[:len(want)]) != want || len(p.Payload) != len(payload) {
					t.Fatalf("message %d: got payload starting %q (%d bytes)", i, p.Payload[:min(len(p.Payload), 4)], len(p.Payload))
				}
			}
			itClosedWith(t, sub, proto.ServerShuttingDown)
			if err := <-done; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
	}
}

// TestShutdownRefusesConnections: after Shutdown nothing is accepted, neither on the
// listener nor through ServeConn.
func TestShutdownRefusesConnections(t *testing.T) {
	t.Parallel()
	t.Run("listener", func(t *testing.T) {
		b := nodetest.Start(t, node.DefaultConfig())
		itShutdown(t, b)
		nc, err := net.DialTimeout("tcp", b.Addr, nodetest.Timeout)
		if err != nil {
			return // refused: the listener is closed
		}
		defer nc.Close()
		// Another listener took the port meanwhile, or the kernel completed the
		// handshake: the broker must not answer.
		_ = nc.SetReadDeadline(time.Now().Add(nodetest.Timeout))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Fatalf("a connection after Shutdown was served")
		}
	})
	t.Run("ServeConn", func(t *testing.T) {
		b := nodetest.Start(t, node.DefaultConfig())
		itShutdown(t, b)
		client, server := net.Pipe()
		defer client.Close()
		b.ServeConn(server)
		_ = client.SetReadDeadline(time.Now().Add(nodetest.Timeout))
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("read from a connection served after Shutdown: %v, want EOF (closed)", err)
		}
	})
}

// TestShutdownServe: Serve returns ErrClosed when Shutdown stops it, and at once
// (closing the listener) when called after Shutdown; Shutdown twice is harmless.
func TestShutdownServe(t *testing.T) {
	t.Parallel()
	b, err := node.New(node.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(ln) }()
	c := nodetest.Connect(t, ln.Addr().String(), proto.V5, "c")

	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, node.ErrClosed) {
			t.Fatalf("Serve returned %v, want ErrClosed", err)
		}
	case <-time.After(nodetest.Timeout):
		t.Fatal("Serve still running after Shutdown returned")
	}
	itClosedWith(t, c, proto.ServerShuttingDown)

	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(ln2); !errors.Is(err, node.ErrClosed) {
		t.Fatalf("Serve after Shutdown returned %v, want ErrClosed", err)
	}
	if nc, err := net.DialTimeout("tcp", ln2.Addr().String(), nodetest.Timeout); err == nil {
		nc.Close()
		t.Fatalf("Serve after Shutdown left its listener open")
	}
}
