package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// grace is the harness's DeadNodeGrace.
const grace = 3 * time.Second

// suffrages counts the voters and non-voters nd sees, and returns each member's.
func suffrages(nd *clustertest.Node) (voters, nonvoters int, of map[string]string) {
	of = map[string]string{}
	for _, m := range nd.Cluster.Status().Members {
		of[m.Name] = m.Suffrage
		switch m.Suffrage {
		case "voter":
			voters++
		case "nonvoter":
			nonvoters++
		}
	}
	return voters, nonvoters, of
}

// waitSuffrage waits until every running node sees member name with suffrage s.
func waitSuffrage(t *testing.T, nodes []*clustertest.Node, name, s string) {
	t.Helper()
	clustertest.Eventually(t, fmt.Sprintf("%s %s everywhere", name, s), func() bool {
		for _, nd := range clustertest.Running(nodes) {
			if clustertest.Suffrage(nd, name) != s {
				return false
			}
		}
		return true
	})
}

// TestFormsInAnyStartOrder: three nodes with bootstrap-expect 3 started one at a
// time, so that the first ones' seeds do not answer yet, form one cluster with no
// further step: three voters, one leader, and routes and messages from every node
// to every other. Each joins the other two, started last first and in a mixed
// order; or each joins only the next one, started in order, so that every node
// but the last has its one seed down at start and must retry; or the seeds are
// given by name (localhost:PORT), resolved when joining.
func TestFormsInAnyStartOrder(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		name string
		opts clustertest.Options
	}{
		{"all seeds, last first", clustertest.Options{StartOrder: []int{2, 1, 0}}},
		{"all seeds, mixed", clustertest.Options{StartOrder: []int{1, 2, 0}}},
		{"next node as the only seed", clustertest.Options{StartOrder: []int{0, 1, 2}, JoinNext: true}},
		{"seeds by DNS name", clustertest.Options{StartOrder: []int{2, 0, 1}, SeedHost: "localhost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.StartGap = time.Second
			nodes := clustertest.Start(t, 3, tc.opts)
			for _, nd := range nodes {
				if v, nv, of := suffrages(nd); v != 3 || nv != 0 {
					t.Fatalf("%s sees %d voters and %d non-voters (%v), want 3 and 0", nd.Name, v, nv, of)
				}
			}
			var subs []*nodetest.Client
			for _, nd := range nodes {
				c := nodetest.Connect(t, nd.Addr, proto.V5, "sub-"+nd.Name)
				c.Subscribe(1, 1, "order/all")
				subs = append(subs, c)
				clustertest.WaitRoute(t, nodes, "order/all", nd.Name, "", true)
			}
			for _, nd := range nodes {
				pub := nodetest.Connect(t, nd.Addr, proto.V311, "pub-"+nd.Name)
				pub.Publish(&proto.Publish{Topic: "order/all", QoS: 1, PacketID: 1, Payload: []byte(nd.Name)})
				for _, s := range subs {
					s.ExpectPublish("order/all", nd.Name)
				}
			}
		})
	}
}

// TestFiveNodes: five nodes, three of them voters (MaxVoters 3) and two
// non-voters; a route made on any node reaches every replica, and a message
// published on any node reaches the subscribers on all the others.
func TestFiveNodes(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 5)
	var subs []*nodetest.Client
	for _, nd := range nodes {
		c := nodetest.Connect(t, nd.Addr, proto.V5, "sub-"+nd.Name)
		c.Subscribe(1, 1, "five/"+nd.Name+"/#", "five/all")
		subs = append(subs, c)
	}
	for _, nd := range nodes {
		clustertest.WaitRoute(t, nodes, "five/"+nd.Name+"/#", nd.Name, "", true)
		clustertest.WaitRoute(t, nodes, "five/all", nd.Name, "", true)
	}
	for _, nd := range nodes {
		if got := nd.Cluster.Table().Len(); got != 10 {
			t.Fatalf("%s has %d routes, want 10", nd.Name, got)
		}
		if v, nv, of := suffrages(nd); v != 3 || nv != 2 {
			t.Fatalf("%s sees %d voters and %d non-voters (%v), want 3 and 2", nd.Name, v, nv, of)
		}
	}
	for i, nd := range nodes {
		pub := nodetest.Connect(t, nd.Addr, proto.V311, "pub-"+nd.Name)
		target := nodes[(i+2)%len(nodes)].Name
		pub.Publish(&proto.Publish{Topic: "five/" + target + "/x", QoS: 1, PacketID: 1, Payload: []byte(nd.Name)})
		subs[(i+2)%len(nodes)].ExpectPublish("five/"+target+"/x", nd.Name)
		pub.Publish(&proto.Publish{Topic: "five/all", QoS: 1, PacketID: 2, Payload: []byte(nd.Name)})
		for _, s := range subs {
			s.ExpectPublish("five/all", nd.Name)
		}
	}
}

// TestNonVoterJoins: a fourth node started without bootstrapping joins as a Raft
// non-voter (MaxVoters 3), gets the route table, and routes messages both ways.
func TestNonVoterJoins(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	early := nodetest.Connect(t, nodes[0].Addr, proto.V5, "early")
	early.Subscribe(1, 1, "nv/early")
	clustertest.WaitRoute(t, nodes, "nv/early", "n1", "", true)

	n4 := clustertest.Add(t, nodes, "n4")
	all := append(nodes, n4)
	waitSuffrage(t, all, "n4", "nonvoter")
	for _, nd := range all {
		if v, _, of := suffrages(nd); v != 3 {
			t.Fatalf("%s sees %d voters (%v), want 3", nd.Name, v, of)
		}
	}
	clustertest.WaitRoute(t, all, "nv/early", "n1", "", true) // n4's replica too
	sub := nodetest.Connect(t, n4.Addr, proto.V5, "sub4")
	sub.Subscribe(1, 1, "nv/#")
	clustertest.WaitRoute(t, all, "nv/#", "n4", "", true)
	pub := nodetest.Connect(t, nodes[1].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "nv/1", QoS: 1, PacketID: 1, Payload: []byte("to n4")})
	sub.ExpectPublish("nv/1", "to n4")
	pub4 := nodetest.Connect(t, n4.Addr, proto.V5, "pub4")
	pub4.Publish(&proto.Publish{Topic: "nv/early", QoS: 1, PacketID: 1, Payload: []byte("from n4")})
	early.ExpectPublish("nv/early", "from n4")
}

// nonLeaderVoter returns a running voter other than the leader.
func nonLeaderVoter(t *testing.T, nodes []*clustertest.Node, except ...string) *clustertest.Node {
	t.Helper()
	leader := clustertest.Leader(t, nodes)
	_, _, of := suffrages(leader)
next:
	for _, nd := range clustertest.Running(nodes) {
		for _, e := range except {
			if nd.Name == e {
				continue next
			}
		}
		if nd != leader && of[nd.Name] == "voter" {
			return nd
		}
	}
	t.Fatal("no voter other than the leader")
	return nil
}

// TestDeadVoterReplaced: with a non-voter standing by, a voter that dies is
// removed from Raft after DeadNodeGrace and the non-voter promoted in its place,
// not before: there are never more than MaxVoters voters. The promoted node's
// vote counts: with one more of the original voters killed, route changes still
// commit.
func TestDeadVoterReplaced(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	n4 := clustertest.Add(t, nodes, "n4")
	all := append(nodes, n4)
	waitSuffrage(t, all, "n4", "nonvoter")

	dead := nonLeaderVoter(t, all)
	dead.Kill()
	diedAt := time.Now()
	clustertest.WaitMember(t, all, dead.Name, "dead")
	waitSuffrage(t, all, "n4", "voter")
	if d := time.Since(diedAt); d < grace {
		t.Fatalf("n4 promoted %v after %s died, before the %v grace", d, dead.Name, grace)
	}
	waitSuffrage(t, all, dead.Name, "none")
	for _, nd := range clustertest.Running(all) {
		if v, _, of := suffrages(nd); v != 3 {
			t.Fatalf("%s sees %d voters (%v), want 3", nd.Name, v, of)
		}
	}
	// Kill another original voter: n4's vote makes the quorum (2 of 3).
	nonLeaderVoter(t, all, "n4").Kill()
	live := clustertest.Running(all)
	sub := nodetest.Connect(t, live[0].Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "dv/#")
	clustertest.WaitRoute(t, live, "dv/#", live[0].Name, "", true)
	pub := nodetest.Connect(t, live[1].Addr, proto.V5, "pub")
	pub.Publish(&proto.Publish{Topic: "dv/1", QoS: 1, PacketID: 1, Payload: []byte("x")})
	sub.ExpectPublish("dv/1", "x")
}

// TestVoterRestartKeepsVoterCap: a voter that restarts within the grace period
// keeps its place, and the standing-by non-voter is not promoted meanwhile: the
// cluster never has more than MaxVoters voters.
func TestVoterRestartKeepsVoterCap(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	n4 := clustertest.Add(t, nodes, "n4")
	all := append(nodes, n4)
	waitSuffrage(t, all, "n4", "nonvoter")
	v := nonLeaderVoter(t, all)
	v.Kill()
	clustertest.WaitMember(t, all, v.Name, "dead")
	v.Restart(all)
	clustertest.WaitMember(t, all, v.Name, "alive")
	// Give the leader's reconcile loop (every 200 ms) several rounds.
	deadline := time.Now().Add(time.Second)
	clustertest.Eventually(t, "a second", func() bool { return time.Now().After(deadline) })
	for _, nd := range all {
		if vs, _, of := suffrages(nd); vs != 3 || of["n4"] != "nonvoter" || of[v.Name] != "voter" {
			t.Fatalf("%s sees %d voters: %v; want 3 with %s a voter and n4 a non-voter", nd.Name, vs, of, v.Name)
		}
	}
}

// TestDeadNodeRoutesPurged: a dead node keeps its routes through the grace period
// (messages are held for it) and loses them, and its place in Raft, after it.
func TestDeadNodeRoutesPurged(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	n4 := clustertest.Add(t, nodes, "n4")
	all := append(nodes, n4)
	waitSuffrage(t, all, "n4", "nonvoter")
	sub := nodetest.Connect(t, n4.Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "pg/#", "$share/g/pg/#")
	clustertest.WaitRoute(t, all, "pg/#", "n4", "", true)
	clustertest.WaitRoute(t, all, "pg/#", "n4", "g", true)

	n4.Kill()
	diedAt := time.Now()
	clustertest.WaitMember(t, nodes, "n4", "dead")
	for _, nd := range nodes {
		if nd.Cluster.Table().NodeCounts()["n4"] != 2 {
			t.Fatalf("%s dropped n4's routes at once, before the grace", nd.Name)
		}
	}
	clustertest.Eventually(t, "n4's routes purged everywhere", func() bool {
		for _, nd := range nodes {
			if nd.Cluster.Table().NodeCounts()["n4"] != 0 {
				return false
			}
		}
		return true
	})
	if d := time.Since(diedAt); d < grace {
		t.Fatalf("routes purged %v after the kill, before the %v grace", d, grace)
	}
	waitSuffrage(t, nodes, "n4", "none")
	for _, nd := range nodes {
		for _, m := range nd.Cluster.Status().Members {
			if m.Name == "n4" && (m.State != "dead" || m.Routes != 0) {
				t.Fatalf("%s: n4 is %+v", nd.Name, m)
			}
		}
	}
}
