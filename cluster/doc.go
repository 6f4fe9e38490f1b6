// Package cluster makes several Skein nodes one broker: memberlist finds peers and
// detects failures, Raft replicates the route table (topic filter -> nodes) whose
// state machine is route.Table, and a gRPC service forwards publishes to the nodes
// with matching subscribers, hands sessions over between nodes, and replicates
// retained messages.
//
// It imports proto, route and session, never node: the node it serves is the Local
// interface, and it implements the node's Cluster interface; cmd connects the two.
// memberlist, raft and gRPC stay inside this package.
//
// One TCP port (--peer-addr) carries both Raft and gRPC: a Raft connection starts
// with the byte 'R', which an HTTP/2 connection never does.
//
// Lock order: Cluster.mu -> peer.mu; routeBatcher.mu -> the route table's locks.
// No lock is held across network I/O.
package cluster
