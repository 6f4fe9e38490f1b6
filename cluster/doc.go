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
// Messages for a node that is down, or does not accept them within
// Config.ForwardTimeout, are held on disk in the session store's spool and drained
// to it, oldest first, once it is back (held.go, peer.go); the receiver skips what
// it applied already (server.go). A session taken over by another node relays what
// still reaches it there on the same stream (relay.go).
//
// Lock order: Cluster.mu -> peer.mu -> session.Spool's lock -> the store's
// committer, and -> releaser.mu; routeBatcher.mu -> the route table's locks; a
// sender's lock in appliedBatches -> appliedBatches.mu; pulls.mu and
// memberState.mu are taken alone. No lock is held across network I/O or a wait
// for the disk.
package cluster
