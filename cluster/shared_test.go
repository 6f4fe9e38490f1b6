package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// TestSharedAcrossNodes: members of $share/g/sh/# on n1, n2 and n3; 60 messages
// published on n1 reach the group exactly once each, spread over more than one
// node, while an ordinary subscriber of the same filter gets all 60.
func TestSharedAcrossNodes(t *testing.T) {
	skipShort(t)
	nodes := clustertest.Start(t, 3)
	var members []*nodetest.Client
	for i, nd := range []*clustertest.Node{nodes[0], nodes[1], nodes[2], nodes[2]} {
		c := nodetest.Connect(t, nd.Addr, proto.V5, fmt.Sprintf("m%d-%s", i, nd.Name))
		c.Subscribe(1, 1, "$share/g/sh/#")
		members = append(members, c)
	}
	plain := nodetest.Connect(t, nodes[1].Addr, proto.V5, "plain")
	plain.Subscribe(1, 1, "sh/#")
	for _, nd := range nodes {
		clustertest.WaitRoute(t, nodes, "sh/#", nd.Name, "g", true)
	}
	clustertest.WaitRoute(t, nodes, "sh/#", "n2", "", true)

	const n = 60
	pub := nodetest.Connect(t, nodes[0].Addr, proto.V311, "pub")
	publishNumbered(t, pub, "sh/x", "s", 1, 1, n)

	got := received{}
	perMember := make([]int, len(members))
	deadline := time.Now().Add(clustertest.Timeout)
	for total := 0; total < n; {
		if time.Now().After(deadline) {
			t.Fatalf("group got %d of %d messages: missing %v", total, n, got.missing(n))
		}
		for i, c := range members {
			p, err := c.RecvWithin(20 * time.Millisecond)
			if err != nil {
				continue
			}
			pub, ok := p.(*proto.Publish)
			if !ok {
				t.Fatalf("member %d got %s", i, nodetest.String(p))
			}
			got[number(t, "s", pub.Payload)]++
			perMember[i]++
			total++
			c.Ack(pub)
		}
	}
	for _, c := range members {
		expectNone(t, c, 100*time.Millisecond)
	}
	if d := got.dups(); len(d) > 0 {
		t.Fatalf("delivered more than once in the group: %v", d)
	}
	if m := got.missing(n); len(m) > 0 {
		t.Fatalf("missing %v", m)
	}
	perNode := map[string]int{"n1": perMember[0], "n2": perMember[1], "n3": perMember[2] + perMember[3]}
	nodesUsed := 0
	for _, k := range perNode {
		if k > 0 {
			nodesUsed++
		}
	}
	t.Logf("deliveries per node: %v", perNode)
	if nodesUsed < 2 {
		t.Fatalf("the group's messages all went to one node: %v", perNode)
	}
	plainGot := received{}
	readNumbered(t, plain, "s", n, plainGot)
	if d := plainGot.dups(); len(d) > 0 {
		t.Fatalf("ordinary subscriber got duplicates: %v", d)
	}
}
