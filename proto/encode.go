package proto

import "fmt"

// Encoders append a packet's wire form to dst and return the extended slice. They
// check what the decoder would refuse (lengths, QoS, packet ids), so a packet that
// encodes is one a conforming peer can decode.

// begin appends the fixed header byte and a one-byte remaining-length placeholder.
func begin(dst []byte, header byte) ([]byte, int) {
	start := len(dst) + 1
	return append(dst, header, 0), start
}

// Append implements Packet. The version is the packet's own Version field.
func (c *Connect) Append(dst []byte, _ Version) ([]byte, error) {
	name := c.ProtocolName
	if name == "" {
		name = "MQTT"
		if c.Version == V31 {
			name = "MQIsdp"
		}
	}
	var flags byte
	if c.CleanStart {
		flags |= 0x02
	}
	if c.Will != nil {
		if c.Will.QoS > 2 {
			return dst, malformed("will qos %d", c.Will.QoS)
		}
		flags |= 0x04 | c.Will.QoS<<3
		if c.Will.Retain {
			flags |= 0x20
		}
	}
	if c.PasswordSet {
		flags |= 0x40
	}
	if c.UsernameSet {
		flags |= 0x80
	}
	for _, f := range []struct {
		what string
		n    int
	}{{"client identifier", len(c.ClientID)}, {"user name", len(c.Username)}, {"password", len(c.Password)}} {
		if err := checkLen(f.what, f.n); err != nil {
			return dst, err
		}
	}
	dst, start := begin(dst, byte(CONNECT)<<4)
	dst = appendString(dst, name)
	dst = append(dst, byte(c.Version), flags)
	dst = appendUint16(dst, c.KeepAlive)
	var err error
	if c.Version == V5 {
		if dst, err = c.Props.append(dst); err != nil {
			return dst, err
		}
	}
	dst = appendString(dst, c.ClientID)
	if w := c.Will; w != nil {
		if c.Version == V5 {
			if dst, err = w.Props.append(dst); err != nil {
				return dst, err
			}
		}
		if err := checkLen("will topic", len(w.Topic)); err != nil {
			return dst, err
		}
		if err := checkLen("will payload", len(w.Payload)); err != nil {
			return dst, err
		}
		dst = appendBinary(appendString(dst, w.Topic), w.Payload)
	}
	if c.UsernameSet {
		dst = appendString(dst, c.Username)
	}
	if c.PasswordSet {
		dst = appendBinary(dst, c.Password)
	}
	return fixLength(dst, start)
}

// Append implements Packet.
func (c *Connack) Append(dst []byte, v Version) ([]byte, error) {
	dst, start := begin(dst, byte(CONNACK)<<4)
	var flags byte
	if c.SessionPresent {
		flags = 1
	}
	dst = append(dst, flags, byte(c.ReasonCode))
	if v == V5 {
		var err error
		if dst, err = c.Props.append(dst); err != nil {
			return dst, err
		}
	}
	return fixLength(dst, start)
}

// Append implements Packet. The payload is copied once into dst; the remaining length
// is computed up front so a large payload is never moved.
func (p *Publish) Append(dst []byte, v Version) ([]byte, error) {
	if p.QoS > 2 {
		return dst, malformed("publish qos %d", p.QoS)
	}
	if p.QoS > 0 && p.PacketID == 0 {
		return dst, malformed("publish qos %d with packet identifier 0", p.QoS)
	}
	if err := checkLen("topic name", len(p.Topic)); err != nil {
		return dst, err
	}
	header := byte(PUBLISH)<<4 | p.QoS<<1
	if p.Dup && p.QoS > 0 {
		header |= 0x08
	}
	if p.Retain {
		header |= 0x01
	}
	dst, start := begin(dst, header)
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		var err error
		if dst, err = p.Props.append(dst); err != nil {
			return dst, err
		}
	}
	n := len(dst) - start - 1 + len(p.Payload)
	if n > MaxVarint {
		return dst, &Error{Code: PacketTooLarge, Msg: fmt.Sprintf("publish of %d bytes", n)}
	}
	dst = putLength(dst, start, n)
	return append(dst, p.Payload...), nil
}

// appendAck writes PUBACK, PUBREC, PUBREL and PUBCOMP: the 5.0 reason code and
// properties are left out when they say nothing (success, no properties).
func appendAck(dst []byte, t PacketType, id uint16, code ReasonCode, props *Properties, v Version) ([]byte, error) {
	if id == 0 {
		return dst, malformed("%s with packet identifier 0", t)
	}
	header := byte(t) << 4
	if t == PUBREL {
		header |= 0x02
	}
	dst, start := begin(dst, header)
	dst = appendUint16(dst, id)
	if v == V5 && (code != Success || !props.Empty()) {
		dst = append(dst, byte(code))
		if !props.Empty() {
			var err error
			if dst, err = props.append(dst); err != nil {
				return dst, err
			}
		}
	}
	return fixLength(dst, start)
}

// Append implements Packet.
func (a *Puback) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBACK, a.PacketID, a.ReasonCode, &a.Props, v)
}

// Append implements Packet.
func (a *Pubrec) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBREC, a.PacketID, a.ReasonCode, &a.Props, v)
}

// Append implements Packet.
func (a *Pubrel) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBREL, a.PacketID, a.ReasonCode, &a.Props, v)
}

// Append implements Packet.
func (a *Pubcomp) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBCOMP, a.PacketID, a.ReasonCode, &a.Props, v)
}

// Append implements Packet.
func (s *Subscribe) Append(dst []byte, v Version) ([]byte, error) {
	if s.PacketID == 0 || len(s.Subscriptions) == 0 {
		return dst, malformed("subscribe needs a packet identifier and a topic filter")
	}
	dst, start := begin(dst, byte(SUBSCRIBE)<<4|0x02)
	dst = appendUint16(dst, s.PacketID)
	if v == V5 {
		var err error
		if dst, err = s.Props.append(dst); err != nil {
			return dst, err
		}
	}
	for _, sub := range s.Subscriptions {
		if err := checkLen("topic filter", len(sub.Filter)); err != nil {
			return dst, err
		}
		if sub.QoS > 2 || sub.RetainHandling > 2 {
			return dst, malformed("subscription options qos %d retain handling %d", sub.QoS, sub.RetainHandling)
		}
		opts := sub.QoS
		if v == V5 {
			if sub.NoLocal {
				opts |= 0x04
			}
			if sub.RetainAsPublished {
				opts |= 0x08
			}
			opts |= sub.RetainHandling << 4
		}
		dst = append(appendString(dst, sub.Filter), opts)
	}
	return fixLength(dst, start)
}

// Append implements Packet.
func (s *Suback) Append(dst []byte, v Version) ([]byte, error) {
	if s.PacketID == 0 || len(s.ReasonCodes) == 0 {
		return dst, malformed("suback needs a packet identifier and a reason code")
	}
	dst, start := begin(dst, byte(SUBACK)<<4)
	dst = appendUint16(dst, s.PacketID)
	if v == V5 {
		var err error
		if dst, err = s.Props.append(dst); err != nil {
			return dst, err
		}
	}
	for _, c := range s.ReasonCodes {
		dst = append(dst, byte(c))
	}
	return fixLength(dst, start)
}

// Append implements Packet.
func (u *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) {
	if u.PacketID == 0 || len(u.Filters) == 0 {
		return dst, malformed("unsubscribe needs a packet identifier and a topic filter")
	}
	dst, start := begin(dst, byte(UNSUBSCRIBE)<<4|0x02)
	dst = appendUint16(dst, u.PacketID)
	if v == V5 {
		var err error
		if dst, err = u.Props.append(dst); err != nil {
			return dst, err
		}
	}
	for _, f := range u.Filters {
		if err := checkLen("topic filter", len(f)); err != nil {
			return dst, err
		}
		dst = appendString(dst, f)
	}
	return fixLength(dst, start)
}

// Append implements Packet. Before 5.0 the reason codes are not sent.
func (u *Unsuback) Append(dst []byte, v Version) ([]byte, error) {
	if u.PacketID == 0 {
		return dst, malformed("unsuback with packet identifier 0")
	}
	dst, start := begin(dst, byte(UNSUBACK)<<4)
	dst = appendUint16(dst, u.PacketID)
	if v == V5 {
		if len(u.ReasonCodes) == 0 {
			return dst, malformed("unsuback needs a reason code")
		}
		var err error
		if dst, err = u.Props.append(dst); err != nil {
			return dst, err
		}
		for _, c := range u.ReasonCodes {
			dst = append(dst, byte(c))
		}
	}
	return fixLength(dst, start)
}

// Append implements Packet.
func (*Pingreq) Append(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

// Append implements Packet.
func (*Pingresp) Append(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

// appendReasonProps writes DISCONNECT and AUTH: empty for success without
// properties, as the specification allows.
func appendReasonProps(dst []byte, t PacketType, code ReasonCode, props *Properties, v Version) ([]byte, error) {
	dst, start := begin(dst, byte(t)<<4)
	if v == V5 && (code != Success || !props.Empty()) {
		dst = append(dst, byte(code))
		if !props.Empty() {
			var err error
			if dst, err = props.append(dst); err != nil {
				return dst, err
			}
		}
	}
	return fixLength(dst, start)
}

// Append implements Packet. Before 5.0 DISCONNECT has no body.
func (d *Disconnect) Append(dst []byte, v Version) ([]byte, error) {
	return appendReasonProps(dst, DISCONNECT, d.ReasonCode, &d.Props, v)
}

// Append implements Packet. AUTH exists only in 5.0.
func (a *Auth) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return dst, protocolErr("AUTH before MQTT 5.0")
	}
	return appendReasonProps(dst, AUTH, a.ReasonCode, &a.Props, v)
}

// Size returns the number of bytes p takes on the wire at version v.
func Size(p Packet, v Version) (int, error) {
	var scratch [256]byte
	b, err := p.Append(scratch[:0], v)
	return len(b), err
}
