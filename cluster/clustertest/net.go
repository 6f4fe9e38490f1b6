package clustertest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// The test network. Every node binds its gossip (UDP and TCP) and peer (gRPC and
// Raft, TCP) sockets on a loopback address of its own, 127.0.1.k, and advertises
// 127.0.0.1 with the same ports, where the harness runs a small proxy for each
// socket. Other nodes reach a node only through its proxies, so the harness can
// cut a node off (Partition) or make it vanish without a word (Kill).
//
// What the proxies can and cannot block, on one machine in one process:
//   - gossip UDP: fully, in both directions. A node's datagrams leave from its own
//     127.0.1.k address, so every proxy can drop those of a cut-off node.
//   - TCP into a cut-off node (its gossip TCP and its peer port): fully; open
//     connections are reset and new ones closed at once.
//   - TCP out of a cut-off node: not by source. The kernel dials 127.0.0.1 from
//     127.0.0.1 whatever the node, so a proxy cannot tell who calls. Gossip TCP
//     (push/pull, fallback probes) is therefore refused cluster-wide while any node
//     is cut off, which the others do not need (their UDP gossip flows); Raft and
//     gRPC calls the cut-off node itself makes to the others still go through. It
//     learns of no leader (nothing reaches it, and pre-vote requests are refused
//     while the others have one), so it cannot commit route changes, but its own
//     forward streams to the others may still carry messages.
type network struct {
	t testing.TB

	mu   sync.Mutex
	down map[string]bool // node IP -> cut off or killed
	// peerCut and peerStall hold the nodes whose peer port alone is cut off
	// (connections refused and reset) or stalled (bytes held, nothing answered);
	// a stall's channel is closed when it ends.
	peerCut   map[string]bool
	peerStall map[string]chan struct{}
	// holds are the cut-off nodes for which gossip TCP is refused everywhere (a
	// killed node holds it only while it shuts down).
	holds   map[string]bool
	proxies []io.Closer
}

// nextIP numbers the nodes' addresses across the whole test binary, so a node
// never binds an address a node of an earlier test still holds in TIME_WAIT.
var nextIP atomic.Uint32

func newNetwork(t testing.TB) *network {
	n := &network{t: t, down: map[string]bool{}, holds: map[string]bool{}, peerCut: map[string]bool{}, peerStall: map[string]chan struct{}{}}
	t.Cleanup(n.close)
	return n
}

func (n *network) close() {
	n.mu.Lock()
	ps := n.proxies
	n.proxies = nil
	n.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
}

func (n *network) isDown(ip string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.down[ip]
}

func (n *network) peerBlocked(ip string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.down[ip] || n.peerCut[ip]
}

// stalled returns a channel closed when the node's peer port stall ends, or nil
// when it is not stalled.
func (n *network) stalled(ip string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch, ok := n.peerStall[ip]; ok {
		return ch
	}
	return nil
}

// cutPeer refuses connections to the node's peer port and resets the open ones;
// gossip is untouched.
func (n *network) cutPeer(ep *endpoint) {
	n.mu.Lock()
	n.peerCut[ep.ip] = true
	n.mu.Unlock()
	ep.peer.reset()
}

// stallPeer holds every byte to and from the node's peer port from now on, on open
// connections and new ones, as a network that drops packets silently would.
func (n *network) stallPeer(ep *endpoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.peerStall[ep.ip]; !ok {
		n.peerStall[ep.ip] = make(chan struct{})
	}
}

// healPeer ends cutPeer and stallPeer; held bytes flow on.
func (n *network) healPeer(ep *endpoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.peerCut, ep.ip)
	if ch, ok := n.peerStall[ep.ip]; ok {
		close(ch)
		delete(n.peerStall, ep.ip)
	}
}

func (n *network) gossipTCPBlocked() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.holds) > 0
}

// endpoint is one node's addresses: where it binds and the proxies in front.
type endpoint struct {
	ip                   string // 127.0.1.k: the node's own sockets
	gossipPort, peerPort int    // the same on 127.0.0.1 (proxies) and on ip
	gossipUDP            *udpProxy
	gossipTCP, peer      *tcpProxy
}

// newEndpoint picks an address and two ports free on both 127.0.0.1 and it, and
// starts the proxies.
func (n *network) newEndpoint() *endpoint {
	n.t.Helper()
	k := nextIP.Add(1)
	ip := fmt.Sprintf("127.%d.%d.%d", 1+k/62500, k/250%250, 1+k%250)
	ep := &endpoint{ip: ip}
	for attempt := 0; ; attempt++ {
		if attempt == 50 {
			n.t.Fatalf("clustertest: no free ports for %s", ip)
		}
		gt, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			n.t.Fatalf("clustertest: listen: %v", err)
		}
		port := gt.Addr().(*net.TCPAddr).Port
		gu, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			gt.Close()
			continue
		}
		pt, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			gt.Close()
			gu.Close()
			continue
		}
		peerPort := pt.Addr().(*net.TCPAddr).Port
		if !free(ip, port, peerPort) {
			gt.Close()
			gu.Close()
			pt.Close()
			continue
		}
		ep.gossipPort, ep.peerPort = port, peerPort
		target := func(p int) string { return net.JoinHostPort(ip, strconv.Itoa(p)) }
		ep.gossipTCP = newTCPProxy(gt, target(port), true, func() bool { return n.isDown(ip) || n.gossipTCPBlocked() }, nil)
		ep.peer = newTCPProxy(pt, target(peerPort), false, func() bool { return n.peerBlocked(ip) }, func() <-chan struct{} { return n.stalled(ip) })
		ep.gossipUDP = newUDPProxy(gu, target(port), func(from string) bool { return n.isDown(ip) || n.isDown(from) })
		break
	}
	n.mu.Lock()
	n.proxies = append(n.proxies, ep.gossipTCP, ep.peer, ep.gossipUDP)
	n.mu.Unlock()
	return ep
}

// free reports whether the node's own sockets can bind.
func free(ip string, ports ...int) bool {
	var cs []io.Closer
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for _, p := range ports {
		addr := net.JoinHostPort(ip, strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		cs = append(cs, l)
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		cs = append(cs, u)
	}
	return true
}

// cut isolates the node at ep (see network) and resets its open connections.
func (n *network) cut(ep *endpoint) {
	n.mu.Lock()
	n.down[ep.ip] = true
	n.holds[ep.ip] = true
	n.mu.Unlock()
	ep.gossipTCP.reset()
	ep.peer.reset()
	n.mu.Lock()
	eps := n.proxies
	n.mu.Unlock()
	// Gossip TCP is refused everywhere while a node is cut off: drop what is open.
	for _, p := range eps {
		if tp, ok := p.(*tcpProxy); ok && tp.gossip {
			tp.reset()
		}
	}
}

// heal undoes cut.
func (n *network) heal(ep *endpoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.down, ep.ip)
	delete(n.holds, ep.ip)
}

// releaseGossip lets gossip TCP flow again once a killed node is gone; the node
// itself stays unreachable.
func (n *network) releaseGossip(ep *endpoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.holds, ep.ip)
}

func (ep *endpoint) close() {
	ep.gossipTCP.Close()
	ep.peer.Close()
	ep.gossipUDP.Close()
}

// tcpProxy forwards the connections of one listener to target, unless blocked.
// While stall (if set) returns a channel, bytes wait for it to close.
type tcpProxy struct {
	ln      net.Listener
	target  string
	blocked func() bool
	stall   func() <-chan struct{}
	gossip  bool
	closing chan struct{}

	mu    sync.Mutex // guards conns, closed
	conns map[net.Conn]bool
	done  bool
	wg    sync.WaitGroup
}

func newTCPProxy(ln net.Listener, target string, gossip bool, blocked func() bool, stall func() <-chan struct{}) *tcpProxy {
	p := &tcpProxy{ln: ln, target: target, gossip: gossip, blocked: blocked, stall: stall, closing: make(chan struct{}), conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.blocked() {
			_ = c.(*net.TCPConn).SetLinger(0) // best effort: a reset, as if nothing answered
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			c.Close()
			up.Close()
			return
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	if p.stall == nil {
		_, _ = io.Copy(dst, src) // ends when either side closes or is reset
	} else {
		p.stallingCopy(dst, src)
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// stallingCopy is io.Copy that holds what it read while the proxy is stalled.
func (p *tcpProxy) stallingCopy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if gate := p.stall(); gate != nil {
				select {
				case <-gate:
				case <-p.closing:
					return
				}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reset closes every open connection hard.
func (p *tcpProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // an error only loses the reset: the close still happens
		}
		c.Close()
	}
}

// Close stops the proxy and waits for its goroutines.
func (p *tcpProxy) Close() error {
	p.mu.Lock()
	if !p.done { // a moved node's proxies are closed twice
		close(p.closing)
	}
	p.done = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.reset()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// udpProxy forwards datagrams to target unless the destination or the sender (by
// its source IP) is cut off. Replies do not come back through it: memberlist
// answers to the address a ping names, which is the sender's own proxy.
type udpProxy struct {
	pc      net.PacketConn
	out     net.Conn
	blocked func(fromIP string) bool
	wg      sync.WaitGroup
}

func newUDPProxy(pc net.PacketConn, target string, blocked func(fromIP string) bool) *udpProxy {
	out, err := net.Dial("udp", target)
	if err != nil {
		panic(fmt.Sprintf("clustertest: udp dial %s: %v", target, err)) // a local UDP dial cannot fail
	}
	p := &udpProxy{pc: pc, out: out, blocked: blocked}
	p.wg.Add(2)
	go p.run()
	go p.drain()
	return p
}

func (p *udpProxy) run() {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ip := from.(*net.UDPAddr).IP.String()
		if p.blocked(ip) {
			continue
		}
		_, _ = p.out.Write(buf[:n]) // a lost datagram is what UDP promises anyway
	}
}

// drain discards whatever the node sends back to the proxy's own socket.
func (p *udpProxy) drain() {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		if _, err := p.out.Read(buf); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

func (p *udpProxy) Close() error {
	p.pc.Close()
	p.out.Close()
	p.wg.Wait()
	return nil
}
