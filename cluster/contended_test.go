package cluster_test

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// TestSimultaneousConnectsLeaveOne: a persistent session with a queued QoS 1
// message waits on n3; its client id then CONNECTs at the same instant on n1 and on
// n2 (resuming the session), or on all three nodes. Exactly one of the connections
// stays: the others get DISCONNECT 0x8E. The one that stays has the session (session present 1)
// and gets the queued message, which nobody acknowledged. Each node closed the
// id's connection elsewhere before registering its own, so a connection
// registered while the other node's takeover ran stayed too: both stayed
// connected, one of them without the session.
func TestSimultaneousConnectsLeaveOne(t *testing.T) {
	skipShort(t)
	for _, ways := range []int{2, 3} {
		t.Run(fmt.Sprintf("nodes=%d", ways), func(t *testing.T) { testSimultaneousConnects(t, ways) })
	}
}

func testSimultaneousConnects(t *testing.T, ways int) {
	nodes := clustertest.Start(t, 3)
	const ids = 30
	pub := nodetest.Connect(t, nodes[2].Addr, proto.V5, "pub")
	for i := range ids {
		s, _ := resume(t, nodes[2].Addr, proto.V5, twinID(i))
		s.Subscribe(1, 1, twinTopic(i))
		s.Disconnect()
	}
	for i := range ids {
		clustertest.WaitRoute(t, nodes, twinTopic(i), "n3", "", true)
	}
	nodetest.Eventually(t, "n3 sees the sessions offline", func() bool { return nodes[2].Broker.Stats.Connected.Load() == 1 })
	for i := range ids {
		if code := pub.Publish(&proto.Publish{Topic: twinTopic(i), QoS: 1, PacketID: uint16(i + 1), Payload: []byte(twinID(i))}); code != proto.Success {
			t.Fatalf("publish for %s: %v", twinID(i), code)
		}
	}

	// Every socket is open before the first CONNECT goes out, and they all go
	// out together.
	twins := make([][]*twinConn, ids)
	for i := range ids {
		twins[i] = make([]*twinConn, ways)
		for k := range ways {
			twins[i][k] = dialTwin(t, nodes[k].Addr, twinID(i))
		}
	}
	var wg sync.WaitGroup
	for i := range ids {
		for k := range ways {
			wg.Add(1)
			go func() { defer wg.Done(); twins[i][k].connect() }()
		}
	}
	wg.Wait()
	// Long enough for every takeover, and for a node that yields to ask again.
	time.Sleep(3 * time.Second)
	for i := range ids {
		for k := range ways {
			twins[i][k].ping()
		}
	}
	time.Sleep(time.Second)

	for i := range ids {
		var open []*twinConn
		for k := range ways {
			tc := twins[i][k]
			tc.mu.Lock()
			if tc.connErr != nil {
				t.Errorf("%s on n%d: CONNECT: %v", twinID(i), k+1, tc.connErr)
			}
			if tc.pong && tc.closed == nil {
				open = append(open, tc)
			} else if tc.closed == nil {
				t.Errorf("%s on n%d: neither answered PINGREQ nor closed", twinID(i), k+1)
			} else if tc.pong || tc.disconnect != proto.SessionTakenOver {
				t.Errorf("%s on n%d: closed with DISCONNECT %v (pong %v), want 0x8E", twinID(i), k+1, tc.disconnect, tc.pong)
			}
			tc.mu.Unlock()
		}
		if len(open) != 1 {
			t.Errorf("%s: %d connections stay open, want exactly 1", twinID(i), len(open))
			continue
		}
		w := open[0]
		w.mu.Lock()
		if !w.present {
			t.Errorf("%s: the connection that stays has session present 0", twinID(i))
		}
		if !w.gotMessage {
			t.Errorf("%s: the connection that stays never got the queued message", twinID(i))
		}
		w.mu.Unlock()
	}
}

func twinID(i int) string    { return fmt.Sprintf("twin-%d", i) }
func twinTopic(i int) string { return fmt.Sprintf("twin/%d", i) }

// twinConn is one of two connections with the same client id; a goroutine records
// what the broker sends on it (it never acknowledges a message).
type twinConn struct {
	t  *testing.T
	nc net.Conn
	id string

	mu         sync.Mutex
	connErr    error
	present    bool
	gotMessage bool
	pong       bool
	disconnect proto.ReasonCode
	closed     error
}

func dialTwin(t *testing.T, addr, id string) *twinConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, clustertest.Timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &twinConn{t: t, nc: nc, id: id}
}

// connect sends CONNECT (resuming the session), reads CONNACK and then records
// every packet until the connection ends. It runs on its own goroutine.
func (tc *twinConn) connect() {
	cp := &proto.Connect{Version: proto.V5, ClientID: tc.id, KeepAlive: 60}
	cp.Props.SessionExpiry = 3600
	cp.Props.Set(proto.PropSessionExpiry)
	b, err := cp.Append(nil, proto.V5)
	if err == nil {
		_, err = tc.nc.Write(b)
	}
	r := bufio.NewReader(tc.nc)
	var p proto.Packet
	if err == nil {
		_ = tc.nc.SetReadDeadline(time.Now().Add(clustertest.Timeout))
		p, err = proto.ReadPacket(r, proto.V5, 0)
	}
	ack, ok := p.(*proto.Connack)
	tc.mu.Lock()
	switch {
	case err != nil:
		tc.connErr = err
	case !ok || ack.ReasonCode != proto.Success:
		tc.connErr = fmt.Errorf("got %s", nodetest.String(p))
	default:
		tc.present = ack.SessionPresent
	}
	tc.mu.Unlock()
	if tc.connErr != nil {
		return
	}
	go tc.read(r)
}

func (tc *twinConn) read(r *bufio.Reader) {
	_ = tc.nc.SetReadDeadline(time.Time{})
	for {
		p, err := proto.ReadPacket(r, proto.V5, 0)
		tc.mu.Lock()
		if err != nil {
			tc.closed = err
			tc.mu.Unlock()
			return
		}
		switch p := p.(type) {
		case *proto.Publish:
			tc.gotMessage = tc.gotMessage || string(p.Payload) == tc.id
		case *proto.Pingresp:
			tc.pong = true
		case *proto.Disconnect:
			tc.disconnect = p.ReasonCode
		}
		tc.mu.Unlock()
	}
}

// ping sends PINGREQ; a connection the broker closed may refuse the write.
func (tc *twinConn) ping() {
	b, _ := (&proto.Pingreq{}).Append(nil, proto.V5)
	_ = tc.nc.SetWriteDeadline(time.Now().Add(clustertest.Timeout))
	_, _ = tc.nc.Write(b)
}
