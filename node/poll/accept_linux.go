package poll

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Listener accepts connections from a TCP listener's socket without making a
// net.Conn for each. A net.TCPListener does not let its descriptor be waited on
// (its raw connection has no Read), so the Listener holds a duplicate of the
// descriptor as an *os.File, which the runtime's poller watches. Close closes both.
type Listener struct {
	ln *net.TCPListener
	f  *os.File
}

// Listen prepares ln for Accept.
func Listen(ln *net.TCPListener) (*Listener, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("poll: listener descriptor: %w", err)
	}
	dup := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("poll: listener descriptor: %w", err)
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl", derr)
	}
	// Accepted sockets inherit these options from the listening socket on Linux,
	// which spares four system calls per connection. Failed options leave working
	// sockets, only slower or without probes.
	_ = unix.SetsockoptInt(dup, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = unix.SetsockoptInt(dup, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
	_ = unix.SetsockoptInt(dup, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
	// The duplicate shares the original's O_NONBLOCK, so os.NewFile hands it to the
	// runtime's poller.
	return &Listener{ln: ln, f: os.NewFile(uintptr(dup), "listener")}, nil
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops Accept and closes the listening socket.
func (l *Listener) Close() error {
	return errors.Join(l.f.Close(), l.ln.Close())
}

// Admit decides about an accepted connection: the handler for its input, or nil to
// close it at once. It runs on the accepting goroutine, before the connection's
// input is watched.
type Admit func(c *Conn) Handler

// Accept accepts connections from l into p until l is closed or accepting fails,
// and returns that error. Each connection has TCP_NODELAY and the keepalive a Go
// listener sets (probes after 15 s idle, every 15 s), from the listening socket, and
// is handed to admit. After a failure that may pass (IsTemporary), the caller may
// wait and call Accept again.
//
// admit runs inside the runtime's wait on the listener, which Close waits for: it
// must not wait for anything that closes l.
func (p *Poller) Accept(l *Listener, admit Admit) error {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("poll: listener descriptor: %w", err)
	}
	var aerr error
	// One accept4 per connection and one more, saying EAGAIN, per wake-up: the
	// runtime forgets the listener's readiness each time Read is called, so
	// returning between connections would cost a second EAGAIN each time.
	err = rc.Read(func(lfd uintptr) bool {
		for {
			// syscall's accept4, not x/sys/unix's, which asks the listener for its
			// protocol (one more system call) on every IPv4 accept.
			fd, sa, err := syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			switch {
			case err == syscall.EINTR || err == syscall.ECONNABORTED:
				continue
			case err == syscall.EAGAIN:
				return false // wait for the next connection
			case err != nil:
				aerr = os.NewSyscallError("accept4", err)
				return true
			}
			p.add(fd, sa, admit)
		}
	})
	if err != nil {
		return err
	}
	return aerr
}

// IsTemporary reports whether an Accept error may pass by itself: out of
// descriptors or memory.
func IsTemporary(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}

// add registers one accepted socket.
func (p *Poller) add(fd int, sa syscall.Sockaddr, admit Admit) {
	c := &Conn{p: p, fd: fd, slot: fd, raddr: addrPort(sa)}
	h := admit(c)
	if h == nil {
		_ = unix.Close(fd) // refused
		return
	}
	c.h = h
	if err := p.register(c); err != nil {
		// Not watched: end the connection through its handler, which reads the
		// end of the stream and lets the descriptor go.
		c.Close()
		c.input()
	}
}

// addrPort converts an accepted peer's address.
func addrPort(sa syscall.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
