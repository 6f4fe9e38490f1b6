//go:build unix

package node

import (
	"net"
	"os"
	"syscall"
)

// readRaw reads a TCP socket through its raw descriptor: a non-blocking read into a
// pooled buffer, and when there is nothing to read, the buffer goes back and the
// goroutine waits in the runtime's poller (which honours the read deadline).
func (c *conn) readRaw(nc net.Conn, rc syscall.RawConn) error {
	cleared := false
	for {
		tail := c.fr.tail()
		direct := len(tail) >= readBufSize // a large packet's rest goes straight to its buffer
		var buf []byte
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			dst := tail
			if !direct {
				buf = getReadBuf()
				dst = buf
			}
			for {
				n, rerr = syscall.Read(int(fd), dst)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				if !direct {
					bufs.put(buf)
					buf = nil
				}
				return false // wait for input
			}
			return true
		})
		if err == nil && rerr != nil {
			err = os.NewSyscallError("read", rerr)
		}
		if err != nil || n <= 0 {
			if buf != nil {
				bufs.put(buf)
			}
			if err == nil {
				err = c.fr.eof()
			}
			return err
		}
		c.b.Stats.BytesReceived.Add(int64(n))
		var data []byte
		if direct {
			c.fr.wrote(n)
		} else {
			data = buf[:n]
		}
		handled, err := c.consume(data)
		if buf != nil {
			bufs.put(buf) // consume kept nothing that aliases it
		}
		if err != nil {
			return err
		}
		c.readDeadline(nc, handled, &cleared)
	}
}
