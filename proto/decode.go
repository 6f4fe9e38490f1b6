package proto

import (
	"errors"
	"fmt"
	"io"
)

// ByteReader is what ReadPacket reads from: a *bufio.Reader in practice.
type ByteReader interface {
	io.Reader
	io.ByteReader
}

// ReadPacket reads one control packet. v is the connection's protocol version, known
// once CONNECT has been read (CONNECT itself is decoded whatever v is). maxSize bounds
// the whole packet, fixed header included; 0 means the protocol maximum. A packet over
// maxSize fails with ErrPacketTooLarge before its body is read or allocated, so a
// client cannot make the server allocate more than maxSize per packet.
//
// Errors from the reader (EOF, timeouts) are returned as they are; decoding failures
// are *Error with the reason code to send.
func ReadPacket(r ByteReader, v Version, maxSize int) (Packet, error) {
	header, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	n, hdrLen, err := readLength(r)
	if err != nil {
		return nil, err
	}
	if maxSize > 0 && 1+hdrLen+n > maxSize {
		return nil, &Error{Code: PacketTooLarge, Msg: fmt.Sprintf("%s of %d bytes exceeds maximum packet size %d",
			PacketType(header>>4), 1+hdrLen+n, maxSize)}
	}
	var body []byte
	if n > 0 {
		body = make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return Decode(header, body, v)
}

// readLength reads the remaining length, returning it and how many bytes it took.
// The header byte is already read, so EOF here is always inside a packet.
func readLength(r io.ByteReader) (n, size int, err error) {
	mult := 1
	for size < 4 {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, size, err
		}
		size++
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			return n, size, nil
		}
		mult *= 128
	}
	return 0, size, malformed("remaining length longer than 4 bytes")
}

// FixedHeader reads the fixed header at the start of b: its length in bytes (the
// type byte and the remaining length) and the remaining length, so the whole
// packet is headerLen+remaining bytes. It fails with io.ErrUnexpectedEOF when b
// ends inside the fixed header, and with a malformed-packet *Error when the
// remaining length is longer than 4 bytes.
func FixedHeader(b []byte) (headerLen, remaining int, err error) {
	mult := 1
	for i := 1; i <= 4; i++ {
		if i >= len(b) {
			return 0, 0, io.ErrUnexpectedEOF
		}
		c := b[i]
		remaining += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return i + 1, remaining, nil
		}
		mult *= 128
	}
	return 0, 0, malformed("remaining length longer than 4 bytes")
}

// DecodeBytes decodes one whole packet (fixed header included) from b and returns it
// with the number of bytes it used. It fails with io.ErrUnexpectedEOF when b holds
// only part of a packet. Slices in the result alias b.
func DecodeBytes(b []byte, v Version) (Packet, int, error) {
	h, n, err := FixedHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if len(b)-h < n {
		return nil, 0, io.ErrUnexpectedEOF
	}
	end := h + n
	p, err := Decode(b[0], b[h:end:end], v)
	return p, end, err
}

// Decode decodes a packet from its fixed-header first byte and its body. Slices in
// the result alias body.
func Decode(header byte, body []byte, v Version) (Packet, error) {
	t := PacketType(header >> 4)
	flags := header & 0x0f
	if t != PUBLISH {
		want := byte(0)
		if t == PUBREL || t == SUBSCRIBE || t == UNSUBSCRIBE {
			want = 2
		}
		if flags != want { // [MQTT-2.2.2-1] [MQTT-2.2.2-2]
			return nil, malformed("%s: reserved flags 0x%X", t, flags)
		}
	}
	r := &reader{buf: body}
	var p Packet
	switch t {
	case CONNECT:
		p = decodeConnect(r)
	case CONNACK:
		p = decodeConnack(r, v)
	case PUBLISH:
		p = decodePublish(r, flags, v)
	case PUBACK:
		a := &Puback{}
		a.PacketID, a.ReasonCode = decodeAck(r, v, t, &a.Props)
		p = a
	case PUBREC:
		a := &Pubrec{}
		a.PacketID, a.ReasonCode = decodeAck(r, v, t, &a.Props)
		p = a
	case PUBREL:
		a := &Pubrel{}
		a.PacketID, a.ReasonCode = decodeAck(r, v, t, &a.Props)
		p = a
	case PUBCOMP:
		a := &Pubcomp{}
		a.PacketID, a.ReasonCode = decodeAck(r, v, t, &a.Props)
		p = a
	case SUBSCRIBE:
		p = decodeSubscribe(r, v)
	case SUBACK:
		p = decodeSuback(r, v)
	case UNSUBSCRIBE:
		p = decodeUnsubscribe(r, v)
	case UNSUBACK:
		p = decodeUnsuback(r, v)
	case PINGREQ:
		p = &Pingreq{}
	case PINGRESP:
		p = &Pingresp{}
	case DISCONNECT:
		d := &Disconnect{}
		d.ReasonCode = decodeReasonProps(r, v, t, &d.Props)
		p = d
	case AUTH:
		if v != V5 {
			return nil, malformed("AUTH before MQTT 5.0")
		}
		a := &Auth{}
		a.ReasonCode = decodeReasonProps(r, v, t, &a.Props)
		p = a
	default:
		return nil, malformed("reserved packet type 0")
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode %s: %w", t, r.err)
	}
	if r.remaining() != 0 {
		return nil, fmt.Errorf("decode %s: %w", t, malformed("%d bytes after the end of the packet", r.remaining()))
	}
	return p, nil
}

func decodeConnect(r *reader) *Connect {
	c := &Connect{}
	c.ProtocolName = r.string("protocol name")
	level := r.byte1("protocol level")
	if r.err != nil {
		return c
	}
	c.Version = Version(level)
	switch {
	case c.ProtocolName == "MQTT" && (c.Version == V311 || c.Version == V5):
	case c.ProtocolName == "MQIsdp" && c.Version == V31:
	case c.ProtocolName == "MQTT" || c.ProtocolName == "MQIsdp":
		// [MQTT-3.1.2-2] a known protocol at a level we do not speak: CONNACK 0x01/0x84.
		r.fail(&Error{Code: UnsupportedProtocolVersion, Msg: fmt.Sprintf("protocol %q level %d", c.ProtocolName, level)})
		return c
	default:
		// [MQTT-3.1.2-1] not MQTT at all: close without CONNACK.
		r.fail(protocolErr("protocol name %q", c.ProtocolName))
		return c
	}
	flags := r.byte1("connect flags")
	c.KeepAlive = r.uint16("keep alive")
	if r.err != nil {
		return c
	}
	if flags&0x01 != 0 { // [MQTT-3.1.2-3]
		r.fail(malformed("connect flags: reserved bit set"))
		return c
	}
	c.CleanStart = flags&0x02 != 0
	willFlag := flags&0x04 != 0
	willQoS := (flags >> 3) & 0x03
	willRetain := flags&0x20 != 0
	c.PasswordSet = flags&0x40 != 0
	c.UsernameSet = flags&0x80 != 0
	if !willFlag && (willQoS != 0 || willRetain) { // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]
		r.fail(malformed("connect flags: will qos or retain without will flag"))
		return c
	}
	if willQoS == 3 { // [MQTT-3.1.2-14]
		r.fail(malformed("connect flags: will qos 3"))
		return c
	}
	if c.Version != V5 && c.PasswordSet && !c.UsernameSet { // [MQTT-3.1.2-22]
		r.fail(malformed("connect flags: password without user name"))
		return c
	}
	if c.Version == V5 {
		c.Props.decode(r, CONNECT)
	}
	c.ClientID = r.string("client identifier")
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if c.Version == V5 {
			w.Props.decode(r, willProps)
		}
		w.Topic = r.string("will topic")
		w.Payload = r.binary("will payload")
		if r.err == nil {
			if err := ValidTopicName(w.Topic); err != nil {
				r.fail(fmt.Errorf("will topic: %w", err))
			}
		}
		c.Will = w
	}
	if c.UsernameSet {
		c.Username = r.string("user name")
	}
	if c.PasswordSet {
		c.Password = r.binary("password")
	}
	return c
}

func decodeConnack(r *reader, v Version) *Connack {
	c := &Connack{}
	flags := r.byte1("connack flags")
	c.ReasonCode = ReasonCode(r.byte1("connect reason code"))
	if r.err != nil {
		return c
	}
	if flags&0xfe != 0 { // [MQTT-3.2.2-1]
		r.fail(malformed("connack flags: reserved bits set"))
		return c
	}
	c.SessionPresent = flags&1 != 0
	if v == V5 {
		c.Props.decode(r, CONNACK)
	}
	return c
}

func decodePublish(r *reader, flags byte, v Version) *Publish {
	p := &Publish{
		Dup:    flags&0x08 != 0,
		QoS:    (flags >> 1) & 0x03,
		Retain: flags&0x01 != 0,
	}
	if p.QoS == 3 { // [MQTT-3.3.1-4]
		r.fail(malformed("publish: qos 3"))
		return p
	}
	if p.QoS == 0 && p.Dup { // [MQTT-3.3.1-2]
		r.fail(malformed("publish: dup set on qos 0"))
		return p
	}
	p.Topic = r.string("topic name")
	if p.QoS > 0 {
		p.PacketID = r.uint16("packet identifier")
		if r.err == nil && p.PacketID == 0 { // [MQTT-2.3.1-1]
			r.fail(malformed("publish: packet identifier 0"))
			return p
		}
	}
	if v == V5 {
		p.Props.decode(r, PUBLISH)
	}
	if r.err != nil {
		return p
	}
	if p.Topic == "" {
		if v != V5 || !p.Props.Has(PropTopicAlias) { // [MQTT-3.3.2-1]
			r.fail(protocolErr("publish: empty topic name"))
			return p
		}
	} else if err := ValidTopicName(p.Topic); err != nil {
		r.fail(err)
		return p
	}
	p.Payload = r.rest()
	return p
}

func decodeAck(r *reader, v Version, t PacketType, props *Properties) (uint16, ReasonCode) {
	id := decodePacketID(r, t)
	if v != V5 || r.err != nil || r.remaining() == 0 {
		return id, Success
	}
	code := ReasonCode(r.byte1("reason code"))
	if r.remaining() > 0 {
		props.decode(r, t)
	}
	return id, code
}

func decodeReasonProps(r *reader, v Version, t PacketType, props *Properties) ReasonCode {
	if v != V5 || r.remaining() == 0 {
		return Success
	}
	code := ReasonCode(r.byte1("reason code"))
	if r.remaining() > 0 {
		props.decode(r, t)
	}
	return code
}

func decodePacketID(r *reader, t PacketType) uint16 {
	id := r.uint16("packet identifier")
	if r.err == nil && id == 0 { // [MQTT-2.3.1-1]
		r.fail(malformed("%s: packet identifier 0", t))
	}
	return id
}

func decodeSubscribe(r *reader, v Version) *Subscribe {
	s := &Subscribe{PacketID: decodePacketID(r, SUBSCRIBE)}
	if v == V5 {
		s.Props.decode(r, SUBSCRIBE)
	}
	for r.err == nil && r.remaining() > 0 {
		sub := Subscription{Filter: r.string("topic filter")}
		opts := r.byte1("subscription options")
		if r.err != nil {
			break
		}
		sub.QoS = opts & 0x03
		if sub.QoS == 3 {
			if v == V5 { // 5.0 §3.8.3.1: maximum qos 3 is a protocol error
				r.fail(protocolErr("subscribe: qos 3"))
			} else { // [MQTT-3.8.3-4] (3.1.1): malformed
				r.fail(malformed("subscribe: qos 3"))
			}
			break
		}
		if v == V5 {
			sub.NoLocal = opts&0x04 != 0
			sub.RetainAsPublished = opts&0x08 != 0
			sub.RetainHandling = (opts >> 4) & 0x03
			if sub.RetainHandling == 3 {
				r.fail(protocolErr("subscribe: retain handling 3"))
				break
			}
			if opts&0xc0 != 0 { // [MQTT-3.8.3-5]
				r.fail(malformed("subscribe: reserved option bits set"))
				break
			}
		} else if opts&0xfc != 0 { // [MQTT-3.8.3-4]
			r.fail(malformed("subscribe: reserved option bits set"))
			break
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if r.err == nil && len(s.Subscriptions) == 0 { // [MQTT-3.8.3-3]
		r.fail(protocolErr("subscribe: no topic filter"))
	}
	return s
}

func decodeSuback(r *reader, v Version) *Suback {
	s := &Suback{PacketID: decodePacketID(r, SUBACK)}
	if v == V5 {
		s.Props.decode(r, SUBACK)
	}
	for _, c := range r.rest() {
		s.ReasonCodes = append(s.ReasonCodes, ReasonCode(c))
	}
	if r.err == nil && len(s.ReasonCodes) == 0 {
		r.fail(protocolErr("suback: no return code"))
	}
	return s
}

func decodeUnsubscribe(r *reader, v Version) *Unsubscribe {
	u := &Unsubscribe{PacketID: decodePacketID(r, UNSUBSCRIBE)}
	if v == V5 {
		u.Props.decode(r, UNSUBSCRIBE)
	}
	for r.err == nil && r.remaining() > 0 {
		f := r.string("topic filter")
		if r.err == nil {
			u.Filters = append(u.Filters, f)
		}
	}
	if r.err == nil && len(u.Filters) == 0 { // [MQTT-3.10.3-2]
		r.fail(protocolErr("unsubscribe: no topic filter"))
	}
	return u
}

func decodeUnsuback(r *reader, v Version) *Unsuback {
	u := &Unsuback{PacketID: decodePacketID(r, UNSUBACK)}
	if v != V5 {
		return u
	}
	u.Props.decode(r, UNSUBACK)
	for _, c := range r.rest() {
		u.ReasonCodes = append(u.ReasonCodes, ReasonCode(c))
	}
	if r.err == nil && len(u.ReasonCodes) == 0 {
		r.fail(protocolErr("unsuback: no reason code"))
	}
	return u
}
