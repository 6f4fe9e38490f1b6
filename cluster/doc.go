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
// Retained messages merge by last writer wins on stamps, with tombstones for clears;
// whenever a member joins, it and each node that sees it pull each other's retained
// set (catchup.go), with a rule for absences longer than the tombstone retention
// (absence.go).
//
// Lock order: Cluster.mu -> peer.mu; routeBatcher.mu -> the route table's locks;
// pulls.mu and memberState.mu are taken alone. No lock is held across network I/O.
package cluster
