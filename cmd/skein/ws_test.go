package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// These tests run skein serve with its WebSocket listeners (--ws-addr, --wss-addr)
// and talk to them with github.com/coder/websocket, a real WebSocket client.

// wsClient is an HTTP client of its own, so that its idle connections are closed at
// the end of the test (goleak would see them otherwise).
func wsClient(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: nodetest.Timeout}
}

// wsDial opens a WebSocket to url offering the subprotocols.
func wsDial(t *testing.T, url string, hc *http.Client, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	defer cancel()
	wc, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, Subprotocols: subprotocols})
	if err == nil {
		t.Cleanup(func() { _ = wc.CloseNow() }) // already closed when the test closed it
	}
	return wc, resp, err
}

// wsMQTT dials url and returns an MQTT connection carried in binary frames.
func wsMQTT(t *testing.T, url string, hc *http.Client, v proto.Version, subprotocol string) (*tlsMQTT, *websocket.Conn) {
	t.Helper()
	wc, _, err := wsDial(t, url, hc, subprotocol)
	if err != nil {
		t.Fatalf("WebSocket dial %s: %v", url, err)
	}
	if got := wc.Subprotocol(); got != subprotocol {
		t.Fatalf("negotiated subprotocol %q, want %q", got, subprotocol)
	}
	return tlsWrap(t, websocket.NetConn(context.Background(), wc, websocket.MessageBinary), v), wc
}

// wsConnect is wsMQTT followed by a CONNECT that must succeed.
func wsConnect(t *testing.T, url string, hc *http.Client, v proto.Version, clientID string) *tlsMQTT {
	t.Helper()
	subprotocol := "mqtt"
	if v == proto.V31 {
		subprotocol = "mqttv3.1"
	}
	c, _ := wsMQTT(t, url, hc, v, subprotocol)
	if ack := c.connect(&proto.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 60}); ack.ReasonCode != proto.Success {
		t.Fatalf("CONNECT %q over WebSocket refused: %v", clientID, ack.ReasonCode)
	}
	return c
}

// wsCloseStatus reads from wc until the connection ends and returns the close
// status the broker sent.
func wsCloseStatus(t *testing.T, wc *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	defer cancel()
	for {
		typ, data, err := wc.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the broker kept the WebSocket open for %v", nodetest.Timeout)
			}
			return websocket.CloseStatus(err)
		}
		t.Logf("before the close the broker sent a %v message %q", typ, data)
	}
}

func TestWSListener(t *testing.T) {
	ws := freeAddr(t)
	plain, _ := startBrokerProc(t, "--sys-interval", "0", "--ws-addr", ws, "--ws-path", "/custom/mqtt")
	url := "ws://" + ws + "/custom/mqtt"
	hc := wsClient(t, nil)

	// A WebSocket subscriber stays connected through every case.
	watch := wsConnect(t, url, hc, proto.V5, "ws-watch")
	watch.subscribe(1, 1, "ws/watch")
	var watched int
	stillWatching := func(t *testing.T) {
		t.Helper()
		watched++
		payload := fmt.Sprintf("still here %d", watched)
		pub := nodetest.Connect(t, plain, proto.V311, "ws-watch-pub")
		pub.Publish(&proto.Publish{QoS: 1, PacketID: 1, Topic: "ws/watch", Payload: []byte(payload)})
		pub.Disconnect()
		watch.expectPublish("ws/watch", payload)
	}

	for _, v := range []proto.Version{proto.V5, proto.V311, proto.V31} {
		t.Run("websocket to tcp and back "+v.String(), func(t *testing.T) {
			c := wsConnect(t, url, hc, v, "ws-"+v.String())
			c.subscribe(1, 1, "ws/to-ws")
			tcp := nodetest.Connect(t, plain, proto.V5, "tcp-"+v.String())
			tcp.Subscribe(1, 1, "ws/to-tcp")
			tcp.Publish(&proto.Publish{QoS: 1, PacketID: 2, Topic: "ws/to-ws", Payload: []byte("from tcp")})
			c.expectPublish("ws/to-ws", "from tcp")
			if code := c.publish(1, 2, "ws/to-tcp", "from ws"); code.IsError() {
				t.Fatalf("PUBACK %v", code)
			}
			tcp.ExpectPublish("ws/to-tcp", "from ws")
			tcp.Disconnect()
		})
	}

	t.Run("message larger than one frame buffer", func(t *testing.T) {
		// 100 KiB: beyond coder/websocket's default 32 KiB message limit, which the
		// listener must lift since MQTT has its own (--max-packet-size).
		big := strings.Repeat("0123456789abcdef", 100*1024/16)
		c := wsConnect(t, url, hc, proto.V311, "ws-big")
		c.subscribe(1, 1, "ws/big")
		if code := c.publish(1, 2, "ws/big", big); code != proto.Success {
			t.Fatalf("PUBACK %v", code)
		}
		c.expectPublish("ws/big", big)
	})

	t.Run("wrong path", func(t *testing.T) {
		_, resp, err := wsDial(t, "ws://"+ws+"/mqtt", hc, "mqtt")
		if err == nil {
			t.Fatal("WebSocket upgrade on /mqtt succeeded with --ws-path /custom/mqtt")
		}
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("response %v, want 404", resp)
		}
		stillWatching(t)
	})

	t.Run("plain http request", func(t *testing.T) {
		resp, err := hc.Get("http://" + ws + "/custom/mqtt")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // drain so that the connection is reused or closed cleanly
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("GET without upgrade: status %d, want 426", resp.StatusCode)
		}
		stillWatching(t)
	})

	// A text frame is refused with close status 1003 [MQTT-6.0.0-1], before or after
	// CONNECT, and only that connection ends.
	for _, afterConnect := range []bool{false, true} {
		t.Run(fmt.Sprintf("text frame after connect %v", afterConnect), func(t *testing.T) {
			c, wc := wsMQTT(t, url, hc, proto.V311, "mqtt")
			payload := tlsConnectBytes(t)
			if afterConnect {
				if ack := c.connect(&proto.Connect{ClientID: "ws-text", CleanStart: true, KeepAlive: 60}); ack.ReasonCode != proto.Success {
					t.Fatalf("CONNACK %v", ack.ReasonCode)
				}
				payload = []byte{0xc0, 0x00} // PINGREQ
			}
			ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
			defer cancel()
			if err := wc.Write(ctx, websocket.MessageText, payload); err != nil {
				t.Fatal(err)
			}
			if got := wsCloseStatus(t, wc); got != websocket.StatusUnsupportedData {
				t.Fatalf("close status %v, want %v (1003)", got, websocket.StatusUnsupportedData)
			}
			stillWatching(t)
		})
	}

	// Binary frames that are not MQTT end the connection like bad bytes on TCP.
	for _, g := range []struct {
		name string
		data []byte
	}{
		{"reserved packet type", []byte{0x00, 0x00}},
		{"pingreq before connect", []byte{0xc0, 0x00}}, // [MQTT-3.1.0-1]
		{"remaining length of five bytes", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	} {
		t.Run("garbage binary frame "+g.name, func(t *testing.T) {
			c, _ := wsMQTT(t, url, hc, proto.V311, "mqtt")
			c.sendRaw(g.data)
			if got := c.expectClosed(); len(got) != 0 {
				t.Fatalf("the broker answered %v to garbage", got)
			}
			stillWatching(t)
		})
	}
}

// TestWSSecure runs MQTT over WebSocket with TLS (--wss-addr), with client
// certificates required and their Common Name as the username.
func TestWSSecure(t *testing.T) {
	pki := tlsNewPKI(t)
	acl := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(acl, []byte("user alice\ntopic readwrite users/alice/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wss, ws := freeAddr(t), freeAddr(t)
	startBrokerProc(t, "--sys-interval", "0", "--wss-addr", wss, "--ws-addr", ws,
		"--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey, "--tls-ca", pki.CAFile, "--tls-require-client-cert",
		"--use-identity-as-username", "--allow-anonymous=false", "--acl-file", acl)
	url := "wss://" + wss + "/mqtt"

	t.Run("client certificate is the identity", func(t *testing.T) {
		hc := wsClient(t, pki.ClientConfig(t, pki.Client(t, "valid", "alice")))
		c := wsConnect(t, url, hc, proto.V5, "wss-alice")
		codes := c.subscribe(1, 1, "users/alice/#", "users/bob/#")
		if len(codes) != 2 || codes[0] != proto.GrantedQoS1 || codes[1] != proto.NotAuthorized {
			t.Fatalf("SUBACK %v, want [granted QoS 1, not authorized]: the ACL must see the certificate's CN alice", codes)
		}
		if code := c.publish(1, 2, "users/alice/x", "over wss"); code != proto.Success {
			t.Fatalf("PUBACK %v", code)
		}
		c.expectPublish("users/alice/x", "over wss")
	})

	for _, kind := range []string{"none", "expired", "untrusted"} {
		t.Run("client certificate "+kind, func(t *testing.T) {
			pair := tlsPair{}
			if kind != "none" {
				pair = pki.Client(t, kind, "alice")
			}
			hc := wsClient(t, pki.ClientConfig(t, pair))
			if _, _, err := wsDial(t, url, hc, "mqtt"); err == nil {
				t.Fatal("WebSocket over TLS opened without a valid client certificate")
			}
		})
	}

	t.Run("plain websocket has no certificate", func(t *testing.T) {
		c, _ := wsMQTT(t, "ws://"+ws+"/mqtt", wsClient(t, nil), proto.V311, "mqtt")
		ack := c.connect(&proto.Connect{ClientID: "ws-anon", CleanStart: true, KeepAlive: 60,
			UsernameSet: true, Username: "alice", PasswordSet: true, Password: []byte("x")})
		if ack.ReasonCode != proto.ConnRefusedNotAuthorized {
			t.Fatalf("CONNACK %v, want 5 (not authorized)", ack.ReasonCode)
		}
		if got := c.expectClosed(); len(got) != 0 {
			t.Fatalf("after the refusal got %v", got)
		}
	})
}
