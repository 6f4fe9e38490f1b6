package cluster

import (
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// MemberStatus is one node as this node sees it.
type MemberStatus struct {
	Name     string `json:"name"`
	PeerAddr string `json:"peer_addr"`
	State    string `json:"state"`    // alive or dead
	Suffrage string `json:"suffrage"` // voter, nonvoter, or none (not in Raft)
	Routes   int    `json:"routes"`
	// Forwarded and Received count messages sent to and received from it.
	Forwarded uint64 `json:"forwarded"`
	Received  uint64 `json:"received"`
	// RetainedMerges counts the pulls of its retained set merged here (one or two
	// each time it joins; see catchup.go).
	RetainedMerges uint64 `json:"retained_merges"`
}

// Status is the cluster as this node sees it, for skein ctl cluster and metrics.
type Status struct {
	Node         string         `json:"node"`
	Leader       string         `json:"leader"`
	RaftState    string         `json:"raft_state"`
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	LastContact  time.Duration  `json:"last_contact_ns"`
	Members      []MemberStatus `json:"members"`
	Routes       int            `json:"routes"`
	// PendingRouteChanges are this node's route changes not yet committed.
	PendingRouteChanges int `json:"pending_route_changes"`
	// Held lists, per node, the messages this node holds on disk for it (it is
	// down or did not accept them in time) and what became of those it could not
	// take, for every node that has had any since this node started; sorted by
	// node.
	Held []HeldStatus `json:"held"`
}

// HeldStatus is what one node (possibly not a gossip member any more) has had held
// for it. Counters count since this node started.
type HeldStatus struct {
	Node string `json:"node"`
	// Messages and Bytes are held in the spool now.
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// Spooled counts messages written to the spool; Dropped those dropped from it,
	// oldest first, past its bounds; Purged those deleted with the node's routes.
	Spooled uint64 `json:"spooled"`
	Dropped uint64 `json:"dropped"`
	Purged  uint64 `json:"purged"`
	// Timeouts counts the times the node did not accept messages within the
	// forward timeout; DiscardedQoS0 the QoS 0 messages not held for it.
	Timeouts      uint64 `json:"forward_timeouts"`
	DiscardedQoS0 uint64 `json:"discarded_qos0"`
}

// Status reports the cluster.
func (c *Cluster) Status() Status {
	st := Status{Node: c.name, Leader: c.leaderName(), RaftState: c.raft.State().String(), Routes: c.table.Len(), PendingRouteChanges: c.routes.Pending()}
	stats := c.raft.Stats()
	st.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	st.CommitIndex, _ = strconv.ParseUint(stats["commit_index"], 10, 64)
	st.AppliedIndex, _ = strconv.ParseUint(stats["applied_index"], 10, 64)
	if lc := c.raft.LastContact(); !lc.IsZero() {
		st.LastContact = time.Since(lc)
	}
	suffrage := map[string]string{}
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				suffrage[string(s.ID)] = "voter"
			} else {
				suffrage[string(s.ID)] = "nonvoter"
			}
		}
	}
	counts := c.table.NodeCounts()
	addrs, alive, _ := c.members.snapshot()
	for name, addr := range addrs {
		m := MemberStatus{Name: name, PeerAddr: addr, State: "dead", Suffrage: "none", Routes: counts[name]}
		if alive[name] {
			m.State = "alive"
		}
		if s, ok := suffrage[name]; ok {
			m.Suffrage = s
		}
		m.Forwarded = c.stats.counter(&c.stats.sent, name).Load()
		m.Received = c.stats.counter(&c.stats.recv, name).Load()
		m.RetainedMerges = c.pulls.merges(name)
		st.Members = append(st.Members, m)
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Name < st.Members[j].Name })
	st.Held = c.heldStatus()
	return st
}

// heldStatus gathers the spool's figures and the forward counters per node.
func (c *Cluster) heldStatus() []HeldStatus {
	byNode := map[string]*HeldStatus{}
	get := func(n string) *HeldStatus {
		h := byNode[n]
		if h == nil {
			h = &HeldStatus{Node: n}
			byNode[n] = h
		}
		return h
	}
	for n, s := range c.spool.Stats() {
		h := get(n)
		h.Messages, h.Bytes, h.Spooled, h.Dropped = s.Depth, s.Bytes, s.Spooled, s.Dropped
	}
	for _, f := range []struct {
		m   *map[string]*atomic.Uint64
		set func(*HeldStatus, uint64)
	}{
		{&c.stats.timeouts, func(h *HeldStatus, v uint64) { h.Timeouts = v }},
		{&c.stats.discarded, func(h *HeldStatus, v uint64) { h.DiscardedQoS0 = v }},
		{&c.stats.purged, func(h *HeldStatus, v uint64) { h.Purged = v }},
	} {
		for n, v := range c.stats.snapshot(f.m) {
			f.set(get(n), v)
		}
	}
	out := make([]HeldStatus, 0, len(byNode))
	for _, h := range byNode {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
