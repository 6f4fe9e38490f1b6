// Package poll is the broker's event loop for plain TCP connections on Linux: one
// epoll instance, watched by one goroutine that parks in the Go runtime's poller, so
// that an idle connection costs neither a goroutine nor a buffer.
//
// Sockets are accepted straight from the listener's descriptor (Accept) and
// registered edge-triggered for input and output. When a socket has input (or hung
// up), the loop hands the connection to a handler goroutine (a waiting one, reused,
// or a new one: workers_linux.go), which calls the connection's Handler; the handler
// reads what is there with TryRead, handles it and returns, and is called again if
// more input arrived meanwhile. Only one call of a connection's handler runs at a
// time. Writes (Conn.Write) go out directly while the socket takes them; on EAGAIN
// the writing goroutine waits for the loop to see the socket writable, or for its
// write deadline.
//
// A descriptor is closed only once its handler said it is done and no read or write
// of it is in progress (Conn.mu), so a descriptor number reused by a later accept is
// never written to by a stale goroutine.
//
// Wheel is a timing wheel for the connections' read deadlines (connect timeout,
// keepalive): a timer is a few words inside its owner, and one goroutine ticks for
// all of them.
//
// poll imports nothing of ours. On other systems Supported is false and New fails.
package poll
