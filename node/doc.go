// Package node is the MQTT broker on one node: connection loops, CONNECT and session
// takeover, keepalive, QoS flows, local subscriptions, retained messages, wills and
// shared-subscription groups.
//
// Each connection has one reader goroutine, which decodes packets and runs their
// effects (publishing fans out on the publisher's own reader goroutine), and, while
// its write queue is not empty, a writer goroutine, which drains the queue in
// batches. A reader owns its connection's teardown. An idle connection holds no read
// or write buffer: they come from free lists (bufpool.go) when bytes arrive or are
// queued, and packets decoded from a read buffer alias it only as framer.go says.
//
// Lock order: Broker.mu -> session.Session.mu -> conn.outMu. No lock is held across
// network I/O. node never imports cluster; the cluster hooks are interfaces declared
// here and plugged in by cmd.
package node
