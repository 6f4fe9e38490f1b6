package proto

import "fmt"

// PropID is an MQTT 5.0 property identifier (section 2.2.2.2).
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

// willProps stands for the will properties of CONNECT in the allowed-packets table;
// PacketType 0 is reserved, so the bit is free.
const willProps PacketType = 0

func packets(ts ...PacketType) uint16 {
	var m uint16
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// propAllowed says in which packets each property may appear; anything else is
// a Malformed Packet (MQTT 5.0 section 2.2.2.2). A zero entry is an unknown identifier.
var propAllowed = [0x2B]uint16{
	PropPayloadFormat:        packets(PUBLISH, willProps),
	PropMessageExpiry:        packets(PUBLISH, willProps),
	PropContentType:          packets(PUBLISH, willProps),
	PropResponseTopic:        packets(PUBLISH, willProps),
	PropCorrelationData:      packets(PUBLISH, willProps),
	PropSubscriptionID:       packets(PUBLISH, SUBSCRIBE),
	PropSessionExpiry:        packets(CONNECT, CONNACK, DISCONNECT),
	PropAssignedClientID:     packets(CONNACK),
	PropServerKeepAlive:      packets(CONNACK),
	PropAuthMethod:           packets(CONNECT, CONNACK, AUTH),
	PropAuthData:             packets(CONNECT, CONNACK, AUTH),
	PropRequestProblemInfo:   packets(CONNECT),
	PropWillDelay:            packets(willProps),
	PropRequestResponseInfo:  packets(CONNECT),
	PropResponseInfo:         packets(CONNACK),
	PropServerReference:      packets(CONNACK, DISCONNECT),
	PropReasonString:         packets(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH),
	PropReceiveMaximum:       packets(CONNECT, CONNACK),
	PropTopicAliasMaximum:    packets(CONNECT, CONNACK),
	PropTopicAlias:           packets(PUBLISH),
	PropMaximumQoS:           packets(CONNACK),
	PropRetainAvailable:      packets(CONNACK),
	PropUser:                 packets(CONNECT, CONNACK, PUBLISH, willProps, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH),
	PropMaximumPacketSize:    packets(CONNECT, CONNACK),
	PropWildcardSubAvailable: packets(CONNACK),
	PropSubIDAvailable:       packets(CONNACK),
	PropSharedSubAvailable:   packets(CONNACK),
}

// UserProperty is one name/value pair; order and duplicates are significant.
type UserProperty struct {
	Key, Value string
}

// Properties holds the 5.0 properties of one packet. A single-valued property is present
// when its bit is set (Has/Set); SubscriptionIDs and User are present when non-empty.
// The zero value has no properties, and packets of 3.1/3.1.1 always carry the zero value.
type Properties struct {
	present uint64 // bit n set: property with identifier n is present

	PayloadFormat       byte
	MessageExpiry       uint32
	ContentType         string
	ResponseTopic       string
	CorrelationData     []byte
	SubscriptionIDs     []int
	SessionExpiry       uint32
	AssignedClientID    string
	ServerKeepAlive     uint16
	AuthMethod          string
	AuthData            []byte
	RequestProblemInfo  byte
	WillDelay           uint32
	RequestResponseInfo byte
	ResponseInfo        string
	ServerReference     string
	ReasonString        string
	ReceiveMaximum      uint16
	TopicAliasMaximum   uint16
	TopicAlias          uint16
	MaximumQoS          byte
	RetainAvailable     byte
	User                []UserProperty
	MaximumPacketSize   uint32
	WildcardSubAvail    byte
	SubIDAvailable      byte
	SharedSubAvailable  byte
}

// Has reports whether property id is present.
func (p *Properties) Has(id PropID) bool {
	switch id {
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	case PropUser:
		return len(p.User) > 0
	}
	return p.present&(1<<id) != 0
}

// Set marks property id present; assign its field as well.
func (p *Properties) Set(id PropID) { p.present |= 1 << id }

// Clear marks property id absent.
func (p *Properties) Clear(id PropID) {
	switch id {
	case PropSubscriptionID:
		p.SubscriptionIDs = nil
	case PropUser:
		p.User = nil
	}
	p.present &^= 1 << id
}

// Empty reports whether no property is present.
func (p *Properties) Empty() bool {
	return p.present == 0 && len(p.User) == 0 && len(p.SubscriptionIDs) == 0
}

// decode reads the property length and properties of a packet of type pt.
func (p *Properties) decode(r *reader, pt PacketType) {
	n := r.varint("property length")
	if r.err != nil {
		return
	}
	if n > r.remaining() {
		r.fail(malformed("property length %d past end of packet", n))
		return
	}
	end := r.pos + n
	sub := reader{buf: r.buf[:end], pos: r.pos}
	for sub.err == nil && sub.pos < end {
		p.decodeOne(&sub, pt)
	}
	if sub.err != nil {
		r.fail(sub.err)
		return
	}
	r.pos = end
}

func (p *Properties) decodeOne(r *reader, pt PacketType) {
	raw := r.varint("property identifier")
	if r.err != nil {
		return
	}
	if raw >= len(propAllowed) || propAllowed[raw] == 0 {
		r.fail(malformed("unknown property identifier 0x%02X", raw))
		return
	}
	id := PropID(raw)
	if propAllowed[id]&(1<<pt) == 0 {
		r.fail(malformed("property 0x%02X not allowed in %s", raw, packetName(pt)))
		return
	}
	if id != PropUser && !(id == PropSubscriptionID && pt == PUBLISH) && p.Has(id) {
		// [MQTT-2.2.2-2]-family rules: every property but these appears at most once.
		r.fail(protocolErr("property 0x%02X included more than once", raw))
		return
	}
	what := propName(id)
	switch id {
	case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
		PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
		v := r.byte1(what)
		if r.err == nil && v > 1 {
			r.fail(protocolErr("%s: value %d is not 0 or 1", what, v))
			return
		}
		*p.bytePtr(id) = v
	case PropMessageExpiry, PropSessionExpiry, PropWillDelay, PropMaximumPacketSize:
		v := r.uint32(what)
		if r.err == nil && id == PropMaximumPacketSize && v == 0 {
			r.fail(protocolErr("maximum packet size 0")) // [MQTT-3.1.2-24] family
			return
		}
		*p.uint32Ptr(id) = v
	case PropServerKeepAlive, PropReceiveMaximum, PropTopicAliasMaximum, PropTopicAlias:
		v := r.uint16(what)
		if r.err == nil && id == PropReceiveMaximum && v == 0 {
			r.fail(protocolErr("receive maximum 0"))
			return
		}
		if r.err == nil && id == PropTopicAlias && v == 0 {
			r.fail(&Error{Code: TopicAliasInvalid, Msg: "topic alias 0"}) // [MQTT-3.3.2-8]
			return
		}
		*p.uint16Ptr(id) = v
	case PropContentType, PropResponseTopic, PropAssignedClientID, PropAuthMethod,
		PropResponseInfo, PropServerReference, PropReasonString:
		*p.stringPtr(id) = r.string(what)
	case PropCorrelationData, PropAuthData:
		*p.bytesPtr(id) = r.binary(what)
	case PropSubscriptionID:
		v := r.varint(what)
		if r.err == nil && v == 0 {
			r.fail(protocolErr("subscription identifier 0")) // [MQTT-3.8.2-1] family
			return
		}
		if r.err == nil {
			p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		}
		return
	case PropUser:
		k := r.string("user property name")
		v := r.string("user property value")
		if r.err == nil {
			p.User = append(p.User, UserProperty{Key: k, Value: v})
		}
		return
	}
	if r.err == nil {
		p.Set(id)
	}
}

func (p *Properties) bytePtr(id PropID) *byte {
	switch id {
	case PropPayloadFormat:
		return &p.PayloadFormat
	case PropRequestProblemInfo:
		return &p.RequestProblemInfo
	case PropRequestResponseInfo:
		return &p.RequestResponseInfo
	case PropMaximumQoS:
		return &p.MaximumQoS
	case PropRetainAvailable:
		return &p.RetainAvailable
	case PropWildcardSubAvailable:
		return &p.WildcardSubAvail
	case PropSubIDAvailable:
		return &p.SubIDAvailable
	case PropSharedSubAvailable:
		return &p.SharedSubAvailable
	}
	panic(fmt.Sprintf("proto: property 0x%02X is not a byte", byte(id)))
}

func (p *Properties) uint16Ptr(id PropID) *uint16 {
	switch id {
	case PropServerKeepAlive:
		return &p.ServerKeepAlive
	case PropReceiveMaximum:
		return &p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return &p.TopicAliasMaximum
	case PropTopicAlias:
		return &p.TopicAlias
	}
	panic(fmt.Sprintf("proto: property 0x%02X is not a two byte integer", byte(id)))
}

func (p *Properties) uint32Ptr(id PropID) *uint32 {
	switch id {
	case PropMessageExpiry:
		return &p.MessageExpiry
	case PropSessionExpiry:
		return &p.SessionExpiry
	case PropWillDelay:
		return &p.WillDelay
	case PropMaximumPacketSize:
		return &p.MaximumPacketSize
	}
	panic(fmt.Sprintf("proto: property 0x%02X is not a four byte integer", byte(id)))
}

func (p *Properties) stringPtr(id PropID) *string {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	panic(fmt.Sprintf("proto: property 0x%02X is not a string", byte(id)))
}

func (p *Properties) bytesPtr(id PropID) *[]byte {
	switch id {
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAuthData:
		return &p.AuthData
	}
	panic(fmt.Sprintf("proto: property 0x%02X is not binary data", byte(id)))
}

// propOrder is the order properties are written in: ascending identifier, which makes
// the encoding deterministic.
var propOrder = [...]PropID{
	PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
	PropCorrelationData, PropSubscriptionID, PropSessionExpiry, PropAssignedClientID,
	PropServerKeepAlive, PropAuthMethod, PropAuthData, PropRequestProblemInfo, PropWillDelay,
	PropRequestResponseInfo, PropResponseInfo, PropServerReference, PropReasonString,
	PropReceiveMaximum, PropTopicAliasMaximum, PropTopicAlias, PropMaximumQoS,
	PropRetainAvailable, PropUser, PropMaximumPacketSize, PropWildcardSubAvailable,
	PropSubIDAvailable, PropSharedSubAvailable,
}

// append appends the property length and the properties to dst.
func (p *Properties) append(dst []byte) ([]byte, error) {
	if p.Empty() {
		return append(dst, 0), nil
	}
	start := len(dst)
	dst = append(dst, 0) // length placeholder, fixed below
	for _, id := range propOrder {
		if !p.Has(id) {
			continue
		}
		var err error
		if dst, err = p.appendOne(dst, id); err != nil {
			return dst, err
		}
	}
	return fixLength(dst, start)
}

func (p *Properties) appendOne(dst []byte, id PropID) ([]byte, error) {
	switch id {
	case PropSubscriptionID:
		for _, v := range p.SubscriptionIDs {
			if v <= 0 || v > MaxVarint {
				return dst, malformed("subscription identifier %d out of range", v)
			}
			dst = AppendVarint(append(dst, byte(id)), v)
		}
		return dst, nil
	case PropUser:
		for _, u := range p.User {
			if err := checkLen("user property", max(len(u.Key), len(u.Value))); err != nil {
				return dst, err
			}
			dst = appendString(appendString(append(dst, byte(id)), u.Key), u.Value)
		}
		return dst, nil
	}
	dst = append(dst, byte(id))
	switch id {
	case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
		PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
		return append(dst, *p.bytePtr(id)), nil
	case PropMessageExpiry, PropSessionExpiry, PropWillDelay, PropMaximumPacketSize:
		return appendUint32(dst, *p.uint32Ptr(id)), nil
	case PropServerKeepAlive, PropReceiveMaximum, PropTopicAliasMaximum, PropTopicAlias:
		return appendUint16(dst, *p.uint16Ptr(id)), nil
	case PropCorrelationData, PropAuthData:
		b := *p.bytesPtr(id)
		if err := checkLen(propName(id), len(b)); err != nil {
			return dst, err
		}
		return appendBinary(dst, b), nil
	}
	s := *p.stringPtr(id)
	if err := checkLen(propName(id), len(s)); err != nil {
		return dst, err
	}
	return appendString(dst, s), nil
}

// fixLength turns the one-byte placeholder at dst[start] into the variable byte
// integer length of everything after it.
func fixLength(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start - 1
	if n > MaxVarint {
		return dst, &Error{Code: PacketTooLarge, Msg: fmt.Sprintf("length %d exceeds %d", n, MaxVarint)}
	}
	return putLength(dst, start, n), nil
}

// putLength writes n as a variable byte integer over the one-byte placeholder at
// dst[start], moving the bytes after it when n needs more than one byte
// [MQTT-1.5.5-1] (the minimum number of bytes).
func putLength(dst []byte, start, n int) []byte {
	if n < 128 {
		dst[start] = byte(n)
		return dst
	}
	extra := VarintLen(n) - 1
	tail := len(dst) - start - 1
	for range extra {
		dst = append(dst, 0)
	}
	copy(dst[start+1+extra:], dst[start+1:start+1+tail])
	AppendVarint(dst[start:start], n)
	return dst
}

var propNames = map[PropID]string{
	PropPayloadFormat: "payload format indicator", PropMessageExpiry: "message expiry interval",
	PropContentType: "content type", PropResponseTopic: "response topic",
	PropCorrelationData: "correlation data", PropSubscriptionID: "subscription identifier",
	PropSessionExpiry: "session expiry interval", PropAssignedClientID: "assigned client identifier",
	PropServerKeepAlive: "server keep alive", PropAuthMethod: "authentication method",
	PropAuthData: "authentication data", PropRequestProblemInfo: "request problem information",
	PropWillDelay: "will delay interval", PropRequestResponseInfo: "request response information",
	PropResponseInfo: "response information", PropServerReference: "server reference",
	PropReasonString: "reason string", PropReceiveMaximum: "receive maximum",
	PropTopicAliasMaximum: "topic alias maximum", PropTopicAlias: "topic alias",
	PropMaximumQoS: "maximum qos", PropRetainAvailable: "retain available",
	PropUser: "user property", PropMaximumPacketSize: "maximum packet size",
	PropWildcardSubAvailable: "wildcard subscription available",
	PropSubIDAvailable:       "subscription identifier available",
	PropSharedSubAvailable:   "shared subscription available",
}

func propName(id PropID) string { return propNames[id] }

func packetName(pt PacketType) string {
	if pt == willProps {
		return "will properties"
	}
	return pt.String()
}
