package proto_test

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"

	"github.com/skein-mq/skein/proto"
)

// TestLongProperties checks lengths that need more than one byte: the property length
// and the remaining length are both moved into place by the encoder.
func TestLongProperties(t *testing.T) {
	long := bytes.Repeat([]byte{'v'}, 150)
	huge := bytes.Repeat([]byte{'r'}, 200)
	payload := bytes.Repeat([]byte{0x5A}, 20000)
	tests := []struct {
		name string
		v    proto.Version
		p    proto.Packet
		raw  []byte
	}{
		{
			name: "v5 publish with a 156 byte property section",
			v:    proto.V5,
			p: &proto.Publish{Topic: "t", Payload: []byte("p"),
				Props: proto.Properties{User: []proto.UserProperty{{Key: "k", Value: string(long)}}}},
			raw: cat(
				[]byte{0x30, 0xA2, 0x01},                        // PUBLISH qos 0, remaining length 162 (2 bytes)
				[]byte{0x00, 0x01, 't'},                         // topic "t"
				[]byte{0x9C, 0x01},                              // property length 156 (2 bytes)
				[]byte{0x26, 0x00, 0x01, 'k', 0x00, 0x96}, long, // user property k=v*150
				[]byte{'p'}, // payload
			),
		},
		{
			name: "v5 connack with a 203 byte property section",
			v:    proto.V5,
			p: &proto.Connack{ReasonCode: proto.ServerBusy,
				Props: props(proto.Properties{ReasonString: string(huge)}, proto.PropReasonString)},
			raw: cat(
				[]byte{0x20, 0xCF, 0x01},       // CONNACK, remaining length 207 (2 bytes)
				[]byte{0x00, 0x89},             // flags, reason code server busy
				[]byte{0xCB, 0x01},             // property length 203 (2 bytes)
				[]byte{0x1F, 0x00, 0xC8}, huge, // reason string r*200
			),
		},
		{
			name: "v311 publish of 20003 bytes",
			v:    proto.V311,
			p:    &proto.Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: payload},
			raw: cat(
				[]byte{0x32, 0xA5, 0x9C, 0x01}, // PUBLISH qos 1, remaining length 20005 (3 bytes)
				[]byte{0x00, 0x01, 't'},        // topic "t"
				[]byte{0x00, 0x01},             // packet id 1
				payload,
			),
		},
		{
			name: "v5 publish of 20010 bytes with properties",
			v:    proto.V5,
			p: &proto.Publish{Topic: "t", Payload: payload,
				Props: props(proto.Properties{MessageExpiry: 30, SubscriptionIDs: []int{300}}, proto.PropMessageExpiry)},
			raw: cat(
				[]byte{0x30, 0xAC, 0x9C, 0x01},       // PUBLISH qos 0, remaining length 20012 (3 bytes)
				[]byte{0x00, 0x01, 't'},              // topic "t"
				[]byte{0x08},                         // property length 8
				[]byte{0x02, 0x00, 0x00, 0x00, 0x1E}, // message expiry interval 30
				[]byte{0x0B, 0xAC, 0x02},             // subscription identifier 300
				payload,
			),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Append(nil, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Fatalf("Append\n got % X\nwant % X", head(got), head(tc.raw))
			}
			back, n, err := proto.DecodeBytes(tc.raw, tc.v)
			if err != nil || n != len(tc.raw) {
				t.Fatalf("DecodeBytes: %d, %v", n, err)
			}
			if !reflect.DeepEqual(back, tc.p) {
				t.Errorf("DecodeBytes\n got %#v\nwant %#v", back, tc.p)
			}
			read, err := proto.ReadPacket(bufio.NewReader(bytes.NewReader(tc.raw)), tc.v, len(tc.raw))
			if err != nil || !reflect.DeepEqual(read, tc.p) {
				t.Errorf("ReadPacket: %v\n got %#v\nwant %#v", err, read, tc.p)
			}
		})
	}
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// head shortens long byte slices in failure messages.
func head(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}

// propKinds gives the value size of each property for walking an encoding: 1, 2, 4
// bytes, -1 variable byte integer, -2 string or binary, -3 string pair.
var propKinds = map[byte]int{
	0x01: 1, 0x02: 4, 0x03: -2, 0x08: -2, 0x09: -2, 0x0B: -1, 0x11: 4, 0x12: -2, 0x13: 2,
	0x15: -2, 0x16: -2, 0x17: 1, 0x18: 4, 0x19: 1, 0x1A: -2, 0x1C: -2, 0x1F: -2, 0x21: 2,
	0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x26: -3, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1,
}

// propIDs walks a property section (without its length) and returns the identifiers.
func propIDs(t *testing.T, b []byte) []byte {
	t.Helper()
	var ids []byte
	for len(b) > 0 {
		id := b[0]
		b = b[1:]
		ids = append(ids, id)
		switch k := propKinds[id]; k {
		case 1, 2, 4:
			b = b[k:]
		case -1:
			for b[0]&0x80 != 0 {
				b = b[1:]
			}
			b = b[1:]
		case -2, -3:
			for range -k - 1 {
				n := int(b[0])<<8 | int(b[1])
				b = b[2+n:]
			}
		default:
			t.Fatalf("unknown property 0x%02X", id)
		}
	}
	return ids
}

func TestPropertiesOrder(t *testing.T) {
	// Every CONNACK property, assigned in an order unrelated to the identifiers.
	p := proto.Properties{
		SharedSubAvailable: 1, User: []proto.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}},
		ReasonString: "r", SessionExpiry: 9, MaximumPacketSize: 1000, AuthData: []byte{1},
		AuthMethod: "m", AssignedClientID: "c", ServerKeepAlive: 5, ResponseInfo: "i",
		ServerReference: "s", ReceiveMaximum: 3, TopicAliasMaximum: 4, MaximumQoS: 1,
		RetainAvailable: 1, WildcardSubAvail: 1, SubIDAvailable: 1,
	}
	for _, id := range []proto.PropID{
		proto.PropSharedSubAvailable, proto.PropReasonString, proto.PropSessionExpiry,
		proto.PropMaximumPacketSize, proto.PropAuthData, proto.PropAuthMethod, proto.PropAssignedClientID,
		proto.PropServerKeepAlive, proto.PropResponseInfo, proto.PropServerReference,
		proto.PropReceiveMaximum, proto.PropTopicAliasMaximum, proto.PropMaximumQoS,
		proto.PropRetainAvailable, proto.PropWildcardSubAvailable, proto.PropSubIDAvailable,
	} {
		p.Set(id)
	}
	b, err := (&proto.Connack{Props: p}).Append(nil, proto.V5)
	if err != nil {
		t.Fatal(err)
	}
	// Header byte and a one-byte remaining length (the packet is under 128 bytes),
	// flags, reason code, then a one-byte property length.
	if b[1]&0x80 != 0 {
		t.Fatalf("remaining length 0x%02X... takes more than one byte", b[1])
	}
	body := b[2:]
	plen := int(body[2])
	ids := propIDs(t, body[3:3+plen])
	want := []byte{0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x26, 0x27, 0x28, 0x29, 0x2A}
	if !bytes.Equal(ids, want) {
		t.Errorf("property order % X\nwant           % X", ids, want)
	}
	back, _, err := proto.DecodeBytes(b, proto.V5)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.(*proto.Connack).Props; !reflect.DeepEqual(got, p) {
		t.Errorf("round trip\n got %#v\nwant %#v", got, p)
	}
	// User properties keep their order, which is significant.
	if u := back.(*proto.Connack).Props.User; u[0].Key != "b" || u[1].Key != "a" {
		t.Errorf("user properties reordered: %v", u)
	}
}

// TestPropertiesAnyOrderDecodes checks that the decoder accepts properties in any
// order; Append writes them sorted.
func TestPropertiesAnyOrderDecodes(t *testing.T) {
	raw := []byte{
		0x30, 0x0F, // PUBLISH qos 0, remaining length 15
		0x00, 0x01, 't', // topic "t"
		0x0A,             // property length 10
		0x23, 0x00, 0x02, // topic alias 2
		0x0B, 0x07, // subscription identifier 7
		0x02, 0x00, 0x00, 0x00, 0x01, // message expiry interval 1
		'x', // payload
	}
	canon := []byte{
		0x30, 0x0F, 0x00, 0x01, 't', 0x0A,
		0x02, 0x00, 0x00, 0x00, 0x01, // message expiry interval 1
		0x0B, 0x07, // subscription identifier 7
		0x23, 0x00, 0x02, // topic alias 2
		'x',
	}
	p, _, err := proto.DecodeBytes(raw, proto.V5)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Append(nil, proto.V5)
	if err != nil || !bytes.Equal(got, canon) {
		t.Errorf("Append = % X, %v\nwant % X", got, err, canon)
	}
}

func TestPropertiesHasSetClear(t *testing.T) {
	var p proto.Properties
	if !p.Empty() {
		t.Fatal("zero Properties not empty")
	}
	for _, id := range []proto.PropID{proto.PropPayloadFormat, proto.PropSessionExpiry, proto.PropUser, proto.PropSubscriptionID, proto.PropSharedSubAvailable} {
		if p.Has(id) {
			t.Errorf("zero Properties has 0x%02X", byte(id))
		}
	}

	tests := []struct {
		name string
		set  func(p *proto.Properties)
		id   proto.PropID
	}{
		{"byte", func(p *proto.Properties) { p.PayloadFormat = 1; p.Set(proto.PropPayloadFormat) }, proto.PropPayloadFormat},
		{"zero value is still present", func(p *proto.Properties) { p.Set(proto.PropSessionExpiry) }, proto.PropSessionExpiry},
		{"string", func(p *proto.Properties) { p.ReasonString = "x"; p.Set(proto.PropReasonString) }, proto.PropReasonString},
		{"highest identifier", func(p *proto.Properties) { p.Set(proto.PropSharedSubAvailable) }, proto.PropSharedSubAvailable},
		{"user by slice", func(p *proto.Properties) { p.User = []proto.UserProperty{{Key: "k"}} }, proto.PropUser},
		{"subscription id by slice", func(p *proto.Properties) { p.SubscriptionIDs = []int{1} }, proto.PropSubscriptionID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p proto.Properties
			tc.set(&p)
			if !p.Has(tc.id) || p.Empty() {
				t.Fatalf("after set: Has = %v, Empty = %v", p.Has(tc.id), p.Empty())
			}
			if p.Has(proto.PropMessageExpiry) {
				t.Error("an unrelated property is present")
			}
			p.Clear(tc.id)
			if p.Has(tc.id) || !p.Empty() {
				t.Errorf("after Clear: Has = %v, Empty = %v", p.Has(tc.id), p.Empty())
			}
		})
	}

	// Setting a value without Set leaves the property absent, so it is not encoded.
	q := proto.Properties{SessionExpiry: 10}
	if q.Has(proto.PropSessionExpiry) || !q.Empty() {
		t.Error("a field without Set counts as present")
	}
	b, err := (&proto.Disconnect{ReasonCode: proto.Success, Props: q}).Append(nil, proto.V5)
	if err != nil || !bytes.Equal(b, []byte{0xE0, 0x00}) {
		t.Errorf("Append = % X, %v; want E0 00", b, err)
	}
}
