// Package session owns the state a broker keeps per client session: subscriptions,
// the outgoing inflight window with its packet identifiers and QoS 2 states, the queue
// of messages waiting for the window or for the client to come back, and the incoming
// QoS 2 packet identifiers awaiting PUBREL. It also owns retained messages.
//
// It does no network I/O. A session that is online pushes its outgoing packets to an
// Outbox (the node's connection), whose Push never blocks; pushing happens under the
// session's lock, so the order in which messages are queued is the order they are sent.
//
// Lock order: Session.mu -> the Outbox's own lock. Imports: proto, route, and the
// standard library (bbolt arrives with the persistence work).
package session
