package node

import (
	"errors"
	"fmt"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// handle runs the effect of one packet from a connected client.
func (c *conn) handle(p proto.Packet) error {
	switch p := p.(type) {
	case *proto.Publish:
		return c.handlePublish(p)
	case *proto.Puback:
		c.ackFromClient(c.sess.Puback(p.PacketID, c.b.now()), p)
	case *proto.Pubrec:
		err := c.sess.Pubrec(p.PacketID, p.ReasonCode, c.b.now())
		c.ackFromClient(err, p)
		if p.ReasonCode.IsError() {
			return nil // a failed PUBREC ends the exchange (5.0 section 4.3.3): no PUBREL
		}
		code := proto.Success
		if err != nil {
			code = proto.PacketIdentifierNotFound
		}
		// The PUBREL waits until the released state is on disk: after PUBREL the
		// client forgets the id, so a crash must not make the broker resend the
		// PUBLISH, which the client would take as a new message.
		c.w.pushAck(proto.PUBREL, p.PacketID, code, c.sess.Ticket())
	case *proto.Pubrel:
		code := proto.Success
		if !c.sess.Release(p.PacketID) {
			code = proto.PacketIdentifierNotFound
		}
		// [MQTT-4.3.3-11] answer PUBREL with PUBCOMP, even for an unknown id. It waits
		// until the id is gone from disk too: after PUBCOMP the client may reuse it.
		c.w.pushAck(proto.PUBCOMP, p.PacketID, code, c.sess.Ticket())
	case *proto.Pubcomp:
		c.ackFromClient(c.sess.Pubcomp(p.PacketID, c.b.now()), p)
	case *proto.Subscribe:
		return c.handleSubscribe(p)
	case *proto.Unsubscribe:
		return c.handleUnsubscribe(p)
	case *proto.Pingreq:
		c.w.pushControl(&proto.Pingresp{}) // [MQTT-3.12.4-1]
	case *proto.Disconnect:
		return c.handleDisconnect(p)
	case *proto.Connect:
		// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
		return &proto.Error{Code: proto.ProtocolError, Msg: "second CONNECT"}
	case *proto.Auth:
		// No enhanced authentication method is configured, so AUTH is unexpected
		// [MQTT-4.12.0-1].
		return &proto.Error{Code: proto.ProtocolError, Msg: "AUTH without an authentication method"}
	default:
		return &proto.Error{Code: proto.ProtocolError, Msg: fmt.Sprintf("%s from a client", p.Type())}
	}
	return nil
}

// ackFromClient logs an acknowledgement for a packet id the session was not waiting
// for. Mosquitto and EMQX ignore these rather than disconnect: they happen after a
// takeover moved the inflight state, and closing would only lose more.
func (c *conn) ackFromClient(err error, p proto.Packet) {
	if err != nil && errors.Is(err, session.ErrPacketIDNotFound) {
		c.log.Debug("acknowledgement for an unknown packet id", "packet", p.Type().String(), "err", err)
	}
}

// handleDisconnect ends the connection on the client's DISCONNECT.
func (c *conn) handleDisconnect(p *proto.Disconnect) error {
	if c.version == proto.V5 {
		if p.Props.Has(proto.PropSessionExpiry) {
			if c.expiry == 0 && p.Props.SessionExpiry != 0 {
				// [MQTT-3.14.2-2] cannot make a session persistent at DISCONNECT.
				return &proto.Error{Code: proto.ProtocolError, Msg: "session expiry set on DISCONNECT after 0 on CONNECT"}
			}
			c.expiry = p.Props.SessionExpiry
			c.sess.SetExpiry(c.expiry)
		}
		// Only a normal disconnection (0x00) deletes the will [MQTT-3.1.2-10]: 0x04
		// asks for it, and any failure code publishes it as well (section 3.1.2.5).
		c.cleanDisconnect = p.ReasonCode == proto.Success
	} else {
		c.cleanDisconnect = true // [MQTT-3.14.4-3] discard the will
	}
	return errDisconnect
}
