package cluster

import (
	"sort"
	"strconv"
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
	return st
}
