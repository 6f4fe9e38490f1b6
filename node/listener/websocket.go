package listener

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"

	"github.com/coder/websocket"
)

// ConnServer runs MQTT on an accepted connection; *node.Broker is one.
type ConnServer interface {
	ServeConn(nc net.Conn)
}

// Subprotocols are the WebSocket subprotocols offered for MQTT: "mqtt" for 3.1.1 and
// 5.0 [MQTT-6.0.0-3], "mqttv3.1" for 3.1.
var Subprotocols = []string{"mqtt", "mqttv3.1"}

// WebSocketHandler serves MQTT over WebSocket: each upgraded request becomes one
// connection of srv, carried in binary frames [MQTT-6.0.0-1]. A text frame ends the
// connection (close status 1003, unsupported data). Any origin is accepted: browsers
// connect from every page, and MQTT's own authentication decides who gets in.
func WebSocketHandler(srv ConnServer, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wc, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       Subprotocols,
			InsecureSkipVerify: true,
		})
		if err != nil {
			// Accept has answered with an HTTP error already.
			log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
			return
		}
		// The connection outlives this request: its lifetime is the broker's to end.
		nc := websocket.NetConn(context.Background(), wc, websocket.MessageBinary)
		if r.TLS != nil {
			nc = &tlsStateConn{Conn: nc, state: *r.TLS}
		}
		srv.ServeConn(nc)
	})
}

// tlsStateConn carries the TLS state of a WebSocket over TLS, so the broker can read
// the client certificate as it does for MQTT over TLS.
type tlsStateConn struct {
	net.Conn
	state tls.ConnectionState
}

// ConnectionState returns the TLS state of the HTTPS request that was upgraded.
func (c *tlsStateConn) ConnectionState() tls.ConnectionState { return c.state }
