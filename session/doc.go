// Package session owns the state a broker keeps per client session: subscriptions,
// the outgoing inflight window with its packet identifiers and QoS 2 states, the queue
// of messages waiting for the window or for the client to come back, and the incoming
// QoS 2 packet identifiers awaiting PUBREL. It also owns retained messages and, in a
// cluster, the tombstones of cleared retained topics (see RetainedStore).
//
// It does no network I/O. A session that is online pushes its outgoing packets to an
// Outbox (the node's connection), whose Push never blocks; pushing happens under the
// session's lock, so the order in which messages are queued is the order they are sent.
//
// Lock order: Session.mu -> the Outbox's own lock; Session.mu and MemoryRetained.mu
// -> the store's committer (queueing a write never waits for the disk). Imports:
// proto, route, the standard library and bbolt.
package session
