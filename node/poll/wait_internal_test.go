//go:build linux

package poll

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestFirstWaitForRoomIsWoken: the first time a connection's writer finds its
// socket full, room that the loop reports between the writer's request for the
// event and its parking still wakes it. The hook holds the writer there while the
// peer starts reading; a wake-up that found no waiter to land in was lost, and the
// write failed at its deadline although the peer read everything.
func TestFirstWaitForRoomIsWoken(t *testing.T) {
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
	nc, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := <-got
	reading := make(chan struct{})
	var once sync.Once
	testHookWait = func() {
		once.Do(func() {
			close(reading)                     // the peer reads: the loop reports room
			time.Sleep(300 * time.Millisecond) // while the writer is not parked yet
		})
	}
	defer func() { testHookWait = nil }()
	go func() {
		<-reading
		_, _ = io.Copy(io.Discard, nc)
	}()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Write(make([]byte, 32<<20))
	if err != nil {
		t.Errorf("Write stopped after %d bytes: %v (the wake-up for the room was lost)", n, err)
	}
	c.Close()
	nc.Close()
	pl.Close()
	<-done
	p.Close()
}
