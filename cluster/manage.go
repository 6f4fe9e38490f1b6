package cluster

import (
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skein-mq/skein/route"
)

// manageLoop bootstraps Raft when the expected number of nodes are present, and,
// while this node leads, keeps the Raft configuration in line with the gossip
// members: live nodes are added (voters up to MaxVoters, then non-voters), a dead
// voter is replaced by a live non-voter, and a node dead past the grace period is
// removed and its routes purged.
func (c *Cluster) manageLoop() {
	tick := time.NewTicker(time.Second)
	if c.cfg.FastTimeouts {
		tick.Reset(200 * time.Millisecond)
	}
	defer tick.Stop()
	bootstrapped := false
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		case <-c.members.changed:
		}
		if !bootstrapped {
			bootstrapped = c.maybeBootstrap()
		}
		if c.raft.State() == raft.Leader {
			c.reconcile()
		}
		c.expireHeld()
	}
}

// maybeBootstrap bootstraps the first Raft configuration once BootstrapExpect nodes
// are members. Every one of them does so with the same configuration (the first
// BootstrapExpect names in order), which Raft allows. It reports true once nothing
// is left to do: bootstrapped, or state already present.
func (c *Cluster) maybeBootstrap() bool {
	if c.cfg.BootstrapExpect == 0 {
		return true
	}
	if c.raft.LastIndex() > 0 || c.leaderName() != "" {
		return true // existing state, or already part of a cluster
	}
	addrs, alive, _ := c.members.snapshot()
	var names []string
	for n, ok := range alive {
		if ok && addrs[n] != "" {
			names = append(names, n)
		}
	}
	if len(names) < c.cfg.BootstrapExpect {
		return false
	}
	sort.Strings(names)
	names = names[:c.cfg.BootstrapExpect]
	in := false
	var servers []raft.Server
	for i, n := range names {
		suffrage := raft.Voter
		if i >= c.cfg.MaxVoters {
			suffrage = raft.Nonvoter
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(n), Address: raft.ServerAddress(addrs[n]), Suffrage: suffrage})
		in = in || n == c.name
	}
	if !in {
		return true // the others bootstrap; the leader will add this node
	}
	err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && err != raft.ErrCantBootstrap {
		c.log.Error("bootstrap raft", "err", err)
		return false
	}
	c.log.Info("bootstrapped the route table's raft", "servers", names)
	return true
}

// reconcile runs on the leader.
func (c *Cluster) reconcile() {
	future := c.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		c.log.Warn("read raft configuration", "err", err)
		return
	}
	cfg := future.Configuration()
	addrs, alive, deadAt := c.members.snapshot()
	inRaft := map[string]raft.Server{}
	// A dead voter keeps its seat until it is removed after the grace period: a
	// non-voter promoted at once would make MaxVoters+1 voters when it returns
	// within the grace, as a restarted node does.
	voters := 0
	for _, s := range cfg.Servers {
		inRaft[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	now := time.Now()
	// Remove what has been dead past the grace period, and purge its routes.
	for id, s := range inRaft {
		if id == c.name || alive[id] {
			continue
		}
		since, known := deadAt[id]
		if known && now.Sub(since) < c.cfg.DeadNodeGrace {
			continue
		}
		if !known && addrs[id] == "" && now.Sub(c.startedAt()) < c.cfg.DeadNodeGrace {
			continue // not heard of since this leader started: give it the grace too
		}
		c.log.Warn("removing dead node from raft", "member", id, "suffrage", s.Suffrage.String())
		if err := c.raft.RemoveServer(s.ID, 0, 0).Error(); err != nil {
			c.log.Warn("remove dead node", "member", id, "err", err)
			continue
		}
		if s.Suffrage == raft.Voter {
			voters--
		}
		delete(inRaft, id)
		c.purgeRoutes(id)
	}
	// Routes of nodes that died without ever being in Raft, or left it.
	for node := range c.table.NodeCounts() {
		if node == c.name || alive[node] {
			continue
		}
		if since, ok := deadAt[node]; ok && now.Sub(since) >= c.cfg.DeadNodeGrace {
			if _, stillIn := inRaft[node]; !stillIn {
				c.purgeRoutes(node)
			}
		}
	}
	// Add live members, promoting non-voters while voters are missing.
	names := make([]string, 0, len(alive))
	for n := range alive {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !alive[n] || n == c.name || addrs[n] == "" {
			continue
		}
		s, ok := inRaft[n]
		switch {
		case ok && string(s.Address) != addrs[n]:
			// The node came back at another address: Raft must reach it there.
			// Adding a server already in the configuration updates its address
			// and keeps its suffrage.
			var err error
			if s.Suffrage == raft.Voter {
				err = c.raft.AddVoter(s.ID, raft.ServerAddress(addrs[n]), 0, 0).Error()
			} else {
				err = c.raft.AddNonvoter(s.ID, raft.ServerAddress(addrs[n]), 0, 0).Error()
			}
			if err == nil {
				c.log.Info("updated raft address", "member", n, "old", string(s.Address), "new", addrs[n])
			}
		case !ok && voters < c.cfg.MaxVoters:
			if err := c.raft.AddVoter(raft.ServerID(n), raft.ServerAddress(addrs[n]), 0, 0).Error(); err == nil {
				c.log.Info("added raft voter", "member", n)
				voters++
			}
		case !ok:
			if err := c.raft.AddNonvoter(raft.ServerID(n), raft.ServerAddress(addrs[n]), 0, 0).Error(); err == nil {
				c.log.Info("added raft non-voter", "member", n)
			}
		case s.Suffrage == raft.Nonvoter && voters < c.cfg.MaxVoters:
			if err := c.raft.AddVoter(s.ID, s.Address, 0, 0).Error(); err == nil {
				c.log.Info("promoted non-voter to voter", "member", n)
				voters++
			}
		}
	}
}

// purgeRoutes removes every route of a dead node through the log.
func (c *Cluster) purgeRoutes(node string) {
	if err := c.raft.Apply(route.EncodePurgeNode(node), 5*time.Second).Error(); err != nil {
		c.log.Warn("purge routes of dead node", "member", node, "err", err)
		return
	}
	c.log.Warn("purged routes of dead node", "member", node)
	c.dropPeer(node)
}
