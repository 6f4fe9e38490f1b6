package cluster_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/route"
)

// skipShort skips a multi-node test under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster test: skipped with -short")
	}
}

// resume connects with a persistent session (3.1.1 clean session 0, 5.0 clean
// start 0 with a session expiry) and returns the client and its CONNACK.
func resume(t *testing.T, addr string, v proto.Version, id string) (*nodetest.Client, *proto.Connack) {
	t.Helper()
	c := nodetest.Dial(t, addr, v)
	cp := &proto.Connect{ClientID: id, CleanStart: false, KeepAlive: 60}
	if v == proto.V5 {
		cp.Props.SessionExpiry = 3600
		cp.Props.Set(proto.PropSessionExpiry)
	}
	ack := c.Connect(cp)
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNECT %q refused: %v", id, ack.ReasonCode)
	}
	return c, ack
}

// received collects numbered payloads ("<prefix><n>") per number.
type received map[int]int

// consume answers the subscriber's side of every QoS flow on c (PUBACK; PUBREC,
// then PUBCOMP for the PUBREL) and hands each PUBLISH to onPub, until done
// reports true; it fails the test when nothing arrives within the timeout.
// onRel, when not nil, sees each PUBREL's packet id first.
func consume(t *testing.T, c *nodetest.Client, done func() bool, onPub func(*proto.Publish), onRel func(id uint16)) {
	t.Helper()
	for !done() {
		p, err := c.RecvWithin(clustertest.Timeout)
		if err != nil {
			t.Fatalf("subscriber %v: %v", c.Conn.LocalAddr(), err)
		}
		switch p := p.(type) {
		case *proto.Publish:
			onPub(p)
			switch p.QoS {
			case 1:
				c.Send(&proto.Puback{PacketID: p.PacketID})
			case 2:
				c.Send(&proto.Pubrec{PacketID: p.PacketID})
			}
		case *proto.Pubrel:
			if onRel != nil {
				onRel(p.PacketID)
			}
			c.Send(&proto.Pubcomp{PacketID: p.PacketID})
		default:
			t.Fatalf("subscriber got %s", nodetest.String(p))
		}
	}
}

// number parses "<prefix><n>".
func number(t *testing.T, prefix string, payload []byte) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(string(payload), prefix))
	if err != nil || !strings.HasPrefix(string(payload), prefix) {
		t.Fatalf("unexpected payload %q", payload)
	}
	return n
}

// readNumbered reads publishes until want distinct numbers arrived, answering each
// flow. Duplicates are counted, not failed: the caller decides whether its QoS
// allows them.
func readNumbered(t *testing.T, c *nodetest.Client, prefix string, want int, got received) {
	t.Helper()
	consume(t, c, func() bool { return len(got) >= want }, func(p *proto.Publish) { got[number(t, prefix, p.Payload)]++ }, nil)
}

// missing lists the numbers in [1, n] not in got.
func (r received) missing(n int) []int {
	var out []int
	for i := 1; i <= n; i++ {
		if r[i] == 0 {
			out = append(out, i)
		}
	}
	return out
}

// dups lists the numbers received more than once.
func (r received) dups() []int {
	var out []int
	for n, k := range r {
		if k > 1 {
			out = append(out, n)
		}
	}
	return out
}

// publishNumbered publishes "<prefix>1".."<prefix>n" on topic at qos and waits for
// each acknowledgement.
func publishNumbered(t *testing.T, c *nodetest.Client, topic, prefix string, qos byte, from, n int) {
	t.Helper()
	for i := from; i <= n; i++ {
		c.Publish(&proto.Publish{Topic: topic, QoS: qos, PacketID: uint16(i%65000 + 1), Payload: []byte(fmt.Sprintf("%s%d", prefix, i))})
	}
}

// expectNone fails if c receives a PUBLISH within d; it completes the QoS 2 flows
// still open (PUBREL -> PUBCOMP) meanwhile.
func expectNone(t *testing.T, c *nodetest.Client, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		p, err := c.RecvWithin(left)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return
			}
			t.Fatalf("connection failed while expecting silence: %v", err)
		}
		rel, ok := p.(*proto.Pubrel)
		if !ok {
			t.Fatalf("got unexpected %s", nodetest.String(p))
		}
		c.Send(&proto.Pubcomp{PacketID: rel.PacketID})
	}
}

// hasRoute reports whether nd's replica has filter -> node (group "").
func hasRoute(nd *clustertest.Node, filter, node string) bool {
	return nd.Cluster.Table().Has(filter, routeKey(node, ""))
}

func routeKey(node, group string) route.Key { return route.Key{Node: node, Group: group} }
