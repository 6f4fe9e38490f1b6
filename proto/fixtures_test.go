package proto_test

import "github.com/skein-mq/skein/proto"

// fixture is one well-formed packet on the wire and what it decodes to.
type fixture struct {
	name    string
	version proto.Version // the connection's version passed to DecodeBytes and Append
	spec    string        // specification ids or sections the fixture covers
	raw     []byte        // the whole packet, fixed header included
	want    proto.Packet
	// canon is what Append writes when raw is not in canonical form (a 5.0 ack that
	// spells out a success code or an empty property length); nil when Append gives raw.
	canon []byte
}

// props returns p with the given single-valued properties marked present; the fields
// must be assigned in p already.
func props(p proto.Properties, ids ...proto.PropID) proto.Properties {
	for _, id := range ids {
		p.Set(id)
	}
	return p
}

// fixtures covers every packet type for 3.1.1 and 5.0, and CONNECT for 3.1.
var fixtures = []fixture{
	// ---- CONNECT ----
	{
		name: "v31 connect clean session", version: proto.V31,
		spec: "3.1 CONNECT: protocol name MQIsdp, level 3",
		raw: []byte{
			0x10, 0x11, // CONNECT, remaining length 17
			0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
			0x03,       // protocol level 3
			0x02,       // flags: clean session
			0x00, 0x3C, // keep alive 60
			0x00, 0x03, 'a', 'b', 'c', // client id "abc"
		},
		want: &proto.Connect{ProtocolName: "MQIsdp", Version: proto.V31, CleanStart: true, KeepAlive: 60, ClientID: "abc"},
	},
	{
		name: "v31 connect will username password", version: proto.V31,
		spec: "3.1 CONNECT payload order: client id, will topic, will message, user name, password",
		raw: []byte{
			0x10, 0x20, // CONNECT, remaining length 32
			0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
			0x03,       // protocol level 3
			0xCC,       // flags: user name, password, will qos 1, will flag
			0x00, 0x0A, // keep alive 10
			0x00, 0x02, 'i', 'd', // client id "id"
			0x00, 0x02, 'w', '/', // will topic "w/"
			0x00, 0x02, 'g', 'o', // will message "go"
			0x00, 0x02, 'u', 'n', // user name "un"
			0x00, 0x02, 'p', 'w', // password "pw"
		},
		want: &proto.Connect{
			ProtocolName: "MQIsdp", Version: proto.V31, KeepAlive: 10, ClientID: "id",
			Will:        &proto.Will{Topic: "w/", Payload: []byte("go"), QoS: 1},
			UsernameSet: true, Username: "un", PasswordSet: true, Password: []byte("pw"),
		},
	},
	{
		name: "v311 connect empty client id", version: proto.V311,
		spec: "[MQTT-3.1.2-1] [MQTT-3.1.2-2] [MQTT-3.1.3-6] zero-byte client id",
		raw: []byte{
			0x10, 0x0C, // CONNECT, remaining length 12
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
			0x04,       // protocol level 4
			0x02,       // flags: clean session
			0x00, 0x00, // keep alive 0
			0x00, 0x00, // client id ""
		},
		want: &proto.Connect{ProtocolName: "MQTT", Version: proto.V311, CleanStart: true, ClientID: ""},
	},
	{
		name: "v311 connect will username password", version: proto.V311,
		spec: "[MQTT-3.1.2-8] [MQTT-3.1.2-9] [MQTT-3.1.2-14] [MQTT-3.1.2-16] [MQTT-3.1.2-19] [MQTT-3.1.2-21] [MQTT-3.1.3-1]",
		raw: []byte{
			0x10, 0x2C, // CONNECT, remaining length 44
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
			0x04,       // protocol level 4
			0xEE,       // flags: user name, password, will retain, will qos 1, will flag, clean session
			0x00, 0x3C, // keep alive 60
			0x00, 0x08, 'c', 'l', 'i', 'e', 'n', 't', '-', '1', // client id "client-1"
			0x00, 0x06, 'w', 'i', 'l', 'l', '/', 't', // will topic "will/t"
			0x00, 0x03, 'b', 'y', 'e', // will message "bye"
			0x00, 0x04, 'u', 's', 'e', 'r', // user name "user"
			0x00, 0x03, 's', 'e', 'c', // password "sec"
		},
		want: &proto.Connect{
			ProtocolName: "MQTT", Version: proto.V311, CleanStart: true, KeepAlive: 60, ClientID: "client-1",
			Will:        &proto.Will{Topic: "will/t", Payload: []byte("bye"), QoS: 1, Retain: true},
			UsernameSet: true, Username: "user", PasswordSet: true, Password: []byte("sec"),
		},
	},
	{
		name: "v311 connect will qos 2 user name only", version: proto.V311,
		spec: "[MQTT-3.1.2-14] [MQTT-3.1.2-19] [MQTT-3.1.2-20]",
		raw: []byte{
			0x10, 0x17, // CONNECT, remaining length 23
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
			0x04,       // protocol level 4
			0x94,       // flags: user name, will qos 2, will flag
			0xFF, 0xFF, // keep alive 65535
			0x00, 0x01, 'c', // client id "c"
			0x00, 0x01, 'w', // will topic "w"
			0x00, 0x00, // will message empty
			0x00, 0x03, 'b', 'o', 'b', // user name "bob"
		},
		want: &proto.Connect{
			ProtocolName: "MQTT", Version: proto.V311, KeepAlive: 65535, ClientID: "c",
			Will:        &proto.Will{Topic: "w", Payload: []byte{}, QoS: 2},
			UsernameSet: true, Username: "bob",
		},
	},
	{
		name: "v5 connect session expiry receive maximum user and will properties", version: proto.V5,
		spec: "5.0 §3.1.2.11 CONNECT properties, §3.1.3.2 will properties, [MQTT-3.1.2-9]",
		raw: []byte{
			0x10, 0x67, // CONNECT, remaining length 103
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
			0x05,       // protocol level 5
			0x96,       // flags: user name, will qos 2, will flag, clean start
			0x00, 0x1E, // keep alive 30
			0x16,                         // property length 22
			0x11, 0x00, 0x00, 0x0E, 0x10, // session expiry interval 3600
			0x21, 0x00, 0x14, // receive maximum 20
			0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
			0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'w', // user property k=w (repeated name kept)
			0x00, 0x02, 'c', '5', // client id "c5"
			0x2F,       // will property length 47
			0x01, 0x01, // payload format indicator 1 (UTF-8)
			0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry interval 60
			0x03, 0x00, 0x0A, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', // content type "text/plain"
			0x08, 0x00, 0x06, 'r', 'e', 's', 'p', '/', 't', // response topic "resp/t"
			0x09, 0x00, 0x03, 0x01, 0x02, 0x03, // correlation data 01 02 03
			0x18, 0x00, 0x00, 0x00, 0x05, // will delay interval 5
			0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property a=b
			0x00, 0x06, 'w', 'i', 'l', 'l', '/', '5', // will topic "will/5"
			0x00, 0x04, 'g', 'o', 'n', 'e', // will payload "gone"
			0x00, 0x02, 'u', '5', // user name "u5"
		},
		want: &proto.Connect{
			ProtocolName: "MQTT", Version: proto.V5, CleanStart: true, KeepAlive: 30,
			Props: props(proto.Properties{
				SessionExpiry: 3600, ReceiveMaximum: 20,
				User: []proto.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}},
			}, proto.PropSessionExpiry, proto.PropReceiveMaximum),
			ClientID: "c5",
			Will: &proto.Will{
				Topic: "will/5", Payload: []byte("gone"), QoS: 2,
				Props: props(proto.Properties{
					PayloadFormat: 1, MessageExpiry: 60, ContentType: "text/plain",
					ResponseTopic: "resp/t", CorrelationData: []byte{1, 2, 3}, WillDelay: 5,
					User: []proto.UserProperty{{Key: "a", Value: "b"}},
				}, proto.PropPayloadFormat, proto.PropMessageExpiry, proto.PropContentType,
					proto.PropResponseTopic, proto.PropCorrelationData, proto.PropWillDelay),
			},
			UsernameSet: true, Username: "u5",
		},
	},
	{
		name: "v5 connect password without user name and auth properties", version: proto.V5,
		spec: "5.0 §3.1.2.9 password without user name allowed, §3.1.2.11 authentication method and data",
		raw: []byte{
			0x10, 0x2A, // CONNECT, remaining length 42
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
			0x05,       // protocol level 5
			0x40,       // flags: password
			0x00, 0x00, // keep alive 0
			0x19,                                      // property length 25
			0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method "SCRAM"
			0x16, 0x00, 0x02, 0xAA, 0xBB, // authentication data AA BB
			0x17, 0x00, // request problem information 0
			0x19, 0x01, // request response information 1
			0x22, 0x00, 0x0A, // topic alias maximum 10
			0x27, 0x00, 0x01, 0x00, 0x00, // maximum packet size 65536
			0x00, 0x00, // client id ""
			0x00, 0x02, 'p', 'w', // password "pw"
		},
		want: &proto.Connect{
			ProtocolName: "MQTT", Version: proto.V5,
			Props: props(proto.Properties{
				AuthMethod: "SCRAM", AuthData: []byte{0xAA, 0xBB}, RequestProblemInfo: 0,
				RequestResponseInfo: 1, TopicAliasMaximum: 10, MaximumPacketSize: 65536,
			}, proto.PropAuthMethod, proto.PropAuthData, proto.PropRequestProblemInfo,
				proto.PropRequestResponseInfo, proto.PropTopicAliasMaximum, proto.PropMaximumPacketSize),
			PasswordSet: true, Password: []byte("pw"),
		},
	},

	// ---- CONNACK ----
	{
		name: "v311 connack accepted", version: proto.V311,
		spec: "3.1.1 §3.2.2.3 return code 0",
		raw: []byte{
			0x20, 0x02, // CONNACK, remaining length 2
			0x00, // flags: no session present
			0x00, // return code 0 accepted
		},
		want: &proto.Connack{ReasonCode: proto.ConnAccepted},
	},
	{
		name: "v311 connack session present", version: proto.V311,
		spec: "[MQTT-3.2.2-2]",
		raw: []byte{
			0x20, 0x02, // CONNACK, remaining length 2
			0x01, // flags: session present
			0x00, // return code 0 accepted
		},
		want: &proto.Connack{SessionPresent: true},
	},
	{
		name: "v311 connack refused not authorized", version: proto.V311,
		spec: "3.1.1 §3.2.2.3 return code 5",
		raw: []byte{
			0x20, 0x02, // CONNACK, remaining length 2
			0x00, // flags
			0x05, // return code 5 not authorized
		},
		want: &proto.Connack{ReasonCode: proto.ConnRefusedNotAuthorized},
	},
	{
		name: "v5 connack no properties", version: proto.V5,
		spec: "5.0 §3.2.2",
		raw: []byte{
			0x20, 0x03, // CONNACK, remaining length 3
			0x00, // flags
			0x00, // reason code success
			0x00, // property length 0
		},
		want: &proto.Connack{},
	},
	{
		name: "v5 connack many properties", version: proto.V5,
		spec: "5.0 §3.2.2.3 CONNACK properties",
		raw: []byte{
			0x20, 0x42, // CONNACK, remaining length 66
			0x01,                         // flags: session present
			0x00,                         // reason code success
			0x3F,                         // property length 63
			0x11, 0x00, 0x00, 0x00, 0x78, // session expiry interval 120
			0x12, 0x00, 0x06, 'a', 'u', 't', 'o', '-', '1', // assigned client identifier "auto-1"
			0x13, 0x00, 0x3C, // server keep alive 60
			0x1A, 0x00, 0x02, 'r', 'i', // response information "ri"
			0x1C, 0x00, 0x05, 'o', 't', 'h', 'e', 'r', // server reference "other"
			0x1F, 0x00, 0x02, 'o', 'k', // reason string "ok"
			0x21, 0x00, 0x64, // receive maximum 100
			0x22, 0x00, 0x0A, // topic alias maximum 10
			0x24, 0x01, // maximum qos 1
			0x25, 0x00, // retain available 0
			0x26, 0x00, 0x01, 'x', 0x00, 0x01, 'y', // user property x=y
			0x27, 0x00, 0x00, 0x10, 0x00, // maximum packet size 4096
			0x28, 0x01, // wildcard subscription available 1
			0x29, 0x00, // subscription identifiers available 0
			0x2A, 0x01, // shared subscription available 1
		},
		want: &proto.Connack{
			SessionPresent: true,
			Props: props(proto.Properties{
				SessionExpiry: 120, AssignedClientID: "auto-1", ServerKeepAlive: 60,
				ResponseInfo: "ri", ServerReference: "other", ReasonString: "ok",
				ReceiveMaximum: 100, TopicAliasMaximum: 10, MaximumQoS: 1, RetainAvailable: 0,
				User:              []proto.UserProperty{{Key: "x", Value: "y"}},
				MaximumPacketSize: 4096, WildcardSubAvail: 1, SubIDAvailable: 0, SharedSubAvailable: 1,
			}, proto.PropSessionExpiry, proto.PropAssignedClientID, proto.PropServerKeepAlive,
				proto.PropResponseInfo, proto.PropServerReference, proto.PropReasonString,
				proto.PropReceiveMaximum, proto.PropTopicAliasMaximum, proto.PropMaximumQoS,
				proto.PropRetainAvailable, proto.PropMaximumPacketSize, proto.PropWildcardSubAvailable,
				proto.PropSubIDAvailable, proto.PropSharedSubAvailable),
		},
	},
	{
		name: "v5 connack refused with auth method", version: proto.V5,
		spec: "5.0 §3.2.2.2 reason code 0x86, §3.2.2.3.17 authentication method",
		raw: []byte{
			0x20, 0x0B, // CONNACK, remaining length 11
			0x00,                                      // flags
			0x86,                                      // reason code bad user name or password
			0x08,                                      // property length 8
			0x15, 0x00, 0x05, 'P', 'L', 'A', 'I', 'N', // authentication method "PLAIN"
		},
		want: &proto.Connack{
			ReasonCode: proto.BadUserNameOrPassword,
			Props:      props(proto.Properties{AuthMethod: "PLAIN"}, proto.PropAuthMethod),
		},
	},

	// ---- PUBLISH ----
	{
		name: "v311 publish qos 0", version: proto.V311,
		spec: "[MQTT-3.3.1-2] [MQTT-3.3.2-1] no packet id at qos 0",
		raw: []byte{
			0x30, 0x07, // PUBLISH qos 0, remaining length 7
			0x00, 0x03, 'a', '/', 'b', // topic "a/b"
			'h', 'i', // payload "hi"
		},
		want: &proto.Publish{Topic: "a/b", Payload: []byte("hi")},
	},
	{
		name: "v311 publish qos 0 empty payload", version: proto.V311,
		spec: "3.1.1 §3.3.3 zero-length payload",
		raw: []byte{
			0x30, 0x03, // PUBLISH qos 0, remaining length 3
			0x00, 0x01, 't', // topic "t"
		},
		want: &proto.Publish{Topic: "t", Payload: []byte{}},
	},
	{
		name: "v311 publish qos 1 retain", version: proto.V311,
		spec: "[MQTT-2.3.1-1] packet id at qos 1, §3.3.1.3 retain",
		raw: []byte{
			0x33, 0x08, // PUBLISH qos 1 retain, remaining length 8
			0x00, 0x03, 'a', '/', 'b', // topic "a/b"
			0x00, 0x0A, // packet id 10
			'x', // payload "x"
		},
		want: &proto.Publish{QoS: 1, Retain: true, Topic: "a/b", PacketID: 10, Payload: []byte("x")},
	},
	{
		name: "v311 publish qos 2 dup", version: proto.V311,
		spec: "[MQTT-3.3.1-1] dup on a redelivery",
		raw: []byte{
			0x3C, 0x05, // PUBLISH dup qos 2, remaining length 5
			0x00, 0x01, 't', // topic "t"
			0x12, 0x34, // packet id 0x1234
		},
		want: &proto.Publish{Dup: true, QoS: 2, Topic: "t", PacketID: 0x1234, Payload: []byte{}},
	},
	{
		name: "v5 publish qos 0 no properties", version: proto.V5,
		spec: "5.0 §3.3.2.3 property length 0",
		raw: []byte{
			0x30, 0x05, // PUBLISH qos 0, remaining length 5
			0x00, 0x01, 't', // topic "t"
			0x00, // property length 0
			'p',  // payload "p"
		},
		want: &proto.Publish{Topic: "t", Payload: []byte("p")},
	},
	{
		name: "v5 publish qos 1 with properties", version: proto.V5,
		spec: "5.0 §3.3.2.3 PUBLISH properties",
		raw: []byte{
			0x32, 0x28, // PUBLISH qos 1, remaining length 40
			0x00, 0x03, 's', '/', 't', // topic "s/t"
			0x00, 0x01, // packet id 1
			0x1E,       // property length 30
			0x01, 0x01, // payload format indicator 1
			0x02, 0x00, 0x00, 0x00, 0x0A, // message expiry interval 10
			0x03, 0x00, 0x04, 'j', 's', 'o', 'n', // content type "json"
			0x08, 0x00, 0x01, 'r', // response topic "r"
			0x09, 0x00, 0x02, 0xCA, 0xFE, // correlation data CA FE
			0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
			'{', '}', // payload "{}"
		},
		want: &proto.Publish{
			QoS: 1, Topic: "s/t", PacketID: 1, Payload: []byte("{}"),
			Props: props(proto.Properties{
				PayloadFormat: 1, MessageExpiry: 10, ContentType: "json", ResponseTopic: "r",
				CorrelationData: []byte{0xCA, 0xFE}, User: []proto.UserProperty{{Key: "k", Value: "v"}},
			}, proto.PropPayloadFormat, proto.PropMessageExpiry, proto.PropContentType,
				proto.PropResponseTopic, proto.PropCorrelationData),
		},
	},
	{
		name: "v5 publish qos 2 topic alias with empty topic", version: proto.V5,
		spec: "5.0 §3.3.2.1 zero-length topic with a topic alias, §3.3.2.3.4",
		raw: []byte{
			0x34, 0x09, // PUBLISH qos 2, remaining length 9
			0x00, 0x00, // topic "" (use the alias)
			0x00, 0x07, // packet id 7
			0x03,             // property length 3
			0x23, 0x00, 0x05, // topic alias 5
			'z', // payload "z"
		},
		want: &proto.Publish{
			QoS: 2, PacketID: 7, Payload: []byte("z"),
			Props: props(proto.Properties{TopicAlias: 5}, proto.PropTopicAlias),
		},
	},
	{
		name: "v5 publish topic and topic alias", version: proto.V5,
		spec: "5.0 §3.3.2.3.4 a topic name sets the alias",
		raw: []byte{
			0x31, 0x08, // PUBLISH qos 0 retain, remaining length 8
			0x00, 0x01, 'a', // topic "a"
			0x03,             // property length 3
			0x23, 0x00, 0x01, // topic alias 1
			'!', // payload "!"
		},
		want: &proto.Publish{
			Retain: true, Topic: "a", Payload: []byte("!"),
			Props: props(proto.Properties{TopicAlias: 1}, proto.PropTopicAlias),
		},
	},
	{
		name: "v5 publish repeated subscription identifiers", version: proto.V5,
		spec: "5.0 §3.3.2.3.8 several subscription identifiers, §1.5.5 boundaries",
		raw: []byte{
			0x30, 0x0E, // PUBLISH qos 0, remaining length 14
			0x00, 0x01, 'a', // topic "a"
			0x0A,       // property length 10
			0x0B, 0x01, // subscription identifier 1
			0x0B, 0x80, 0x01, // subscription identifier 128
			0x0B, 0xFF, 0xFF, 0xFF, 0x7F, // subscription identifier 268435455
		},
		want: &proto.Publish{
			Topic: "a", Payload: []byte{},
			Props: proto.Properties{SubscriptionIDs: []int{1, 128, 268435455}},
		},
	},

	// ---- PUBACK, PUBREC, PUBREL, PUBCOMP ----
	{
		name: "v311 puback", version: proto.V311, spec: "3.1.1 §3.4",
		raw:  []byte{0x40, 0x02, 0x00, 0x01}, // PUBACK, remaining length 2, packet id 1
		want: &proto.Puback{PacketID: 1},
	},
	{
		name: "v311 pubrec", version: proto.V311, spec: "3.1.1 §3.5",
		raw:  []byte{0x50, 0x02, 0x00, 0x02}, // PUBREC, remaining length 2, packet id 2
		want: &proto.Pubrec{PacketID: 2},
	},
	{
		name: "v311 pubrel", version: proto.V311, spec: "[MQTT-3.6.1-1] flags 0010",
		raw:  []byte{0x62, 0x02, 0x00, 0x03}, // PUBREL flags 0010, remaining length 2, packet id 3
		want: &proto.Pubrel{PacketID: 3},
	},
	{
		name: "v311 pubcomp", version: proto.V311, spec: "3.1.1 §3.7",
		raw:  []byte{0x70, 0x02, 0xFF, 0xFF}, // PUBCOMP, remaining length 2, packet id 65535
		want: &proto.Pubcomp{PacketID: 65535},
	},
	{
		name: "v5 puback 2 bytes", version: proto.V5, spec: "5.0 §3.4.2.1 reason code omitted means success",
		raw:  []byte{0x40, 0x02, 0x00, 0x01}, // PUBACK, remaining length 2, packet id 1
		want: &proto.Puback{PacketID: 1},
	},
	{
		name: "v5 puback 3 bytes", version: proto.V5, spec: "5.0 §3.4.2.1 property length omitted",
		raw: []byte{
			0x40, 0x03, // PUBACK, remaining length 3
			0x00, 0x01, // packet id 1
			0x10, // reason code no matching subscribers
		},
		want: &proto.Puback{PacketID: 1, ReasonCode: proto.NoMatchingSubscribers},
	},
	{
		name: "v5 puback 4 bytes success", version: proto.V5, spec: "5.0 §3.4.2.1 explicit success and empty properties",
		raw: []byte{
			0x40, 0x04, // PUBACK, remaining length 4
			0x00, 0x01, // packet id 1
			0x00, // reason code success
			0x00, // property length 0
		},
		want:  &proto.Puback{PacketID: 1},
		canon: []byte{0x40, 0x02, 0x00, 0x01},
	},
	{
		name: "v5 puback with reason string", version: proto.V5, spec: "5.0 §3.4.2.2 PUBACK properties",
		raw: []byte{
			0x40, 0x0A, // PUBACK, remaining length 10
			0x00, 0x09, // packet id 9
			0x87,                            // reason code not authorized
			0x06,                            // property length 6
			0x1F, 0x00, 0x03, 'n', 'o', 'p', // reason string "nop"
		},
		want: &proto.Puback{
			PacketID: 9, ReasonCode: proto.NotAuthorized,
			Props: props(proto.Properties{ReasonString: "nop"}, proto.PropReasonString),
		},
	},
	{
		name: "v5 pubrec 2 bytes", version: proto.V5, spec: "5.0 §3.5.2.1",
		raw:  []byte{0x50, 0x02, 0x00, 0x02}, // PUBREC, remaining length 2, packet id 2
		want: &proto.Pubrec{PacketID: 2},
	},
	{
		name: "v5 pubrec 3 bytes", version: proto.V5, spec: "5.0 §3.5.2.1",
		raw: []byte{
			0x50, 0x03, // PUBREC, remaining length 3
			0x00, 0x02, // packet id 2
			0x97, // reason code quota exceeded
		},
		want: &proto.Pubrec{PacketID: 2, ReasonCode: proto.QuotaExceeded},
	},
	{
		name: "v5 pubrec 4 bytes error", version: proto.V5, spec: "5.0 §3.5.2.2 empty property length",
		raw: []byte{
			0x50, 0x04, // PUBREC, remaining length 4
			0x00, 0x02, // packet id 2
			0x80, // reason code unspecified error
			0x00, // property length 0
		},
		want:  &proto.Pubrec{PacketID: 2, ReasonCode: proto.UnspecifiedError},
		canon: []byte{0x50, 0x03, 0x00, 0x02, 0x80},
	},
	{
		name: "v5 pubrec with reason string", version: proto.V5, spec: "5.0 §3.5.2.2 PUBREC properties",
		raw: []byte{
			0x50, 0x0B, // PUBREC, remaining length 11
			0x00, 0x02, // packet id 2
			0x80,                                 // reason code unspecified error
			0x07,                                 // property length 7
			0x1F, 0x00, 0x04, 'f', 'u', 'l', 'l', // reason string "full"
		},
		want: &proto.Pubrec{
			PacketID: 2, ReasonCode: proto.UnspecifiedError,
			Props: props(proto.Properties{ReasonString: "full"}, proto.PropReasonString),
		},
	},
	{
		name: "v5 pubrel 2 bytes", version: proto.V5, spec: "[MQTT-3.6.1-1] 5.0 §3.6.2.1",
		raw:  []byte{0x62, 0x02, 0x00, 0x03}, // PUBREL flags 0010, remaining length 2, packet id 3
		want: &proto.Pubrel{PacketID: 3},
	},
	{
		name: "v5 pubrel 3 bytes", version: proto.V5, spec: "5.0 §3.6.2.1",
		raw: []byte{
			0x62, 0x03, // PUBREL flags 0010, remaining length 3
			0x00, 0x03, // packet id 3
			0x92, // reason code packet identifier not found
		},
		want: &proto.Pubrel{PacketID: 3, ReasonCode: proto.PacketIdentifierNotFound},
	},
	{
		name: "v5 pubrel 4 bytes success", version: proto.V5, spec: "5.0 §3.6.2.2",
		raw: []byte{
			0x62, 0x04, // PUBREL flags 0010, remaining length 4
			0x00, 0x03, // packet id 3
			0x00, // reason code success
			0x00, // property length 0
		},
		want:  &proto.Pubrel{PacketID: 3},
		canon: []byte{0x62, 0x02, 0x00, 0x03},
	},
	{
		name: "v5 pubrel with user property", version: proto.V5, spec: "5.0 §3.6.2.2 PUBREL properties",
		raw: []byte{
			0x62, 0x0B, // PUBREL flags 0010, remaining length 11
			0x00, 0x03, // packet id 3
			0x00,                                   // reason code success
			0x07,                                   // property length 7
			0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property a=b
		},
		want: &proto.Pubrel{PacketID: 3, Props: proto.Properties{User: []proto.UserProperty{{Key: "a", Value: "b"}}}},
	},
	{
		name: "v5 pubcomp 2 bytes", version: proto.V5, spec: "5.0 §3.7.2.1",
		raw:  []byte{0x70, 0x02, 0x00, 0x04}, // PUBCOMP, remaining length 2, packet id 4
		want: &proto.Pubcomp{PacketID: 4},
	},
	{
		name: "v5 pubcomp 3 bytes", version: proto.V5, spec: "5.0 §3.7.2.1",
		raw: []byte{
			0x70, 0x03, // PUBCOMP, remaining length 3
			0x00, 0x04, // packet id 4
			0x92, // reason code packet identifier not found
		},
		want: &proto.Pubcomp{PacketID: 4, ReasonCode: proto.PacketIdentifierNotFound},
	},
	{
		name: "v5 pubcomp 4 bytes error", version: proto.V5, spec: "5.0 §3.7.2.2",
		raw: []byte{
			0x70, 0x04, // PUBCOMP, remaining length 4
			0x00, 0x04, // packet id 4
			0x92, // reason code packet identifier not found
			0x00, // property length 0
		},
		want:  &proto.Pubcomp{PacketID: 4, ReasonCode: proto.PacketIdentifierNotFound},
		canon: []byte{0x70, 0x03, 0x00, 0x04, 0x92},
	},
	{
		name: "v5 pubcomp with reason string and user property", version: proto.V5, spec: "5.0 §3.7.2.2 PUBCOMP properties",
		raw: []byte{
			0x70, 0x0F, // PUBCOMP, remaining length 15
			0x00, 0x04, // packet id 4
			0x92,                  // reason code packet identifier not found
			0x0B,                  // property length 11
			0x1F, 0x00, 0x01, '?', // reason string "?"
			0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property a=b
		},
		want: &proto.Pubcomp{
			PacketID: 4, ReasonCode: proto.PacketIdentifierNotFound,
			Props: props(proto.Properties{ReasonString: "?", User: []proto.UserProperty{{Key: "a", Value: "b"}}}, proto.PropReasonString),
		},
	},

	// ---- SUBSCRIBE ----
	{
		name: "v311 subscribe two filters", version: proto.V311,
		spec: "[MQTT-3.8.1-1] flags 0010, [MQTT-3.8.3-1] [MQTT-3.8.3-3]",
		raw: []byte{
			0x82, 0x0E, // SUBSCRIBE flags 0010, remaining length 14
			0x00, 0x0A, // packet id 10
			0x00, 0x03, 'a', '/', '+', // filter "a/+"
			0x01,                      // qos 1
			0x00, 0x03, 'b', '/', '#', // filter "b/#"
			0x02, // qos 2
		},
		want: &proto.Subscribe{PacketID: 10, Subscriptions: []proto.Subscription{
			{Filter: "a/+", QoS: 1}, {Filter: "b/#", QoS: 2},
		}},
	},
	{
		name: "v5 subscribe no properties", version: proto.V5,
		spec: "5.0 §3.8.2.1 property length 0",
		raw: []byte{
			0x82, 0x07, // SUBSCRIBE flags 0010, remaining length 7
			0x00, 0x01, // packet id 1
			0x00,            // property length 0
			0x00, 0x01, '#', // filter "#"
			0x00, // options: qos 0
		},
		want: &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: "#"}}},
	},
	{
		name: "v5 subscribe options and properties", version: proto.V5,
		spec: "5.0 §3.8.3.1 no local, retain as published, retain handling; §3.8.2.1.2 subscription identifier",
		raw: []byte{
			0x82, 0x1F, // SUBSCRIBE flags 0010, remaining length 31
			0x00, 0x0B, // packet id 11
			0x09,       // property length 9
			0x0B, 0x05, // subscription identifier 5
			0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
			0x00, 0x03, 'x', '/', 'y', // filter "x/y"
			0x2D,                                                         // options: retain handling 2, retain as published, no local, qos 1
			0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'z', // filter "$share/g/z"
			0x10, // options: retain handling 1, qos 0
		},
		want: &proto.Subscribe{
			PacketID: 11,
			Props:    proto.Properties{SubscriptionIDs: []int{5}, User: []proto.UserProperty{{Key: "k", Value: "v"}}},
			Subscriptions: []proto.Subscription{
				{Filter: "x/y", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: "$share/g/z", RetainHandling: 1},
			},
		},
	},

	// ---- SUBACK ----
	{
		name: "v311 suback", version: proto.V311,
		spec: "[MQTT-3.8.4-5] one return code per filter, [MQTT-3.9.3-2]",
		raw: []byte{
			0x90, 0x06, // SUBACK, remaining length 6
			0x00, 0x0A, // packet id 10
			0x00, 0x01, 0x02, 0x80, // granted qos 0, 1, 2, failure
		},
		want: &proto.Suback{PacketID: 10, ReasonCodes: []proto.ReasonCode{proto.Success, proto.GrantedQoS1, proto.GrantedQoS2, proto.SubackFailure}},
	},
	{
		name: "v5 suback no properties", version: proto.V5, spec: "5.0 §3.9.2",
		raw: []byte{
			0x90, 0x04, // SUBACK, remaining length 4
			0x00, 0x0B, // packet id 11
			0x00, // property length 0
			0x01, // granted qos 1
		},
		want: &proto.Suback{PacketID: 11, ReasonCodes: []proto.ReasonCode{proto.GrantedQoS1}},
	},
	{
		name: "v5 suback reason string", version: proto.V5, spec: "5.0 §3.9.2.1 §3.9.3",
		raw: []byte{
			0x90, 0x0C, // SUBACK, remaining length 12
			0x00, 0x0B, // packet id 11
			0x04,                  // property length 4
			0x1F, 0x00, 0x01, 'r', // reason string "r"
			0x00, 0x01, 0x02, 0x8F, 0x9E, // qos 0, 1, 2, topic filter invalid, shared not supported
		},
		want: &proto.Suback{
			PacketID: 11, Props: props(proto.Properties{ReasonString: "r"}, proto.PropReasonString),
			ReasonCodes: []proto.ReasonCode{0, 1, 2, proto.TopicFilterInvalid, proto.SharedSubscriptionsNotSupported},
		},
	},

	// ---- UNSUBSCRIBE ----
	{
		name: "v311 unsubscribe", version: proto.V311,
		spec: "[MQTT-3.10.1-1] flags 0010, [MQTT-3.10.3-1] [MQTT-3.10.3-2]",
		raw: []byte{
			0xA2, 0x0A, // UNSUBSCRIBE flags 0010, remaining length 10
			0x00, 0x0C, // packet id 12
			0x00, 0x03, 'a', '/', 'b', // filter "a/b"
			0x00, 0x01, '#', // filter "#"
		},
		want: &proto.Unsubscribe{PacketID: 12, Filters: []string{"a/b", "#"}},
	},
	{
		name: "v5 unsubscribe user property", version: proto.V5, spec: "5.0 §3.10.2.1",
		raw: []byte{
			0xA2, 0x0F, // UNSUBSCRIBE flags 0010, remaining length 15
			0x00, 0x0D, // packet id 13
			0x07,                                   // property length 7
			0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
			0x00, 0x03, 'a', '/', 'b', // filter "a/b"
		},
		want: &proto.Unsubscribe{
			PacketID: 13, Props: proto.Properties{User: []proto.UserProperty{{Key: "k", Value: "v"}}},
			Filters: []string{"a/b"},
		},
	},

	// ---- UNSUBACK ----
	{
		name: "v311 unsuback no codes", version: proto.V311, spec: "3.1.1 §3.11 no payload",
		raw:  []byte{0xB0, 0x02, 0x00, 0x0C}, // UNSUBACK, remaining length 2, packet id 12
		want: &proto.Unsuback{PacketID: 12},
	},
	{
		name: "v5 unsuback codes", version: proto.V5, spec: "5.0 §3.11.3",
		raw: []byte{
			0xB0, 0x05, // UNSUBACK, remaining length 5
			0x00, 0x0D, // packet id 13
			0x00,       // property length 0
			0x00, 0x11, // success, no subscription existed
		},
		want: &proto.Unsuback{PacketID: 13, ReasonCodes: []proto.ReasonCode{proto.Success, proto.NoSubscriptionExisted}},
	},
	{
		name: "v5 unsuback reason string", version: proto.V5, spec: "5.0 §3.11.2.1",
		raw: []byte{
			0xB0, 0x0B, // UNSUBACK, remaining length 11
			0x00, 0x0D, // packet id 13
			0x05,                       // property length 5
			0x1F, 0x00, 0x02, 'n', 'o', // reason string "no"
			0x00, 0x11, 0x87, // success, no subscription existed, not authorized
		},
		want: &proto.Unsuback{
			PacketID: 13, Props: props(proto.Properties{ReasonString: "no"}, proto.PropReasonString),
			ReasonCodes: []proto.ReasonCode{proto.Success, proto.NoSubscriptionExisted, proto.NotAuthorized},
		},
	},

	// ---- PINGREQ, PINGRESP ----
	{name: "v311 pingreq", version: proto.V311, spec: "3.1.1 §3.12", raw: []byte{0xC0, 0x00}, want: &proto.Pingreq{}},
	{name: "v311 pingresp", version: proto.V311, spec: "3.1.1 §3.13", raw: []byte{0xD0, 0x00}, want: &proto.Pingresp{}},
	{name: "v5 pingreq", version: proto.V5, spec: "5.0 §3.12", raw: []byte{0xC0, 0x00}, want: &proto.Pingreq{}},
	{name: "v5 pingresp", version: proto.V5, spec: "5.0 §3.13", raw: []byte{0xD0, 0x00}, want: &proto.Pingresp{}},

	// ---- DISCONNECT ----
	{
		name: "v311 disconnect", version: proto.V311, spec: "[MQTT-3.14.1-1]",
		raw:  []byte{0xE0, 0x00}, // DISCONNECT, remaining length 0
		want: &proto.Disconnect{},
	},
	{
		name: "v5 disconnect 0 bytes", version: proto.V5, spec: "5.0 §3.14.2.1 omitted reason code is normal disconnection",
		raw:  []byte{0xE0, 0x00}, // DISCONNECT, remaining length 0
		want: &proto.Disconnect{},
	},
	{
		name: "v5 disconnect 1 byte", version: proto.V5, spec: "5.0 §3.14.2.1",
		raw: []byte{
			0xE0, 0x01, // DISCONNECT, remaining length 1
			0x04, // reason code disconnect with will message
		},
		want: &proto.Disconnect{ReasonCode: proto.DisconnectWithWill},
	},
	{
		name: "v5 disconnect 2 bytes", version: proto.V5, spec: "5.0 §3.14.2.2 empty property length",
		raw: []byte{
			0xE0, 0x02, // DISCONNECT, remaining length 2
			0x8E, // reason code session taken over
			0x00, // property length 0
		},
		want:  &proto.Disconnect{ReasonCode: proto.SessionTakenOver},
		canon: []byte{0xE0, 0x01, 0x8E},
	},
	{
		name: "v5 disconnect properties", version: proto.V5, spec: "5.0 §3.14.2.2 DISCONNECT properties",
		raw: []byte{
			0xE0, 0x12, // DISCONNECT, remaining length 18
			0x8B,                         // reason code server shutting down
			0x10,                         // property length 16
			0x11, 0x00, 0x00, 0x00, 0x00, // session expiry interval 0
			0x1C, 0x00, 0x02, 's', '2', // server reference "s2"
			0x1F, 0x00, 0x03, 'b', 'y', 'e', // reason string "bye"
		},
		want: &proto.Disconnect{
			ReasonCode: proto.ServerShuttingDown,
			Props: props(proto.Properties{ServerReference: "s2", ReasonString: "bye"},
				proto.PropSessionExpiry, proto.PropServerReference, proto.PropReasonString),
		},
	},

	// ---- AUTH ----
	{
		name: "v5 auth 0 bytes", version: proto.V5, spec: "5.0 §3.15.2.1 omitted reason code is success",
		raw:  []byte{0xF0, 0x00}, // AUTH, remaining length 0
		want: &proto.Auth{},
	},
	{
		name: "v5 auth 2 bytes", version: proto.V5, spec: "5.0 §3.15.2.2",
		raw: []byte{
			0xF0, 0x02, // AUTH, remaining length 2
			0x19, // reason code re-authenticate
			0x00, // property length 0
		},
		want:  &proto.Auth{ReasonCode: proto.ReAuthenticate},
		canon: []byte{0xF0, 0x01, 0x19},
	},
	{
		name: "v5 auth continue", version: proto.V5, spec: "5.0 §3.15.2.2 authentication method and data",
		raw: []byte{
			0xF0, 0x10, // AUTH, remaining length 16
			0x18,                                      // reason code continue authentication
			0x0E,                                      // property length 14
			0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method "SCRAM"
			0x16, 0x00, 0x03, 0x01, 0x02, 0x03, // authentication data 01 02 03
		},
		want: &proto.Auth{
			ReasonCode: proto.ContinueAuthentication,
			Props: props(proto.Properties{AuthMethod: "SCRAM", AuthData: []byte{1, 2, 3}},
				proto.PropAuthMethod, proto.PropAuthData),
		},
	},
}
