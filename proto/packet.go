package proto

import "fmt"

// Version is the protocol level sent in CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1, protocol name "MQTT"
	V5   Version = 5 // MQTT 5.0, protocol name "MQTT"
)

// String returns the version as users write it.
func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return fmt.Sprintf("level(%d)", byte(v))
}

// PacketType is the control packet type in the high nibble of the fixed header.
type PacketType byte

// Control packet types.
const (
	CONNECT     PacketType = 1
	CONNACK     PacketType = 2
	PUBLISH     PacketType = 3
	PUBACK      PacketType = 4
	PUBREC      PacketType = 5
	PUBREL      PacketType = 6
	PUBCOMP     PacketType = 7
	SUBSCRIBE   PacketType = 8
	SUBACK      PacketType = 9
	UNSUBSCRIBE PacketType = 10
	UNSUBACK    PacketType = 11
	PINGREQ     PacketType = 12
	PINGRESP    PacketType = 13
	DISCONNECT  PacketType = 14
	AUTH        PacketType = 15
)

var packetNames = [...]string{
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// String returns the packet type's name as the specification spells it.
func (t PacketType) String() string {
	if int(t) < len(packetNames) {
		return packetNames[t]
	}
	return fmt.Sprintf("TYPE(%d)", byte(t))
}

// Packet is any MQTT control packet.
type Packet interface {
	// Type returns the packet's control packet type.
	Type() PacketType
	// Append appends the packet's wire form for protocol version v to dst.
	Append(dst []byte, v Version) ([]byte, error)
}

// Will is the will message carried in CONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   Properties // 5.0 will properties
}

// Connect is the CONNECT packet.
type Connect struct {
	ProtocolName string // "MQTT", or "MQIsdp" for 3.1
	Version      Version
	CleanStart   bool // "clean session" before 5.0
	KeepAlive    uint16
	Props        Properties
	ClientID     string
	Will         *Will
	UsernameSet  bool
	Username     string
	PasswordSet  bool
	Password     []byte
}

// Connack is the CONNACK packet. Before 5.0, ReasonCode holds the 3.1.1 return code
// (0..5); use ConnackCode to translate a 5.0 reason for an older client.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Props          Properties
}

// Publish is the PUBLISH packet. Payload aliases the decode buffer (see the package doc).
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string
	PacketID uint16
	Props    Properties
	Payload  []byte
}

// Puback is the PUBACK packet.
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Pubrec is the PUBREC packet.
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Pubrel is the PUBREL packet.
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Pubcomp is the PUBCOMP packet.
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Subscription is one topic filter of a SUBSCRIBE with its options.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool // 5.0
	RetainAsPublished bool // 5.0
	RetainHandling    byte // 5.0: 0 send retained, 1 only if new, 2 never
}

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Props         Properties
	Subscriptions []Subscription
}

// Suback is the SUBACK packet. Before 5.0 the codes are 0, 1, 2 (granted QoS) or 0x80.
type Suback struct {
	PacketID    uint16
	Props       Properties
	ReasonCodes []ReasonCode
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Props    Properties
	Filters  []string
}

// Unsuback is the UNSUBACK packet. ReasonCodes are sent only in 5.0.
type Unsuback struct {
	PacketID    uint16
	Props       Properties
	ReasonCodes []ReasonCode
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Disconnect is the DISCONNECT packet; reason and properties are 5.0 only.
type Disconnect struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Auth is the 5.0 AUTH packet.
type Auth struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Type implements Packet.
func (*Connect) Type() PacketType { return CONNECT }

// Type implements Packet.
func (*Connack) Type() PacketType { return CONNACK }

// Type implements Packet.
func (*Publish) Type() PacketType { return PUBLISH }

// Type implements Packet.
func (*Puback) Type() PacketType { return PUBACK }

// Type implements Packet.
func (*Pubrec) Type() PacketType { return PUBREC }

// Type implements Packet.
func (*Pubrel) Type() PacketType { return PUBREL }

// Type implements Packet.
func (*Pubcomp) Type() PacketType { return PUBCOMP }

// Type implements Packet.
func (*Subscribe) Type() PacketType { return SUBSCRIBE }

// Type implements Packet.
func (*Suback) Type() PacketType { return SUBACK }

// Type implements Packet.
func (*Unsubscribe) Type() PacketType { return UNSUBSCRIBE }

// Type implements Packet.
func (*Unsuback) Type() PacketType { return UNSUBACK }

// Type implements Packet.
func (*Pingreq) Type() PacketType { return PINGREQ }

// Type implements Packet.
func (*Pingresp) Type() PacketType { return PINGRESP }

// Type implements Packet.
func (*Disconnect) Type() PacketType { return DISCONNECT }

// Type implements Packet.
func (*Auth) Type() PacketType { return AUTH }
