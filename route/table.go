package route

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Key is one destination of a route: a node, and the shared-subscription group it
// has members of ("" for ordinary subscribers).
type Key struct {
	Node  string
	Group string
}

// Op is what a Change does.
type Op byte

// Route changes.
const (
	OpAdd    Op = 1
	OpRemove Op = 2
)

// Change adds or removes the route (Filter -> Key). Filter is the topic filter
// without any $share/group/ prefix; the group is in Key.
type Change struct {
	Op     Op
	Filter string
	Key    Key
}

// Command types of the replicated log. A type at or above cmdIgnorable that this
// release does not know is skipped, so a newer release can add commands that older
// followers ignore during a rolling upgrade; below it, an unknown type panics: the
// replicas would diverge.
const (
	cmdChanges   byte = 1
	cmdPurgeNode byte = 2
	cmdIgnorable byte = 128
)

// EncodeChanges encodes a batch of changes as one log command.
func EncodeChanges(changes []Change) []byte {
	b := []byte{cmdChanges}
	b = binary.AppendUvarint(b, uint64(len(changes)))
	for _, c := range changes {
		b = append(b, byte(c.Op))
		b = appendStr(b, c.Filter)
		b = appendStr(b, c.Key.Node)
		b = appendStr(b, c.Key.Group)
	}
	return b
}

// EncodePurgeNode encodes the command that removes every route of node.
func EncodePurgeNode(node string) []byte {
	return appendStr([]byte{cmdPurgeNode}, node)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// ErrCorrupt is returned for a command or snapshot that does not decode.
var ErrCorrupt = errors.New("route: corrupt command")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = ErrCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) byte1() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = ErrCorrupt
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// Table is the cluster route table: for each topic filter, the nodes with local
// subscribers to it. Every node holds a replica, changed only by Apply with
// commands from the replicated log, so all replicas agree. It is safe for concurrent
// use: matching runs alongside Apply.
type Table struct {
	trie *Trie[Key, struct{}]

	mu     sync.Mutex             // guards byNode
	byNode map[string]map[fk]bool // node -> its routes, for PurgeNode and per-node counts
}

// fk is a route as byNode keeps it.
type fk struct{ filter, group string }

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{trie: NewTrie[Key, struct{}](), byNode: make(map[string]map[fk]bool)}
}

// Apply runs one log command. It is deterministic: no clock, no I/O.
func (t *Table) Apply(cmd []byte) error {
	d := &decoder{b: cmd}
	switch typ := d.byte1(); {
	case d.err != nil:
		return fmt.Errorf("apply: %w", d.err)
	case typ == cmdChanges:
		n := d.uvarint()
		changes := make([]Change, 0, min(n, 1<<16))
		for i := uint64(0); i < n && d.err == nil; i++ {
			c := Change{Op: Op(d.byte1()), Filter: d.str()}
			c.Key.Node = d.str()
			c.Key.Group = d.str()
			changes = append(changes, c)
		}
		if d.err != nil {
			return fmt.Errorf("apply changes: %w", d.err)
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, c := range changes {
			t.changeLocked(c)
		}
		return nil
	case typ == cmdPurgeNode:
		node := d.str()
		if d.err != nil {
			return fmt.Errorf("apply purge: %w", d.err)
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		for r := range t.byNode[node] {
			t.trie.Remove(r.filter, Key{Node: node, Group: r.group})
		}
		delete(t.byNode, node)
		return nil
	case typ >= cmdIgnorable:
		return nil
	default:
		panic(fmt.Sprintf("route: unknown command type %d: this release cannot follow the log", typ))
	}
}

// changeLocked applies one change; t.mu is held.
func (t *Table) changeLocked(c Change) {
	r := fk{c.Filter, c.Key.Group}
	switch c.Op {
	case OpAdd:
		t.trie.Add(c.Filter, c.Key, struct{}{})
		m := t.byNode[c.Key.Node]
		if m == nil {
			m = make(map[fk]bool)
			t.byNode[c.Key.Node] = m
		}
		m[r] = true
	case OpRemove:
		t.trie.Remove(c.Filter, c.Key)
		if m := t.byNode[c.Key.Node]; m != nil {
			delete(m, r)
			if len(m) == 0 {
				delete(t.byNode, c.Key.Node)
			}
		}
	}
}

// Match calls fn for every route whose filter matches topic; see Trie.Match.
func (t *Table) Match(topic string, fn func(filter string, k Key) bool) {
	t.trie.Match(topic, func(filter string, k Key, _ struct{}) bool { return fn(filter, k) })
}

// Len returns the number of routes.
func (t *Table) Len() int { return t.trie.Len() }

// NodeCounts returns the number of routes per node.
func (t *Table) NodeCounts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.byNode))
	for n, m := range t.byNode {
		out[n] = len(m)
	}
	return out
}

// NodeLen returns the number of routes of node.
func (t *Table) NodeLen(node string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byNode[node])
}

// NodeRoutes returns the routes of node, as add changes, in no particular order.
func (t *Table) NodeRoutes(node string) []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Change, 0, len(t.byNode[node]))
	for r := range t.byNode[node] {
		out = append(out, Change{Op: OpAdd, Filter: r.filter, Key: Key{Node: node, Group: r.group}})
	}
	return out
}

// Has reports whether the route (filter -> k) is in the table.
func (t *Table) Has(filter string, k Key) bool {
	_, ok := t.trie.Get(filter, k)
	return ok
}

// Walk calls fn for every route, in no particular order.
func (t *Table) Walk(fn func(filter string, k Key) bool) {
	t.trie.Walk(func(filter string, k Key, _ struct{}) bool { return fn(filter, k) })
}

// Snapshot is a point-in-time copy of the table, taken cheaply under the lock and
// written out later, alongside Apply.
type Snapshot struct{ changes []Change }

// Snapshot copies the routes.
func (t *Table) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &Snapshot{}
	for node, m := range t.byNode {
		for r := range m {
			s.changes = append(s.changes, Change{Op: OpAdd, Filter: r.filter, Key: Key{Node: node, Group: r.group}})
		}
	}
	return s
}

// WriteTo writes the snapshot: a format byte, then the routes as one changes command.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	n1, err := bw.Write([]byte{1})
	if err != nil {
		return int64(n1), err
	}
	n2, err := bw.Write(EncodeChanges(s.changes))
	if err != nil {
		return int64(n1 + n2), err
	}
	return int64(n1 + n2), bw.Flush()
}

// Restore replaces the table's contents with a snapshot written by WriteTo. The new
// state is built aside and swapped in.
func (t *Table) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("restore routes: %w", err)
	}
	if len(b) == 0 || b[0] != 1 {
		return fmt.Errorf("restore routes: %w: unknown snapshot format", ErrCorrupt)
	}
	fresh := NewTable()
	if err := fresh.Apply(b[1:]); err != nil {
		return fmt.Errorf("restore routes: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Swap the contents in place: readers hold *Table.
	t.trie.swapFrom(fresh.trie)
	t.byNode = fresh.byNode
	return nil
}
