package proto_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/skein-mq/skein/proto"
)

func TestDecodeFixtures(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			got, n, err := proto.DecodeBytes(tc.raw, tc.version)
			if err != nil {
				t.Fatalf("DecodeBytes: %v (%s)", err, tc.spec)
			}
			if n != len(tc.raw) {
				t.Errorf("DecodeBytes used %d bytes, want %d", n, len(tc.raw))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodeBytes (%s)\n got %#v\nwant %#v", tc.spec, got, tc.want)
			}
			if got.Type() != tc.want.Type() || got.Type() != proto.PacketType(tc.raw[0]>>4) {
				t.Errorf("Type() = %s, header says %s", got.Type(), proto.PacketType(tc.raw[0]>>4))
			}
		})
	}
}

func TestAppendFixtures(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.raw
			if tc.canon != nil {
				want = tc.canon
			}
			got, err := tc.want.Append(nil, tc.version)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Append (%s)\n got % X\nwant % X", tc.spec, got, want)
			}
			size, err := proto.Size(tc.want, tc.version)
			if err != nil || size != len(want) {
				t.Errorf("Size = %d, %v; want %d", size, err, len(want))
			}
			// The canonical form decodes to the same packet.
			back, _, err := proto.DecodeBytes(got, tc.version)
			if err != nil {
				t.Fatalf("DecodeBytes(Append): %v", err)
			}
			if !reflect.DeepEqual(back, tc.want) {
				t.Errorf("DecodeBytes(Append)\n got %#v\nwant %#v", back, tc.want)
			}
		})
	}
}

// TestAppendKeepsPrefix checks that encoders append after what dst already holds,
// including when a length needs more than one byte and the body is moved.
func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			want, err := tc.want.Append(nil, tc.version)
			if err != nil {
				t.Fatal(err)
			}
			dst := append(make([]byte, 0, 4), prefix...)
			got, err := tc.want.Append(dst, tc.version)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
				t.Errorf("Append(prefix)\n got % X\nwant %X % X", got, prefix, want)
			}
		})
	}
}

// TestDecodeTruncated decodes every proper prefix of every fixture: DecodeBytes must
// ask for more bytes and never panic.
func TestDecodeTruncated(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			for i := range len(tc.raw) {
				// The remaining length promises more than the prefix holds, so
				// this is always a short read, never a verdict on the content.
				p, n, err := proto.DecodeBytes(tc.raw[:i], tc.version)
				if !errors.Is(err, io.ErrUnexpectedEOF) || p != nil || n != 0 {
					t.Errorf("prefix of %d bytes: got %v, %d, %v; want io.ErrUnexpectedEOF", i, p, n, err)
				}
			}
		})
	}
}

// TestReadPacketFixtures reads every fixture through ReadPacket: the stream reader gives
// what DecodeBytes gives.
func TestReadPacketFixtures(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(tc.raw))
			got, err := proto.ReadPacket(br, tc.version, len(tc.raw))
			if err != nil {
				t.Fatalf("ReadPacket: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ReadPacket\n got %#v\nwant %#v", got, tc.want)
			}
			if _, err := proto.ReadPacket(br, tc.version, 0); err != io.EOF {
				t.Errorf("ReadPacket after the last packet: %v, want io.EOF", err)
			}
		})
	}
}

// TestConnectOwnVersion checks that CONNECT is decoded by its own protocol level,
// whatever version the connection is assumed to speak.
func TestConnectOwnVersion(t *testing.T) {
	for _, tc := range fixtures {
		c, ok := tc.want.(*proto.Connect)
		if !ok {
			continue
		}
		for _, v := range []proto.Version{proto.V31, proto.V311, proto.V5} {
			t.Run(tc.name+"/as "+v.String(), func(t *testing.T) {
				got, _, err := proto.DecodeBytes(tc.raw, v)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c) {
					t.Errorf("got %#v\nwant %#v", got, c)
				}
				// Append ignores its version argument and uses Connect.Version.
				b, err := c.Append(nil, v)
				if err != nil || !bytes.Equal(b, tc.raw) {
					t.Errorf("Append(%s) = % X, %v; want % X", v, b, err, tc.raw)
				}
			})
		}
	}
}

func TestConnectDefaultProtocolName(t *testing.T) {
	tests := []struct {
		name string
		c    proto.Connect
		want string
	}{
		{"v31", proto.Connect{Version: proto.V31}, "MQIsdp"},
		{"v311", proto.Connect{Version: proto.V311}, "MQTT"},
		{"v5", proto.Connect{Version: proto.V5}, "MQTT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.c.Append(nil, tc.c.Version)
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := proto.DecodeBytes(b, tc.c.Version)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.(*proto.Connect).ProtocolName; got != tc.want {
				t.Errorf("protocol name %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVersionSpecificFields checks what Append leaves out for older versions.
func TestVersionSpecificFields(t *testing.T) {
	tests := []struct {
		name string
		p    proto.Packet
		v    proto.Version
		want []byte
	}{
		{
			name: "v311 puback drops reason and properties",
			p:    &proto.Puback{PacketID: 1, ReasonCode: proto.NotAuthorized, Props: props(proto.Properties{ReasonString: "x"}, proto.PropReasonString)},
			v:    proto.V311,
			want: []byte{0x40, 0x02, 0x00, 0x01},
		},
		{
			name: "v311 unsuback drops reason codes",
			p:    &proto.Unsuback{PacketID: 2, ReasonCodes: []proto.ReasonCode{proto.Success}},
			v:    proto.V311,
			want: []byte{0xB0, 0x02, 0x00, 0x02},
		},
		{
			name: "v311 disconnect drops reason",
			p:    &proto.Disconnect{ReasonCode: proto.ServerShuttingDown},
			v:    proto.V311,
			want: []byte{0xE0, 0x00},
		},
		{
			name: "v311 subscribe keeps only qos in options",
			p: &proto.Subscribe{PacketID: 3, Subscriptions: []proto.Subscription{
				{Filter: "a", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			}},
			v:    proto.V311,
			want: []byte{0x82, 0x06, 0x00, 0x03, 0x00, 0x01, 'a', 0x02},
		},
		{
			name: "qos 0 publish never sets dup",
			p:    &proto.Publish{Dup: true, Topic: "t"},
			v:    proto.V311,
			want: []byte{0x30, 0x03, 0x00, 0x01, 't'},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Append(nil, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got % X, want % X", got, tc.want)
			}
		})
	}
}

// TestAppendRefuses checks that encoders refuse what a peer would reject.
func TestAppendRefuses(t *testing.T) {
	tests := []struct {
		name string
		p    proto.Packet
		v    proto.Version
		code proto.ReasonCode
	}{
		{"publish qos 3", &proto.Publish{QoS: 3, Topic: "t", PacketID: 1}, proto.V311, proto.MalformedPacket},
		{"publish qos 1 packet id 0", &proto.Publish{QoS: 1, Topic: "t"}, proto.V311, proto.MalformedPacket},
		{"publish topic too long", &proto.Publish{Topic: string(make([]byte, 65536))}, proto.V311, proto.MalformedPacket},
		{"puback packet id 0", &proto.Puback{}, proto.V5, proto.MalformedPacket},
		{"pubrel packet id 0", &proto.Pubrel{}, proto.V311, proto.MalformedPacket},
		{"subscribe no filters", &proto.Subscribe{PacketID: 1}, proto.V311, proto.MalformedPacket},
		{"subscribe packet id 0", &proto.Subscribe{Subscriptions: []proto.Subscription{{Filter: "a"}}}, proto.V311, proto.MalformedPacket},
		{"subscribe qos 3", &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: "a", QoS: 3}}}, proto.V311, proto.MalformedPacket},
		{"subscribe retain handling 3", &proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: "a", RetainHandling: 3}}}, proto.V5, proto.MalformedPacket},
		{"suback no codes", &proto.Suback{PacketID: 1}, proto.V311, proto.MalformedPacket},
		{"unsubscribe no filters", &proto.Unsubscribe{PacketID: 1}, proto.V5, proto.MalformedPacket},
		{"unsuback v5 no codes", &proto.Unsuback{PacketID: 1}, proto.V5, proto.MalformedPacket},
		{"unsuback packet id 0", &proto.Unsuback{}, proto.V311, proto.MalformedPacket},
		{"connect will qos 3", &proto.Connect{Version: proto.V311, Will: &proto.Will{Topic: "w", QoS: 3}}, proto.V311, proto.MalformedPacket},
		{"auth before 5.0", &proto.Auth{}, proto.V311, proto.ProtocolError},
		{"subscription identifier 0", &proto.Publish{Topic: "t", Props: proto.Properties{SubscriptionIDs: []int{0}}}, proto.V5, proto.MalformedPacket},
		{"subscription identifier too large", &proto.Publish{Topic: "t", Props: proto.Properties{SubscriptionIDs: []int{proto.MaxVarint + 1}}}, proto.V5, proto.MalformedPacket},
		{
			"user property too long",
			&proto.Disconnect{Props: proto.Properties{User: []proto.UserProperty{{Key: string(make([]byte, 65536))}}}},
			proto.V5, proto.MalformedPacket,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.p.Append(nil, tc.v)
			if got := proto.CodeOf(err, 0); got != tc.code {
				t.Errorf("Append: %v (code %#02x), want code %#02x", err, byte(got), byte(tc.code))
			}
		})
	}
}
