package poll

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Supported reports whether this system has the event loop.
const Supported = true

// ErrClosed is returned by the operations of a closed Poller or Conn.
var ErrClosed = errors.New("poll: closed")

// Poller is one epoll instance and the goroutine that waits on it. Create it with
// New and stop it with Close, after every connection's handler returned false.
type Poller struct {
	epfd int
	// file wraps epfd so that the loop goroutine parks in the runtime's netpoller
	// (an epoll descriptor is readable when it has events) rather than in a
	// blocking epoll_wait that would hold an OS thread.
	file *os.File
	loop sync.WaitGroup // the loop goroutine
	run  sync.WaitGroup // handler goroutines (see workers.go)
	w    *workers

	mu     sync.Mutex // guards conns, gen and closed
	conns  []*Conn    // registered connections, by descriptor
	gen    uint32     // generation of the last registered connection
	closed bool
}

// New creates a poller and starts its loop.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	p := &Poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), w: newWorkers()}
	rc, err := p.file.SyscallConn()
	if err != nil {
		p.file.Close()
		return nil, fmt.Errorf("poll: epoll descriptor: %w", err)
	}
	p.loop.Add(1)
	go p.wait(rc)
	return p, nil
}

// maxEvents is how many events one epoll_wait returns at most.
const maxEvents = 256

// wait is the loop goroutine: it takes the ready events without blocking, and when
// there are none, parks until the runtime's poller sees the epoll descriptor
// readable. It returns when Close closes the descriptor.
func (p *Poller) wait(rc interface {
	Read(func(fd uintptr) bool) error
}) {
	defer p.loop.Done()
	events := make([]unix.EpollEvent, maxEvents)
	ready := make([]*Conn, maxEvents)
	_ = rc.Read(func(uintptr) bool { // returns once the file is closed
		for {
			n, err := unix.EpollWait(p.epfd, events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				return false // park until there are events
			}
			p.dispatch(events[:n], ready[:n])
			if n < len(events) {
				return false
			}
		}
	})
}

// dispatch hands each event to its connection: input starts (or re-runs) the
// handler, output wakes a writer waiting for room.
func (p *Poller) dispatch(events []unix.EpollEvent, ready []*Conn) {
	p.mu.Lock()
	for i := range events {
		ready[i] = nil
		fd := int(events[i].Fd)
		if fd < len(p.conns) {
			if c := p.conns[fd]; c != nil && c.gen == uint32(events[i].Pad) {
				ready[i] = c // else an event of a connection released since
			}
		}
	}
	p.mu.Unlock()
	for i, c := range ready {
		if c == nil {
			continue
		}
		ev := events[i].Events
		if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.hup.Store(true) // before input: the handler that runs next must see it
		}
		if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.input()
		}
		if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.writable()
		}
		ready[i] = nil
	}
}

// register adds an accepted connection to the table and to epoll.
func (p *Poller) register(c *Conn) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.gen++
	c.gen = p.gen
	if c.slot >= len(p.conns) {
		n := max(2*len(p.conns), c.slot+1, 64)
		conns := make([]*Conn, n)
		copy(conns, p.conns)
		p.conns = conns
	}
	p.conns[c.slot] = c
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     int32(c.slot),
		Pad:    int32(c.gen),
	}
	p.mu.Unlock()
	// The descriptor is open until the handler is done, which cannot happen
	// before input is reported, after this call.
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.slot, &ev); err != nil {
		p.forget(c)
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// forget removes c from the table; closing its descriptor removes it from epoll.
func (p *Poller) forget(c *Conn) {
	p.mu.Lock()
	if c.slot < len(p.conns) && p.conns[c.slot] == c {
		p.conns[c.slot] = nil
	}
	p.mu.Unlock()
}

// Close stops the loop and waits for the handler goroutines to return. It is meant
// for after every connection is done; a connection still registered is closed
// without its handler being told.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.file.Close() // wakes the loop, which returns
	p.loop.Wait()
	close(p.w.stop) // no more work comes: waiting handler goroutines exit
	p.run.Wait()
	p.mu.Lock()
	left := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range left {
		if c != nil {
			c.closeFD()
		}
	}
	return err
}
