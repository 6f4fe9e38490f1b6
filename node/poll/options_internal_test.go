//go:build linux

package poll

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAcceptedOptions: accepted sockets have TCP_NODELAY and the keepalive, set
// once on the listening socket (Listen) and inherited.
func TestAcceptedOptions(t *testing.T) {
	c, nc, stop := acceptOne(t)
	defer nc.Close()
	c.mu.RLock()
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15},
	} {
		if v, err := unix.GetsockoptInt(c.fd, o.level, o.opt); err != nil || v != o.want {
			t.Errorf("%s = %d, %v; want %d", o.name, v, err, o.want)
		}
	}
	c.mu.RUnlock()
	stop()
}

// acceptOne starts a poller accepting on a loopback listener, dials it, and
// returns the accepted connection (whose handler does nothing), the client's side,
// and stop, which closes the listener and then the poller.
func acceptOne(t *testing.T) (c *Conn, nc net.Conn, stop func()) {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := Listen(ln.(*net.TCPListener))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Conn, 1)
	done := make(chan error, 1)
	go func() {
		done <- p.Accept(pl, func(c *Conn) Handler { got <- c; return optHandler{} })
	}()
	nc, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return <-got, nc, func() {
		pl.Close()
		<-done
		p.Close()
	}
}

type optHandler struct{}

func (optHandler) Input() bool { return true }
