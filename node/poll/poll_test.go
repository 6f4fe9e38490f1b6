//go:build linux

package poll_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skein-mq/skein/node/poll"
)

// TestMain fails the package if a test leaves a goroutine behind: the loop, the
// accept loops and every handler goroutine must be gone once the pollers are closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const timeout = 10 * time.Second

// server is a poller accepting on a loopback listener; each connection gets the
// handler newHandler makes.
type server struct {
	p    *poll.Poller
	ln   *poll.Listener
	addr string
	done chan error
	mu   sync.Mutex // guards cs and hs
	cs   []*poll.Conn
	hs   []poll.Handler
}

func start(t *testing.T, newHandler func(*poll.Conn) poll.Handler) *server {
	t.Helper()
	p, err := poll.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	pl, err := poll.Listen(ln.(*net.TCPListener))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	s := &server{p: p, ln: pl, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() {
		s.done <- p.Accept(pl, func(c *poll.Conn) poll.Handler {
			h := newHandler(c)
			s.mu.Lock()
			s.cs = append(s.cs, c)
			s.hs = append(s.hs, h)
			s.mu.Unlock()
			return h
		})
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop closes the listener and the poller (closing what is still registered).
func (s *server) stop(t *testing.T) {
	if s.ln == nil {
		return
	}
	_ = s.ln.Close()
	if err := <-s.done; err == nil {
		t.Errorf("Accept returned no error after Close")
	}
	if err := s.p.Close(); err != nil {
		t.Errorf("Poller.Close: %v", err)
	}
	s.ln = nil
}

// conn waits for the i-th accepted connection.
func (s *server) conn(t *testing.T, i int) *poll.Conn {
	c, _ := s.accepted(t, i)
	return c
}

// accepted waits for the i-th accepted connection and returns it with its handler.
func (s *server) accepted(t *testing.T, i int) (*poll.Conn, poll.Handler) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		if i < len(s.cs) {
			c, h := s.cs[i], s.hs[i]
			s.mu.Unlock()
			return c, h
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("connection %d never accepted", i)
		}
		time.Sleep(time.Millisecond)
	}
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(timeout))
	return nc.(*net.TCPConn)
}

// echo writes back what it reads, counting its calls and checking that two never
// overlap; it is done at the end of the stream.
type echo struct {
	c       *poll.Conn
	running atomic.Int32
	calls   atomic.Int32
	overlap atomic.Bool
	ended   chan error // the error that ended it (io.EOF for the end of the stream)
}

func newEcho(c *poll.Conn) poll.Handler { return &echo{c: c, ended: make(chan error, 1)} }

func (e *echo) Input() bool {
	if e.running.Add(1) != 1 {
		e.overlap.Store(true)
	}
	defer e.running.Add(-1)
	e.calls.Add(1)
	buf := make([]byte, 7) // small, so one call often reads several times
	for {
		n, err := e.c.TryRead(buf)
		if n > 0 {
			if _, werr := e.c.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			e.ended <- err
			return false
		}
		if n < len(buf) && !e.c.HungUp() {
			return true
		}
	}
}

func TestEchoInPieces(t *testing.T) {
	s := start(t, newEcho)
	nc := dial(t, s.addr)
	var want []byte
	got := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for i := range 200 {
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%13)
		want = append(want, msg...)
		if _, err := nc.Write(msg); err != nil {
			t.Fatalf("write: %v", err)
		}
		for len(got) < len(want) {
			n, err := nc.Read(buf)
			if err != nil {
				t.Fatalf("read after %d of %d bytes: %v", len(got), len(want), err)
			}
			got = append(got, buf[:n]...)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echoed %q, want %q", got, want)
	}
}

// TestHandlerGoroutinesReused: a connection whose input comes in many rounds is
// served by one goroutine, reused, rather than a new one per round.
func TestHandlerGoroutinesReused(t *testing.T) {
	s := start(t, newEcho)
	nc := dial(t, s.addr)
	buf := make([]byte, 16)
	const rounds = 200
	for i := range rounds {
		if _, err := nc.Write([]byte("ping")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, err := io.ReadFull(nc, buf[:4]); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	_, h := s.accepted(t, 0)
	if calls := h.(*echo).calls.Load(); calls < rounds/2 {
		t.Fatalf("Input called %d times for %d rounds: the test needs a call per round", calls, rounds)
	}
	if n := s.p.HandlerGoroutines(); n > 5 {
		t.Fatalf("%d handler goroutines started for %d rounds of input, want a few reused ones", n, rounds)
	}
}

// TestOneInputAtATime: input arriving while the handler runs makes it run again,
// never twice at once, and none is lost.
func TestOneInputAtATime(t *testing.T) {
	s := start(t, newEcho)
	nc := dial(t, s.addr)
	const n = 20000
	go func() {
		for range n / 10 {
			_, _ = nc.Write([]byte("0123456789")) // a failure shows as a short echo
		}
	}()
	total := 0
	buf := make([]byte, 4096)
	for total < n {
		k, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", total, n, err)
		}
		total += k
	}
	_, h := s.accepted(t, 0)
	if h.(*echo).overlap.Load() {
		t.Fatalf("two Input calls ran at once")
	}
}

// TestHalfCloseByPeer: data followed by the peer's end of stream is all read, then
// the end is reported once, and the handler is not called again.
func TestHalfCloseByPeer(t *testing.T) {
	s := start(t, newEcho)
	nc := dial(t, s.addr)
	msg := bytes.Repeat([]byte("x"), 1000)
	if _, err := nc.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := nc.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	got, err := io.ReadAll(nc) // ends when the handler is done and the descriptor closed
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes, %v; want the %d sent, then EOF", len(got), err, len(msg))
	}
	_, h := s.accepted(t, 0)
	e := h.(*echo)
	if err := <-e.ended; err != io.EOF {
		t.Fatalf("handler ended on %v, want io.EOF", err)
	}
	calls := e.calls.Load()
	time.Sleep(20 * time.Millisecond) // nothing may call it again; a late call shows below
	if e.calls.Load() != calls {
		t.Fatalf("Input called after it returned false")
	}
}

// idle ignores input; tests drive its connection directly.
type idle struct{}

func (*idle) Input() bool { return true }

// TestWriteWaitsForRoom: a write larger than the socket buffers waits while the peer
// does not read, and completes once it does.
func TestWriteWaitsForRoom(t *testing.T) {
	s := start(t, func(*poll.Conn) poll.Handler { return &idle{} })
	nc := dial(t, s.addr)
	c := s.conn(t, 0)
	big := bytes.Repeat([]byte("w"), 16<<20)
	wrote := make(chan error, 1)
	go func() {
		n, err := c.Write(big)
		if err == nil && n != len(big) {
			err = io.ErrShortWrite
		}
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("16 MiB written to a peer that does not read (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	n, err := io.CopyN(io.Discard, nc, int64(len(big)))
	if err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// TestWriteDeadline: a write to a peer that never reads fails with
// os.ErrDeadlineExceeded at its deadline; Close fails a waiting write at once.
func TestWriteDeadline(t *testing.T) {
	s := start(t, func(*poll.Conn) poll.Handler { return &idle{} })
	dial(t, s.addr)
	dial(t, s.addr)
	big := bytes.Repeat([]byte("d"), 32<<20)

	c := s.conn(t, 0)
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Write(big); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a stalled peer: %v, want the deadline", err)
	}

	c = s.conn(t, 1)
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(big)
		wrote <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it block; if it has not yet, Close fails it anyway
	_ = c.Close()
	if err := <-wrote; err == nil {
		t.Fatalf("Write after Close succeeded")
	}
}

// ender is done at the end of the stream (or on an error).
type ender struct {
	c     *poll.Conn
	ended chan error
}

func (h *ender) Input() bool {
	buf := make([]byte, 512)
	for {
		n, err := h.c.TryRead(buf)
		if err != nil {
			h.ended <- err
			return false
		}
		if n == 0 {
			return true
		}
	}
}

// TestCloseEndsHandler: Close shuts the socket down; the peer sees the end of the
// stream, the handler reads it and is done, and the connection is closed for good.
func TestCloseEndsHandler(t *testing.T) {
	s := start(t, func(c *poll.Conn) poll.Handler { return &ender{c: c, ended: make(chan error, 1)} })
	nc := dial(t, s.addr)
	c, hh := s.accepted(t, 0)
	h := hh.(*ender)
	_ = c.Close()
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer read %v, want EOF", err)
	}
	if err := <-h.ended; err != io.EOF {
		t.Fatalf("handler ended on %v, want io.EOF", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		if _, err := c.TryRead(make([]byte, 1)); errors.Is(err, poll.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptor still open after the handler was done")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPollerCloseWithIdleConnections: closing the poller closes what is still
// registered (the peers see the end of the stream) and leaves no goroutine.
func TestPollerCloseWithIdleConnections(t *testing.T) {
	s := start(t, func(*poll.Conn) poll.Handler { return &idle{} })
	var ncs []*net.TCPConn
	for i := range 50 {
		ncs = append(ncs, dial(t, s.addr))
		s.conn(t, i)
	}
	s.stop(t)
	for i, nc := range ncs {
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Fatalf("connection %d still open after Poller.Close", i)
		}
	}
}

// TestAcceptRefused: a connection the admit function refuses is closed at once.
func TestAcceptRefused(t *testing.T) {
	s := start(t, func(*poll.Conn) poll.Handler { return nil })
	nc := dial(t, s.addr)
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatalf("refused connection still open")
	}
}
