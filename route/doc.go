// Package route owns the MQTT topic-filter trie (Trie), used for a node's local
// subscriptions keyed by subscriber and for the cluster route table keyed by node name,
// and (later) the cluster route-table state machine: its commands, Apply, Snapshot and
// Restore.
//
// It imports only the standard library and proto, and does no I/O: no sockets, no disk,
// no clock, no goroutines. Callers validate topic names and filters with proto before
// handing them to this package; route assumes them valid.
//
// Lock order: each Trie has one sync.RWMutex (Trie.mu) and takes no other lock while
// holding it. Callbacks passed to Trie.Match and Trie.Walk run under its read lock and
// must not call back into the same Trie.
package route
