//go:build !linux

package poll

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// Supported reports whether this system has the event loop.
const Supported = false

// ErrClosed is returned by the operations of a closed Poller or Conn.
var ErrClosed = errors.New("poll: closed")

var errUnsupported = errors.New("poll: no event loop on this system")

// Poller is not available on this system.
type Poller struct{}

// New fails on this system.
func New() (*Poller, error) { return nil, errUnsupported }

// Close does nothing.
func (p *Poller) Close() error { return nil }

// HandlerGoroutines returns 0: there is no event loop here.
func (p *Poller) HandlerGoroutines() uint64 { return 0 }

// Handler serves one connection's input.
type Handler interface{ Input() bool }

// Admit decides about an accepted connection.
type Admit func(c *Conn) Handler

// Listener is not available on this system.
type Listener struct{}

// Listen fails on this system.
func Listen(*net.TCPListener) (*Listener, error) { return nil, errUnsupported }

// Addr returns nil.
func (l *Listener) Addr() net.Addr { return nil }

// Close does nothing.
func (l *Listener) Close() error { return nil }

// Accept fails on this system.
func (p *Poller) Accept(*Listener, Admit) error { return errUnsupported }

// IsTemporary reports false.
func IsTemporary(error) bool { return false }

// Conn is not available on this system.
type Conn struct{}

// RemoteAddr returns nil.
func (c *Conn) RemoteAddr() net.Addr { return nil }

// RemoteAddrPort returns the zero address.
func (c *Conn) RemoteAddrPort() netip.AddrPort { return netip.AddrPort{} }

// HungUp reports false.
func (c *Conn) HungUp() bool { return false }

// TryRead fails on this system.
func (c *Conn) TryRead([]byte) (int, error) { return 0, errUnsupported }

// Write fails on this system.
func (c *Conn) Write([]byte) (int, error) { return 0, errUnsupported }

// SetWriteDeadline fails on this system.
func (c *Conn) SetWriteDeadline(time.Time) error { return errUnsupported }

// Close does nothing.
func (c *Conn) Close() error { return nil }
