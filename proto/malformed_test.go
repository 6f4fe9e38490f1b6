package proto_test

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/skein-mq/skein/proto"
)

// badFixture is a complete packet the decoder must refuse with a reason code.
type badFixture struct {
	name    string
	version proto.Version
	spec    string
	raw     []byte
	code    proto.ReasonCode
}

var badFixtures = []badFixture{
	// ---- reserved fixed-header flags [MQTT-2.2.2-1] [MQTT-2.2.2-2] ----
	{
		name: "connect flags 0001", version: proto.V311, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{
			0x11, 0x0C, // CONNECT with flags 0001
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
		},
	},
	{
		name: "connack flags 1000", version: proto.V5, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{0x28, 0x03, 0x00, 0x00, 0x00}, // CONNACK with flags 1000
	},
	{
		name: "puback flags 0010", version: proto.V311, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{0x42, 0x02, 0x00, 0x01}, // PUBACK with flags 0010
	},
	{
		name: "pubrec flags 0001", version: proto.V5, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{0x51, 0x02, 0x00, 0x01}, // PUBREC with flags 0001
	},
	{
		name: "pubrel flags 0000", version: proto.V311, spec: "[MQTT-3.6.1-1]", code: proto.MalformedPacket,
		raw: []byte{0x60, 0x02, 0x00, 0x01}, // PUBREL without its required 0010
	},
	{
		name: "pubrel flags 0011", version: proto.V5, spec: "[MQTT-3.6.1-1]", code: proto.MalformedPacket,
		raw: []byte{0x63, 0x02, 0x00, 0x01}, // PUBREL with flags 0011
	},
	{
		name: "pubcomp flags 0100", version: proto.V311, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{0x74, 0x02, 0x00, 0x01}, // PUBCOMP with flags 0100
	},
	{
		name: "subscribe flags 0000", version: proto.V311, spec: "[MQTT-3.8.1-1]", code: proto.MalformedPacket,
		raw: []byte{0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}, // SUBSCRIBE without 0010
	},
	{
		name: "suback flags 0010", version: proto.V311, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{0x92, 0x03, 0x00, 0x01, 0x00}, // SUBACK with flags 0010
	},
	{
		name: "unsubscribe flags 1010", version: proto.V5, spec: "[MQTT-3.10.1-1]", code: proto.MalformedPacket,
		raw: []byte{0xAA, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 'a'}, // UNSUBSCRIBE with flags 1010
	},
	{
		name: "unsuback flags 0001", version: proto.V311, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{0xB1, 0x02, 0x00, 0x01}, // UNSUBACK with flags 0001
	},
	{
		name: "pingreq flags 0001", version: proto.V311, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{0xC1, 0x00}, // PINGREQ with flags 0001
	},
	{
		name: "pingresp flags 1000", version: proto.V5, spec: "[MQTT-2.2.2-2]", code: proto.MalformedPacket,
		raw: []byte{0xD8, 0x00}, // PINGRESP with flags 1000
	},
	{
		name: "disconnect flags 0010", version: proto.V311, spec: "[MQTT-3.14.1-1]", code: proto.MalformedPacket,
		raw: []byte{0xE2, 0x00}, // DISCONNECT with flags 0010
	},
	{
		name: "auth flags 0001", version: proto.V5, spec: "5.0 §3.15.1", code: proto.MalformedPacket,
		raw: []byte{0xF1, 0x00}, // AUTH with flags 0001
	},
	{
		name: "packet type 0", version: proto.V311, spec: "3.1.1 §2.2.1 reserved type", code: proto.MalformedPacket,
		raw: []byte{0x00, 0x00}, // type 0, remaining length 0
	},
	{
		name: "packet type 0 with body", version: proto.V5, spec: "5.0 §2.1.2 reserved type", code: proto.MalformedPacket,
		raw: []byte{0x00, 0x02, 0x00, 0x01},
	},
	{
		name: "auth in 3.1.1", version: proto.V311, spec: "3.1.1 §2.2.1 type 15 is reserved", code: proto.MalformedPacket,
		raw: []byte{0xF0, 0x00}, // AUTH, remaining length 0
	},
	{
		name: "auth in 3.1", version: proto.V31, spec: "type 15 is reserved before 5.0", code: proto.MalformedPacket,
		raw: []byte{0xF0, 0x02, 0x18, 0x00},
	},

	// ---- fixed header and lengths ----
	{
		name: "remaining length of 5 bytes", version: proto.V311, spec: "[MQTT-1.5.5-1] 3.1.1 §2.2.3 at most 4 bytes", code: proto.MalformedPacket,
		raw: []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
	},
	{
		name: "pingreq with a body byte", version: proto.V311, spec: "3.1.1 §3.12 no variable header", code: proto.MalformedPacket,
		raw: []byte{0xC0, 0x01, 0x00},
	},
	{
		name: "v311 puback trailing byte", version: proto.V311, spec: "3.1.1 §3.4.1 remaining length 2", code: proto.MalformedPacket,
		raw: []byte{0x40, 0x03, 0x00, 0x01, 0x00},
	},
	{
		name: "v311 unsuback with codes", version: proto.V311, spec: "3.1.1 §3.11.3 no payload", code: proto.MalformedPacket,
		raw: []byte{0xB0, 0x03, 0x00, 0x01, 0x00},
	},
	{
		name: "v311 disconnect with reason", version: proto.V311, spec: "3.1.1 §3.14 no variable header", code: proto.MalformedPacket,
		raw: []byte{0xE0, 0x01, 0x00},
	},
	{
		name: "v311 connack trailing byte", version: proto.V311, spec: "3.1.1 §3.2.1 remaining length 2", code: proto.MalformedPacket,
		raw: []byte{0x20, 0x03, 0x00, 0x00, 0x00},
	},
	{
		name: "connect trailing byte", version: proto.V311, spec: "3.1.1 §3.1.3", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x0D, // CONNECT, remaining length 13
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
			0x00, // one byte more than the flags call for
		},
	},
	{
		name: "v5 puback properties then trailing byte", version: proto.V5, spec: "5.0 §3.4.2", code: proto.MalformedPacket,
		raw: []byte{0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xFF},
	},
	{
		name: "v5 connack without property length", version: proto.V5, spec: "5.0 §3.2.2.3", code: proto.MalformedPacket,
		raw: []byte{0x20, 0x02, 0x00, 0x00},
	},
	{
		name: "connack reserved flag bits", version: proto.V311, spec: "[MQTT-3.2.2-1] (5.0 numbering)", code: proto.MalformedPacket,
		raw: []byte{0x20, 0x02, 0x02, 0x00}, // flags 0000 0010
	},
	{
		name: "string length past end", version: proto.V311, spec: "3.1.1 §1.5.3", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x03, 0x00, 0x05, 'a'}, // topic length 5, one byte follows
	},
	{
		name: "property length past end", version: proto.V5, spec: "5.0 §2.2.2.1", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x05, 0x00, 0x01, 't', 0x09, 0x01}, // property length 9, one byte follows
	},
	{
		name: "property length of 5 bytes", version: proto.V5, spec: "5.0 §1.5.5 at most 4 bytes", code: proto.MalformedPacket,
		raw: []byte{0xE0, 0x06, 0x00, 0x80, 0x80, 0x80, 0x80, 0x00},
	},
	{
		name: "property value cut by property length", version: proto.V5, spec: "5.0 §2.2.2.1", code: proto.MalformedPacket,
		raw: []byte{
			0xE0, 0x06, // DISCONNECT, remaining length 6
			0x00,                   // reason code
			0x02,                   // property length 2
			0x11, 0x00, 0x00, 0x00, // session expiry needs 4 bytes, only 1 is inside the properties
		},
	},

	// ---- PUBLISH ----
	{
		name: "publish qos 3", version: proto.V311, spec: "[MQTT-3.3.1-4]", code: proto.MalformedPacket,
		raw: []byte{0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}, // flags 0110
	},
	{
		name: "publish dup on qos 0", version: proto.V5, spec: "[MQTT-3.3.1-2]", code: proto.MalformedPacket,
		raw: []byte{0x38, 0x04, 0x00, 0x01, 't', 0x00}, // flags 1000
	},
	{
		name: "publish qos 1 packet id 0", version: proto.V311, spec: "[MQTT-2.3.1-1]", code: proto.MalformedPacket,
		raw: []byte{0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00},
	},
	{
		name: "publish qos 2 packet id 0", version: proto.V5, spec: "[MQTT-2.2.1-3] (5.0)", code: proto.MalformedPacket,
		raw: []byte{0x34, 0x06, 0x00, 0x01, 't', 0x00, 0x00, 0x00},
	},
	{
		name: "publish topic with +", version: proto.V311, spec: "[MQTT-3.3.2-2] [MQTT-4.7.1-1]", code: proto.TopicNameInvalid,
		raw: []byte{0x30, 0x05, 0x00, 0x03, 'a', '/', '+'},
	},
	{
		name: "publish topic with #", version: proto.V5, spec: "[MQTT-3.3.2-2]", code: proto.TopicNameInvalid,
		raw: []byte{0x30, 0x04, 0x00, 0x01, '#', 0x00},
	},
	{
		name: "v311 publish empty topic", version: proto.V311, spec: "[MQTT-4.7.3-1]", code: proto.ProtocolError,
		raw: []byte{0x30, 0x02, 0x00, 0x00},
	},
	{
		name: "v5 publish empty topic without alias", version: proto.V5, spec: "5.0 §3.3.2.1", code: proto.ProtocolError,
		raw: []byte{0x30, 0x03, 0x00, 0x00, 0x00},
	},
	{
		name: "publish topic alias 0", version: proto.V5, spec: "[MQTT-3.3.2-8] (5.0)", code: proto.TopicAliasInvalid,
		raw: []byte{0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00},
	},
	{
		name: "publish subscription identifier 0", version: proto.V5, spec: "5.0 §3.3.2.3.8", code: proto.ProtocolError,
		raw: []byte{0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x0B, 0x00},
	},
	{
		name: "publish subscription identifier of 5 bytes", version: proto.V5, spec: "5.0 §1.5.5", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x0A, 0x00, 0x01, 't', 0x06, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01},
	},
	{
		name: "publish topic invalid utf-8", version: proto.V311, spec: "[MQTT-1.5.3-1] (3.1.1)", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x04, 0x00, 0x02, 'a', 0xFF},
	},
	{
		name: "publish topic utf-8 surrogate", version: proto.V5, spec: "[MQTT-1.5.4-1] U+D800 encoded as ED A0 80", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x06, 0x00, 0x03, 0xED, 0xA0, 0x80, 0x00},
	},
	{
		name: "publish topic overlong utf-8", version: proto.V5, spec: "[MQTT-1.5.4-1] C0 80 is not well-formed", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x05, 0x00, 0x02, 0xC0, 0x80, 0x00},
	},
	{
		name: "publish topic with U+0000", version: proto.V311, spec: "[MQTT-1.5.3-2] (3.1.1) [MQTT-1.5.4-2] (5.0)", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x05, 0x00, 0x03, 'a', 0x00, 'b'},
	},
	{
		name: "publish content type with U+0000", version: proto.V5, spec: "[MQTT-1.5.4-2]", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x09, 0x00, 0x01, 't', 0x05, 0x03, 0x00, 0x02, 'a', 0x00},
	},

	// ---- properties ----
	{
		name: "duplicate message expiry", version: proto.V5, spec: "5.0 §3.3.2.3.3 more than once is a protocol error", code: proto.ProtocolError,
		raw: []byte{
			0x30, 0x0E, // PUBLISH, remaining length 14
			0x00, 0x01, 't', // topic "t"
			0x0A,                         // property length 10
			0x02, 0x00, 0x00, 0x00, 0x01, // message expiry interval 1
			0x02, 0x00, 0x00, 0x00, 0x02, // message expiry interval 2
		},
	},
	{
		name: "duplicate session expiry in connect", version: proto.V5, spec: "5.0 §3.1.2.11.2", code: proto.ProtocolError,
		raw: []byte{
			0x10, 0x17, // CONNECT, remaining length 23
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
			0x0A,                         // property length 10
			0x11, 0x00, 0x00, 0x00, 0x01, // session expiry interval 1
			0x11, 0x00, 0x00, 0x00, 0x01, // session expiry interval 1 again
			0x00, 0x00, // client id ""
		},
	},
	{
		name: "duplicate subscription identifier in subscribe", version: proto.V5, spec: "5.0 §3.8.2.1.2", code: proto.ProtocolError,
		raw: []byte{
			0x82, 0x0B, // SUBSCRIBE, remaining length 11
			0x00, 0x01, // packet id 1
			0x04,       // property length 4
			0x0B, 0x01, // subscription identifier 1
			0x0B, 0x02, // subscription identifier 2
			0x00, 0x01, 'a', 0x00, // filter "a" qos 0
		},
	},
	{
		name: "duplicate reason string", version: proto.V5, spec: "5.0 §3.4.2.2.2", code: proto.ProtocolError,
		raw: []byte{0x40, 0x0C, 0x00, 0x01, 0x80, 0x08, 0x1F, 0x00, 0x01, 'a', 0x1F, 0x00, 0x01, 'b'},
	},
	{
		name: "session expiry in publish", version: proto.V5, spec: "5.0 §2.2.2.2 property not allowed in the packet", code: proto.MalformedPacket,
		raw: []byte{0x30, 0x09, 0x00, 0x01, 't', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01},
	},
	{
		name: "topic alias in connect", version: proto.V5, spec: "5.0 §2.2.2.2", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x10, // CONNECT, remaining length 16
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
			0x03,             // property length 3
			0x23, 0x00, 0x01, // topic alias 1: a PUBLISH property
			0x00, 0x00, // client id ""
		},
	},
	{
		name: "session expiry in will properties", version: proto.V5, spec: "5.0 §3.1.3.2", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x18, // CONNECT, remaining length 24
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00, 0x00, // flags: will, clean start
			0x00,       // property length 0
			0x00, 0x00, // client id ""
			0x05,                         // will property length 5
			0x11, 0x00, 0x00, 0x00, 0x01, // session expiry: a CONNECT property, not a will one
			0x00, 0x01, 'w', // will topic "w"
			0x00, 0x00, // will payload
		},
	},
	{
		name: "will delay in connect properties", version: proto.V5, spec: "5.0 §3.1.2.11", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x12, // CONNECT, remaining length 18
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
			0x05,                         // property length 5
			0x18, 0x00, 0x00, 0x00, 0x01, // will delay: a will property only
			0x00, 0x00, // client id ""
		},
	},
	{
		name: "reason string in subscribe", version: proto.V5, spec: "5.0 §3.8.2.1", code: proto.MalformedPacket,
		raw: []byte{0x82, 0x0B, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, 'r', 0x00, 0x01, 'a', 0x00},
	},
	{
		name: "unknown property 0x05", version: proto.V5, spec: "5.0 §2.2.2.2 unknown identifier", code: proto.MalformedPacket,
		raw: []byte{0xE0, 0x04, 0x00, 0x02, 0x05, 0x00},
	},
	{
		name: "unknown property 0x00", version: proto.V5, spec: "5.0 §2.2.2.2", code: proto.MalformedPacket,
		raw: []byte{0xE0, 0x04, 0x00, 0x02, 0x00, 0x00},
	},
	{
		name: "unknown property 0x2B", version: proto.V5, spec: "5.0 §2.2.2.2", code: proto.MalformedPacket,
		raw: []byte{0xE0, 0x04, 0x00, 0x02, 0x2B, 0x00},
	},
	{
		name: "unknown two-byte property identifier", version: proto.V5, spec: "5.0 §2.2.2.2", code: proto.MalformedPacket,
		raw: []byte{0xE0, 0x05, 0x00, 0x03, 0x80, 0x01, 0x00},
	},
	{
		name: "receive maximum 0", version: proto.V5, spec: "5.0 §3.1.2.11.3", code: proto.ProtocolError,
		raw: []byte{
			0x10, 0x10, // CONNECT, remaining length 16
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
			0x03,             // property length 3
			0x21, 0x00, 0x00, // receive maximum 0
			0x00, 0x00, // client id ""
		},
	},
	{
		name: "maximum packet size 0", version: proto.V5, spec: "5.0 §3.2.2.3.6", code: proto.ProtocolError,
		raw: []byte{0x20, 0x08, 0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00},
	},
	{
		name: "maximum qos 2", version: proto.V5, spec: "5.0 §3.2.2.3.4 only 0 or 1", code: proto.ProtocolError,
		raw: []byte{0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02},
	},
	{
		name: "request problem information 2", version: proto.V5, spec: "5.0 §3.1.2.11.7", code: proto.ProtocolError,
		raw: []byte{
			0x10, 0x0F, // CONNECT, remaining length 15
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
			0x02,       // property length 2
			0x17, 0x02, // request problem information 2
			0x00, 0x00, // client id ""
		},
	},
	{
		name: "user property name invalid utf-8", version: proto.V5, spec: "[MQTT-1.5.4-1] [MQTT-1.5.7-1]", code: proto.MalformedPacket,
		raw: []byte{0xE0, 0x09, 0x00, 0x07, 0x26, 0x00, 0x01, 0xFE, 0x00, 0x01, 'v'},
	},
	{
		name: "user property value surrogate", version: proto.V5, spec: "[MQTT-1.5.4-1]", code: proto.MalformedPacket,
		raw: []byte{0xE0, 0x0B, 0x00, 0x09, 0x26, 0x00, 0x01, 'k', 0x00, 0x03, 0xED, 0xA0, 0x80},
	},

	// ---- CONNECT ----
	{
		name: "connect reserved flag", version: proto.V311, spec: "[MQTT-3.1.2-3]", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x0C, // CONNECT, remaining length 12
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
			0x03, // flags: clean session and the reserved bit
			0x00, 0x00, 0x00, 0x00,
		},
	},
	{
		name: "will qos without will flag", version: proto.V311, spec: "[MQTT-3.1.2-11] [MQTT-3.1.2-13]", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x0C, // CONNECT, remaining length 12
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
			0x0A, // flags: will qos 1, clean session, no will flag
			0x00, 0x00, 0x00, 0x00,
		},
	},
	{
		name: "will retain without will flag", version: proto.V5, spec: "[MQTT-3.1.2-15] (3.1.1)", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x0D, // CONNECT, remaining length 13
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05,
			0x20, // flags: will retain, no will flag
			0x00, 0x00, 0x00, 0x00, 0x00,
		},
	},
	{
		name: "will qos 3", version: proto.V311, spec: "[MQTT-3.1.2-14]", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x11, // CONNECT, remaining length 17
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
			0x1C,       // flags: will qos 3, will flag
			0x00, 0x00, // keep alive
			0x00, 0x00, // client id ""
			0x00, 0x01, 'w', // will topic "w"
			0x00, 0x00, // will payload
		},
	},
	{
		name: "v311 password without user name", version: proto.V311, spec: "[MQTT-3.1.2-22]", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x10, // CONNECT, remaining length 16
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
			0x40,       // flags: password only
			0x00, 0x00, // keep alive
			0x00, 0x00, // client id ""
			0x00, 0x02, 'p', 'w', // password
		},
	},
	{
		name: "v31 password without user name", version: proto.V31, spec: "3.1 §3.1 password needs a user name", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x12, // CONNECT, remaining length 18
			0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03,
			0x40,       // flags: password only
			0x00, 0x00, // keep alive
			0x00, 0x00, // client id ""
			0x00, 0x02, 'p', 'w', // password
		},
	},
	{
		name: "unknown protocol name", version: proto.V311, spec: "[MQTT-3.1.2-1]", code: proto.ProtocolError,
		raw: []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00},
	},
	{
		name: "MQTT at level 3", version: proto.V311, spec: "[MQTT-3.1.2-2]", code: proto.UnsupportedProtocolVersion,
		raw: []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x03, 0x02, 0x00, 0x00, 0x00, 0x00},
	},
	{
		name: "MQTT at level 6", version: proto.V5, spec: "[MQTT-3.1.2-2]", code: proto.UnsupportedProtocolVersion,
		raw: []byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00},
	},
	{
		name: "MQIsdp at level 4", version: proto.V311, spec: "[MQTT-3.1.2-2]", code: proto.UnsupportedProtocolVersion,
		raw: []byte{0x10, 0x0E, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00},
	},
	{
		name: "client id invalid utf-8", version: proto.V311, spec: "[MQTT-3.1.3-4] [MQTT-1.5.3-1]", code: proto.MalformedPacket,
		raw: []byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0xFF},
	},
	{
		name: "client id with U+0000", version: proto.V5, spec: "[MQTT-1.5.4-2]", code: proto.MalformedPacket,
		raw: []byte{0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 'a', 0x00},
	},
	{
		name: "client id surrogate", version: proto.V311, spec: "[MQTT-1.5.3-1]", code: proto.MalformedPacket,
		raw: []byte{0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x03, 0xED, 0xA0, 0x80},
	},
	{
		name: "user name invalid utf-8", version: proto.V311, spec: "[MQTT-3.1.3-11]", code: proto.MalformedPacket,
		raw: []byte{
			0x10, 0x0F, // CONNECT, remaining length 15
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
			0x80,       // flags: user name
			0x00, 0x00, // keep alive
			0x00, 0x00, // client id ""
			0x00, 0x01, 0x80, // user name: a lone continuation byte
		},
	},
	{
		name: "will topic with wildcard", version: proto.V311, spec: "[MQTT-3.1.3-11] will topic is a topic name", code: proto.TopicNameInvalid,
		raw: []byte{
			0x10, 0x11, // CONNECT, remaining length 17
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
			0x04,       // flags: will
			0x00, 0x00, // keep alive
			0x00, 0x00, // client id ""
			0x00, 0x01, '#', // will topic "#"
			0x00, 0x00, // will payload
		},
	},
	{
		name: "will topic empty", version: proto.V311, spec: "[MQTT-4.7.3-1]", code: proto.TopicNameInvalid,
		raw: []byte{
			0x10, 0x10, // CONNECT, remaining length 16
			0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
			0x04,       // flags: will
			0x00, 0x00, // keep alive
			0x00, 0x00, // client id ""
			0x00, 0x00, // will topic ""
			0x00, 0x00, // will payload
		},
	},
	{
		name: "will flag without will fields", version: proto.V311, spec: "[MQTT-3.1.2-9]", code: proto.MalformedPacket,
		raw: []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x04, 0x00, 0x00, 0x00, 0x00},
	},
	{
		name: "user name flag without user name", version: proto.V311, spec: "[MQTT-3.1.2-19]", code: proto.MalformedPacket,
		raw: []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x80, 0x00, 0x00, 0x00, 0x00},
	},

	// ---- SUBSCRIBE, UNSUBSCRIBE, acks ----
	{
		name: "v311 subscribe no filters", version: proto.V311, spec: "[MQTT-3.8.3-3]", code: proto.ProtocolError,
		raw: []byte{0x82, 0x02, 0x00, 0x01},
	},
	{
		name: "v5 subscribe no filters", version: proto.V5, spec: "[MQTT-3.8.3-2] (5.0)", code: proto.ProtocolError,
		raw: []byte{0x82, 0x03, 0x00, 0x01, 0x00},
	},
	{
		name: "subscribe packet id 0", version: proto.V311, spec: "[MQTT-2.3.1-1]", code: proto.MalformedPacket,
		raw: []byte{0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00},
	},
	{
		name: "v311 subscribe reserved option bits", version: proto.V311, spec: "[MQTT-3.8.3-4] (3.1.1)", code: proto.MalformedPacket,
		raw: []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04}, // options 0000 0100
	},
	{
		name: "v311 subscribe qos 3", version: proto.V311, spec: "[MQTT-3.8.3-4] (3.1.1)", code: proto.MalformedPacket,
		raw: []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03},
	},
	{
		name: "v5 subscribe reserved option bits", version: proto.V5, spec: "[MQTT-3.8.3-5] (5.0)", code: proto.MalformedPacket,
		raw: []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40}, // options 0100 0000
	},
	{
		name: "v5 subscribe retain handling 3", version: proto.V5, spec: "5.0 §3.8.3.1", code: proto.ProtocolError,
		raw: []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30}, // options 0011 0000
	},
	{
		name: "v5 subscribe qos 3", version: proto.V5, spec: "5.0 §3.8.3.1 maximum qos 3 is a protocol error", code: proto.ProtocolError,
		raw: []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03},
	},
	{
		name: "subscribe filter invalid utf-8", version: proto.V5, spec: "[MQTT-1.5.4-1]", code: proto.MalformedPacket,
		raw: []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0xFF, 0x00},
	},
	{
		name: "subscribe filter without options", version: proto.V311, spec: "3.1.1 §3.8.3", code: proto.MalformedPacket,
		raw: []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'},
	},
	{
		name: "v311 unsubscribe no filters", version: proto.V311, spec: "[MQTT-3.10.3-2]", code: proto.ProtocolError,
		raw: []byte{0xA2, 0x02, 0x00, 0x01},
	},
	{
		name: "unsubscribe packet id 0", version: proto.V5, spec: "[MQTT-2.2.1-3] (5.0)", code: proto.MalformedPacket,
		raw: []byte{0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 'a'},
	},
	{
		name: "v311 suback no codes", version: proto.V311, spec: "3.1.1 §3.9.3", code: proto.ProtocolError,
		raw: []byte{0x90, 0x02, 0x00, 0x01},
	},
	{
		name: "suback packet id 0", version: proto.V311, spec: "[MQTT-2.3.1-1]", code: proto.MalformedPacket,
		raw: []byte{0x90, 0x03, 0x00, 0x00, 0x00},
	},
	{
		name: "v5 unsuback no codes", version: proto.V5, spec: "5.0 §3.11.3", code: proto.ProtocolError,
		raw: []byte{0xB0, 0x03, 0x00, 0x01, 0x00},
	},
	{
		name: "unsuback packet id 0", version: proto.V311, spec: "[MQTT-2.3.1-1]", code: proto.MalformedPacket,
		raw: []byte{0xB0, 0x02, 0x00, 0x00},
	},
	{
		name: "puback packet id 0", version: proto.V311, spec: "[MQTT-2.3.1-1]", code: proto.MalformedPacket,
		raw: []byte{0x40, 0x02, 0x00, 0x00},
	},
	{
		name: "pubrec packet id 0", version: proto.V5, spec: "[MQTT-2.2.1-3] (5.0)", code: proto.MalformedPacket,
		raw: []byte{0x50, 0x03, 0x00, 0x00, 0x10},
	},
	{
		name: "pubrel packet id 0", version: proto.V311, spec: "[MQTT-2.3.1-1]", code: proto.MalformedPacket,
		raw: []byte{0x62, 0x02, 0x00, 0x00},
	},
	{
		name: "pubcomp packet id 0", version: proto.V5, spec: "[MQTT-2.2.1-3] (5.0)", code: proto.MalformedPacket,
		raw: []byte{0x70, 0x02, 0x00, 0x00},
	},
	{
		name: "puback one byte", version: proto.V5, spec: "5.0 §3.4.2", code: proto.MalformedPacket,
		raw: []byte{0x40, 0x01, 0x00},
	},
}

func TestDecodeBad(t *testing.T) {
	for _, tc := range badFixtures {
		t.Run(tc.name, func(t *testing.T) {
			p, n, err := proto.DecodeBytes(tc.raw, tc.version)
			if err == nil {
				t.Fatalf("DecodeBytes = %#v, want code %#02x (%s)", p, byte(tc.code), tc.spec)
			}
			if p != nil {
				t.Errorf("DecodeBytes returned a packet with the error: %#v", p)
			}
			if got := proto.CodeOf(err, 0); got != tc.code {
				t.Errorf("DecodeBytes: %v: code %#02x, want %#02x (%s)", err, byte(got), byte(tc.code), tc.spec)
			}
			if !errors.Is(err, &proto.Error{Code: tc.code}) {
				t.Errorf("errors.Is(%v, code %#02x) = false", err, byte(tc.code))
			}
			if tc.code != proto.PacketTooLarge && n != 0 && n != len(tc.raw) {
				t.Errorf("DecodeBytes used %d of %d bytes", n, len(tc.raw))
			}

			// ReadPacket refuses it with the same code.
			_, err = proto.ReadPacket(bufio.NewReader(bytes.NewReader(tc.raw)), tc.version, 0)
			if got := proto.CodeOf(err, 0); got != tc.code {
				t.Errorf("ReadPacket: %v: code %#02x, want %#02x", err, byte(got), byte(tc.code))
			}
		})
	}
}

// TestDecodeBadSentinels checks the exported sentinels match by code.
func TestDecodeBadSentinels(t *testing.T) {
	tests := []struct {
		name     string
		raw      []byte
		v        proto.Version
		sentinel error
	}{
		{"malformed", []byte{0xC1, 0x00}, proto.V311, proto.ErrMalformed},
		{"protocol", []byte{0x82, 0x02, 0x00, 0x01}, proto.V311, proto.ErrProtocol},
		{"topic name", []byte{0x30, 0x03, 0x00, 0x01, '+'}, proto.V311, proto.ErrTopicName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := proto.DecodeBytes(tc.raw, tc.v)
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("DecodeBytes: %v, want errors.Is %v", err, tc.sentinel)
			}
			for _, other := range []error{proto.ErrMalformed, proto.ErrProtocol, proto.ErrTopicName, proto.ErrTopicFilter, proto.ErrPacketTooLarge} {
				if other != tc.sentinel && errors.Is(err, other) {
					t.Errorf("DecodeBytes: %v also matches %v", err, other)
				}
			}
		})
	}
}
