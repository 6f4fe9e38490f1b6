package poll

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Handler serves one connection's input.
type Handler interface {
	// Input runs on a goroutine of its own when the connection's socket has input or
	// hung up, never two at a time for one connection, and again if more input
	// arrived while it ran. It reads what is there (TryRead until it gets nothing,
	// or less than it asked for), handles it and returns true; or, once it is done
	// with the connection, it returns false, and the descriptor is closed and
	// Input is not called again.
	Input() bool
}

// Input states of a Conn.
const (
	inputIdle    = iota // no handler running
	inputRunning        // a handler runs
	inputAgain          // a handler runs and more input arrived since it started
)

// Conn is a TCP connection registered with a Poller. Its methods may be called from
// any goroutine; TryRead only from the handler.
type Conn struct {
	p     *Poller
	h     Handler
	slot  int    // the descriptor number: the connection's index in the poller's table
	gen   uint32 // registration generation, in the epoll event; set by register
	state atomic.Uint32
	raddr netip.AddrPort

	// mu is held for reading by every system call on fd and for writing while fd is
	// closed, so fd is never used after it was closed (and perhaps reused).
	mu     sync.RWMutex
	fd     int         // -1 once closed
	shut   atomic.Bool // Close shut the socket down
	hup    atomic.Bool // the loop saw the peer's end of stream, a hang-up or an error
	wantW  atomic.Bool // a writer waits for room: the loop must wake it
	wdl    atomic.Int64
	waiter atomic.Pointer[waiter]
}

// waiter is what a writer waiting for room parks on; made on the first wait, so a
// connection that never fills its socket's buffer has none.
type waiter struct {
	ch chan struct{} // capacity 1
	t  *time.Timer   // the write deadline; used by the one writer only
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.raddr) }

// RemoteAddrPort returns the peer's address without allocating.
func (c *Conn) RemoteAddrPort() netip.AddrPort { return c.raddr }

// input is the loop's report of input: start the handler, or tell the running one
// to go round again.
func (c *Conn) input() {
	for {
		switch c.state.Load() {
		case inputIdle:
			if c.state.CompareAndSwap(inputIdle, inputRunning) {
				c.p.start(c)
				return
			}
		case inputRunning:
			if c.state.CompareAndSwap(inputRunning, inputAgain) {
				return
			}
		default:
			return
		}
	}
}

// serve runs the handler until no input arrived during its last call, or until it
// is done with the connection.
func (c *Conn) serve() {
	for {
		c.state.Store(inputRunning) // input arriving from here on calls it again
		if !c.h.Input() {
			c.p.forget(c)
			c.closeFD()
			return // state stays running: input is never dispatched again
		}
		if c.state.CompareAndSwap(inputRunning, inputIdle) {
			return
		}
	}
}

// HungUp reports whether the peer ended its stream (or the socket hung up or
// failed). Until then a read that returns less than it asked for has emptied the
// socket, and input arriving later runs the handler again; after it, the handler
// must read on until TryRead reports the end of the stream or an error, because
// the end was already reported.
func (c *Conn) HungUp() bool { return c.hup.Load() }

// TryRead reads what the socket has, without waiting: n > 0 bytes, or 0 and io.EOF
// at the end of the stream, or 0 and no error when there is nothing to read now.
func (c *Conn) TryRead(b []byte) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fd < 0 {
		return 0, ErrClosed
	}
	for {
		n, err := unix.Read(c.fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, nil
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// write makes one write call; n is 0 and again true when the socket has no room.
func (c *Conn) write(b []byte) (n int, again bool, err error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fd < 0 {
		return 0, false, ErrClosed
	}
	for {
		n, err := unix.Write(c.fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, true, nil
		case err != nil:
			return 0, false, os.NewSyscallError("write", err)
		}
		return n, false, nil
	}
}

// Write writes all of b. When the socket has no room it waits until the loop sees
// room, or until the write deadline, when it fails with os.ErrDeadlineExceeded.
// One goroutine writes at a time.
func (c *Conn) Write(b []byte) (int, error) {
	written := 0
	armed := false
	for len(b) > 0 {
		n, again, err := c.write(b)
		if err != nil {
			return written, err
		}
		if n > 0 {
			written += n
			b = b[n:]
			armed = false
			continue
		}
		if !again {
			return written, io.ErrShortWrite // a socket never writes nothing without an error
		}
		if !armed {
			// Ask the loop for the next writable event, then try once more: room
			// made between the failed write and the request gives no new event.
			// The waiter exists before the request, so that the loop's wake-up
			// for that event always has a channel to land in.
			c.waiterOf()
			c.wantW.Store(true)
			armed = true
			continue
		}
		if err := c.waitWritable(); err != nil {
			return written, err
		}
		armed = false
	}
	return written, nil
}

// waitWritable parks until the loop reports room (or a hang-up), the deadline
// changes, or the deadline passes.
func (c *Conn) waitWritable() error {
	if testHookWait != nil {
		testHookWait()
	}
	w := c.waiterOf()
	var expired <-chan time.Time
	if dl := c.wdl.Load(); dl != 0 {
		d := time.Until(time.Unix(0, dl))
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		if w.t == nil {
			w.t = time.NewTimer(d)
		} else {
			w.t.Reset(d)
		}
		expired = w.t.C
		defer w.t.Stop()
	}
	if c.shut.Load() {
		return nil // the write fails now
	}
	select {
	case <-w.ch:
		return nil
	case <-expired:
		return os.ErrDeadlineExceeded
	}
}

// testHookWait, when set by a test, runs as a writer starts to wait for room.
var testHookWait func()

// waiterOf returns c's waiter, made on the first call.
func (c *Conn) waiterOf() *waiter {
	if w := c.waiter.Load(); w != nil {
		return w
	}
	w := &waiter{ch: make(chan struct{}, 1)}
	if !c.waiter.CompareAndSwap(nil, w) {
		w = c.waiter.Load()
	}
	return w
}

// writable is the loop's report of room in the socket's buffer.
func (c *Conn) writable() {
	if c.wantW.CompareAndSwap(true, false) {
		c.wake()
	}
}

// wake wakes a writer parked in waitWritable, if any.
func (c *Conn) wake() {
	if w := c.waiter.Load(); w != nil {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}

// SetWriteDeadline bounds the writes in progress and to come; zero means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var dl int64
	if !t.IsZero() {
		dl = t.UnixNano()
	}
	c.wdl.Store(dl)
	c.wake() // a parked writer looks at the new deadline
	return nil
}

// Close shuts the socket down in both directions: the peer sees the end of the
// stream, a waiting writer fails, and the handler is called and reads the end of
// the stream. The descriptor itself is closed once the handler is done.
func (c *Conn) Close() error {
	c.mu.RLock()
	if c.fd >= 0 && !c.shut.Swap(true) {
		_ = unix.Shutdown(c.fd, unix.SHUT_RDWR) // fails only on a socket already gone
	}
	c.mu.RUnlock()
	c.wake()
	return nil
}

// closeFD closes the descriptor once no system call uses it.
func (c *Conn) closeFD() {
	c.mu.Lock()
	fd := c.fd
	c.fd = -1
	c.mu.Unlock()
	if fd >= 0 {
		_ = unix.Close(fd) // nothing to do about a failed close of a socket
	}
	c.wake()
}
