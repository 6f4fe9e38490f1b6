// Package node is the MQTT broker on one node: connection loops, CONNECT and session
// takeover, keepalive, QoS flows, local subscriptions, retained messages, wills and
// shared-subscription groups.
//
// A connection of a plain TCP listener is served by the event loop (node/poll,
// Config.EventLoop): while it is idle it has no goroutine; when its socket has input
// a goroutine reads it, decodes and handles the complete packets, and returns
// (pollconn.go). Other connections (TLS, WebSocket, or without the event loop) have a
// reader goroutine of their own (readloop.go). Either way the packets go through the
// same code (connect, handle) and publishing fans out on the publisher's reading
// goroutine; while its write queue is not empty, a connection has a writer
// goroutine, which drains the queue in batches. The reading side owns the
// connection's teardown. An idle connection holds no read
// or write buffer: they come from free lists (bufpool.go) when bytes arrive or are
// queued, and packets decoded from a read buffer alias it only as framer.go says.
//
// Lock order: Broker.mu -> session.Session.mu -> writer.mu. The event loop's locks
// (node/poll: Poller.mu, Conn.mu, Wheel.mu) are leaves: its callbacks (Input,
// Expire) run with none of them held. No lock is held across network I/O, except
// poll.Conn.mu, held for reading across its non-blocking system calls so that a
// descriptor is never closed under one. node never imports cluster; the cluster
// hooks are interfaces declared here and plugged in by cmd.
package node
