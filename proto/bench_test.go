package proto_test

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/skein-mq/skein/proto"
)

// benchPublishes are the PUBLISH packets of the codec benchmarks: a 64-byte payload at
// QoS 1, and for 5.0 a couple of properties as a typical broker sees them.
func benchPublishes() []struct {
	name string
	v    proto.Version
	p    *proto.Publish
} {
	payload := bytes.Repeat([]byte{0x42}, 64)
	return []struct {
		name string
		v    proto.Version
		p    *proto.Publish
	}{
		{"v311", proto.V311, &proto.Publish{QoS: 1, PacketID: 7, Topic: "sensors/building-1/floor-3/temp", Payload: payload}},
		{"v5", proto.V5, &proto.Publish{
			QoS: 1, PacketID: 7, Topic: "sensors/building-1/floor-3/temp", Payload: payload,
			Props: props(proto.Properties{
				MessageExpiry: 3600, ContentType: "application/json",
				User: []proto.UserProperty{{Key: "trace", Value: "abc123"}},
			}, proto.PropMessageExpiry, proto.PropContentType),
		}},
	}
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, bc := range benchPublishes() {
		raw, err := bc.p.Append(nil, bc.v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, _, err := proto.DecodeBytes(raw, bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, bc := range benchPublishes() {
		b.Run(bc.name, func(b *testing.B) {
			dst := make([]byte, 0, 512) // reused: encoding allocates nothing
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = bc.p.Append(dst[:0], bc.v); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(dst)))
		})
	}
}

// TestEncodePublishAllocs pins the benchmark's promise: encoding into a buffer with
// room allocates nothing.
func TestEncodePublishAllocs(t *testing.T) {
	for _, bc := range benchPublishes() {
		dst := make([]byte, 0, 512)
		allocs := testing.AllocsPerRun(100, func() {
			dst, _ = bc.p.Append(dst[:0], bc.v)
		})
		if allocs != 0 {
			t.Errorf("%s: Append allocates %.0f times per packet", bc.name, allocs)
		}
	}
}

func BenchmarkReadPacket(b *testing.B) {
	for _, bc := range benchPublishes() {
		raw, err := bc.p.Append(nil, bc.v)
		if err != nil {
			b.Fatal(err)
		}
		// A stream of back-to-back packets, read round and round.
		stream := bytes.Repeat(raw, 256)
		b.Run(bc.name, func(b *testing.B) {
			rd := bytes.NewReader(stream)
			br := bufio.NewReaderSize(rd, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				_, err := proto.ReadPacket(br, bc.v, 1<<20)
				if err == io.EOF {
					rd.Reset(stream)
					br.Reset(rd)
					_, err = proto.ReadPacket(br, bc.v, 1<<20)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeConnect(b *testing.B) {
	for _, tc := range fixtures {
		var name string
		switch tc.name {
		case "v311 connect will username password":
			name = "v311"
		case "v5 connect session expiry receive maximum user and will properties":
			name = "v5"
		default:
			continue
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.raw)))
			for b.Loop() {
				if _, _, err := proto.DecodeBytes(tc.raw, tc.version); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
