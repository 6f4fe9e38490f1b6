//go:build !unix

package node

import (
	"net"
	"syscall"
)

// readRaw reads like readPlain where the raw descriptor cannot be read directly.
func (c *conn) readRaw(nc net.Conn, _ syscall.RawConn) error { return c.readPlain(nc) }
