package listener_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/skein-mq/skein/node/listener"
)

// wsEcho is a ConnServer that echoes every byte back and records what it learns of
// each connection: its remote address and, over TLS, the client certificate's CN.
type wsEcho struct {
	mu      sync.Mutex // guards remotes and cns
	remotes []net.Addr
	cns     []string // "" for a connection without TLS state, "-" for TLS without a certificate
	wg      sync.WaitGroup
}

func (e *wsEcho) ServeConn(nc net.Conn) {
	cn := ""
	if ts, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		cn = "-"
		if chains := ts.ConnectionState().VerifiedChains; len(chains) > 0 {
			cn = chains[0][0].Subject.CommonName
		}
	}
	e.mu.Lock()
	e.remotes = append(e.remotes, nc.RemoteAddr())
	e.cns = append(e.cns, cn)
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer nc.Close()
		_, _ = io.Copy(nc, nc) // until the client goes or sends what NetConn refuses
	}()
}

func (e *wsEcho) last() (net.Addr, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.remotes) == 0 {
		return nil, ""
	}
	return e.remotes[len(e.remotes)-1], e.cns[len(e.cns)-1]
}

// wsStart serves the handler on an httptest server, with TLS when cfg is not nil.
func wsStart(t *testing.T, cfg *tls.Config) (*wsEcho, *httptest.Server) {
	t.Helper()
	e := &wsEcho{}
	srv := httptest.NewUnstartedServer(listener.WebSocketHandler(e, slog.New(slog.NewTextHandler(io.Discard, nil))))
	if cfg != nil {
		srv.TLS = cfg
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		srv.Close()
		e.wg.Wait()
	})
	return e, srv
}

// wsDial dials the server's URL with the subprotocols; tlsCfg, when set, is the
// client's TLS configuration.
func wsDial(t *testing.T, srv *httptest.Server, tlsCfg *tls.Config, header http.Header, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), tlsTimeout)
	defer cancel()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, HTTPHeader: header, Subprotocols: subprotocols,
	})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() }) // the test may have closed it already
	}
	return c, resp, err
}

// wsRoundTrip sends msg in a binary message and reads len(msg) echoed bytes, in as
// many messages as the server used.
func wsRoundTrip(t *testing.T, c *websocket.Conn, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tlsTimeout)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	var got []byte
	for len(got) < len(msg) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", len(got), len(msg), err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("the server answered in a %v message, want binary [MQTT-6.0.0-1]", typ)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs from what was sent (%d bytes)", len(msg))
	}
}

func TestWSSubprotocols(t *testing.T) {
	_, srv := wsStart(t, nil)
	cases := []struct {
		offered []string
		want    string
	}{
		{[]string{"mqtt"}, "mqtt"},
		{[]string{"mqttv3.1"}, "mqttv3.1"},
		{[]string{"chat", "mqtt"}, "mqtt"},
		{nil, ""}, // none offered: accepted without one
	}
	for _, c := range cases {
		name := strings.Join(c.offered, ",")
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			conn, _, err := wsDial(t, srv, nil, nil, c.offered...)
			if err != nil {
				t.Fatal(err)
			}
			if got := conn.Subprotocol(); got != c.want {
				t.Fatalf("subprotocol %q, want %q", got, c.want)
			}
			wsRoundTrip(t, conn, []byte{0xc0, 0x00})
			conn.Close(websocket.StatusNormalClosure, "")
		})
	}
}

func TestWSBinaryStream(t *testing.T) {
	e, srv := wsStart(t, nil)
	conn, _, err := wsDial(t, srv, nil, nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("small", func(t *testing.T) { wsRoundTrip(t, conn, []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")) })
	t.Run("larger than the default read limit", func(t *testing.T) {
		wsRoundTrip(t, conn, bytes.Repeat([]byte("0123456789abcdef"), 100*1024/16))
	})
	t.Run("remote address is the client's", func(t *testing.T) {
		// The login limiter counts failures per remote IP: it must be the peer's.
		addr, cn := e.last()
		ta, ok := addr.(*net.TCPAddr)
		if !ok || !ta.IP.IsLoopback() || ta.Port == 0 {
			t.Fatalf("remote address %v (%T), want the client's TCP address", addr, addr)
		}
		if cn != "" {
			t.Fatalf("a plain WebSocket offers TLS state (%q)", cn)
		}
	})
	t.Run("any origin", func(t *testing.T) {
		c2, _, err := wsDial(t, srv, nil, http.Header{"Origin": {"https://elsewhere.example"}}, "mqtt")
		if err != nil {
			t.Fatalf("a page of another origin was refused: %v", err)
		}
		wsRoundTrip(t, c2, []byte{0xc0, 0x00})
	})
	conn.Close(websocket.StatusNormalClosure, "")
}

func TestWSRefusals(t *testing.T) {
	_, srv := wsStart(t, nil)
	t.Run("text message closes with 1003", func(t *testing.T) {
		conn, _, err := wsDial(t, srv, nil, nil, "mqtt")
		if err != nil {
			t.Fatal(err)
		}
		wsRoundTrip(t, conn, []byte{0xc0, 0x00}) // binary works first
		ctx, cancel := context.WithTimeout(context.Background(), tlsTimeout)
		defer cancel()
		if err := conn.Write(ctx, websocket.MessageText, []byte{0xc0, 0x00}); err != nil {
			t.Fatal(err)
		}
		_, _, err = conn.Read(ctx)
		if got := websocket.CloseStatus(err); got != websocket.StatusUnsupportedData {
			t.Fatalf("after a text message: %v (status %v), want close status 1003", err, got)
		}
	})
	t.Run("a refused connection does not affect another", func(t *testing.T) {
		other, _, err := wsDial(t, srv, nil, nil, "mqtt")
		if err != nil {
			t.Fatal(err)
		}
		bad, _, err := wsDial(t, srv, nil, nil, "mqtt")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), tlsTimeout)
		defer cancel()
		if err := bad.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := bad.Read(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
			t.Fatalf("text message: %v", err)
		}
		wsRoundTrip(t, other, []byte("still here"))
		other.Close(websocket.StatusNormalClosure, "")
	})
	t.Run("plain HTTP request", func(t *testing.T) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // drain for a clean close
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("status %d, want 426", resp.StatusCode)
		}
	})
}

// TestWSTLSState checks that a WebSocket over TLS hands the broker the TLS state of
// the upgraded request, so that a client certificate identifies the client as it
// does on the MQTT over TLS listener.
func TestWSTLSState(t *testing.T) {
	p := tlsNewPKI(t)
	server := p.server("server", "srv")
	store, err := listener.NewCertStore(listener.TLSFiles{CertFile: server.Cert, KeyFile: server.Key, CAFile: p.ca.file})
	if err != nil {
		t.Fatal(err)
	}
	e, srv := wsStart(t, store.ServerConfig())
	cases := []struct {
		name string
		cert tlsPair
		want string
	}{
		{"client certificate", p.client("valid", "alice"), "alice"},
		{"no client certificate", tlsPair{}, "-"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, _, err := wsDial(t, srv, p.clientConfig(c.cert), nil, "mqtt")
			if err != nil {
				t.Fatal(err)
			}
			wsRoundTrip(t, conn, []byte{0xc0, 0x00})
			if _, cn := e.last(); cn != c.want {
				t.Fatalf("the served connection shows certificate CN %q, want %q", cn, c.want)
			}
			conn.Close(websocket.StatusNormalClosure, "")
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		if _, _, err := wsDial(t, srv, p.clientConfig(p.client("untrusted", "eve")), nil, "mqtt"); err == nil {
			t.Fatal("a certificate of another CA was accepted")
		}
	})
}
