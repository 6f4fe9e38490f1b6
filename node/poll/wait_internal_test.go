//go:build linux

package poll

import (
	"io"
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
	c, nc, stop := acceptOne(t)
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
	stop()
}
