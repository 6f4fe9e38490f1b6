package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// raftByte starts every Raft connection on the shared peer port.
const raftByte = 'R'

// mux splits the peer listener: connections starting with raftByte go to Raft, the
// rest (HTTP/2, so gRPC) to the gRPC server.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	raftConns chan net.Conn
	grpcConns chan net.Conn
	closed    chan struct{}
	once      sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

func newMux(ln net.Listener, advertise net.Addr) *mux {
	m := &mux{ln: ln, advertise: advertise, raftConns: make(chan net.Conn), grpcConns: make(chan net.Conn), closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	m.wg.Add(1)
	go m.accept()
	return m
}

func (m *mux) accept() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

// route reads the first byte (with a deadline, so a silent socket cannot hold a
// goroutine forever) and hands the connection on.
func (m *mux) route(c net.Conn) {
	defer m.wg.Done()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failure shows in the read
	br := bufio.NewReader(c)
	b, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	target := m.grpcConns
	pc := &peekedConn{Conn: c, r: br, m: m}
	m.mu.Lock()
	m.conns[pc] = struct{}{}
	m.mu.Unlock()
	if b[0] == raftByte {
		_, _ = br.Discard(1) // the byte was peeked: it is there
		target = m.raftConns
	}
	select {
	case target <- pc:
	case <-m.closed:
		c.Close()
	}
}

// close stops accepting and closes every connection handed out: Raft's transport
// leaves a reader per inbound connection that ends only when the socket does.
func (m *mux) close() {
	m.once.Do(func() {
		close(m.closed)
		m.ln.Close()
	})
	m.wg.Wait()
	m.mu.Lock()
	conns := m.conns
	m.conns = map[net.Conn]struct{}{}
	m.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// peekedConn replays what the mux read ahead.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
	m *mux
}

// Close closes the socket and forgets it.
func (c *peekedConn) Close() error {
	c.m.mu.Lock()
	delete(c.m.conns, c)
	c.m.mu.Unlock()
	return c.Conn.Close()
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	m      *mux
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{} // closed by Close: Accept returns
}

func newChanListener(m *mux, conns chan net.Conn) *chanListener {
	return &chanListener{m: m, conns: conns, closed: make(chan struct{})}
}

var errMuxClosed = errors.New("cluster: peer listener closed")

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.m.closed:
		return nil, errMuxClosed
	case <-l.closed:
		return nil, errMuxClosed
	}
}

// Close ends Accept; the mux owns the socket itself.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.m.ln.Addr() }

// raftLayer is Raft's stream layer over the mux. It keeps the connections it
// dialed so that closeDialed can end them: Raft's shutdown waits for RPCs in
// flight, and one to a stalled peer blocks in a read until the transport's timeout.
type raftLayer struct {
	*chanListener

	mu     sync.Mutex // guards dialed and done
	dialed map[*dialedConn]struct{}
	done   bool
}

var _ raft.StreamLayer = (*raftLayer)(nil)

func newRaftLayer(m *mux) *raftLayer {
	return &raftLayer{chanListener: newChanListener(m, m.raftConns), dialed: map[*dialedConn]struct{}{}}
}

// Addr is the address other nodes dial for Raft.
func (l *raftLayer) Addr() net.Addr { return l.m.advertise }

var errRaftLayerClosed = errors.New("cluster: raft stream layer closed")

// Dial opens a Raft connection to a peer.
func (l *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{raftByte}); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft dial %s: %w", address, err)
	}
	dc := &dialedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		c.Close()
		return nil, fmt.Errorf("raft dial %s: %w", address, errRaftLayerClosed)
	}
	l.dialed[dc] = struct{}{}
	return dc, nil
}

// closeDialed closes every connection Dial made and makes later dials fail.
func (l *raftLayer) closeDialed() {
	l.mu.Lock()
	l.done = true
	dialed := l.dialed
	l.dialed = map[*dialedConn]struct{}{}
	l.mu.Unlock()
	for c := range dialed {
		c.Conn.Close()
	}
}

// dialedConn is an outbound Raft connection that forgets itself when closed.
type dialedConn struct {
	net.Conn
	l *raftLayer
}

func (c *dialedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.dialed, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
