package proto_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/skein-mq/skein/proto"
)

// fuzzVersion maps any byte to a protocol version, so every decoder is reachable.
func fuzzVersion(b byte) proto.Version {
	return [...]proto.Version{proto.V31, proto.V311, proto.V5}[b%3]
}

// versionByte is the inverse of fuzzVersion for seeding.
func versionByte(v proto.Version) byte { return byte(v) - 3 }

// addFixtureSeeds seeds f with every fixture, good and bad, at its version.
func addFixtureSeeds(f *testing.F) {
	for _, tc := range fixtures {
		f.Add(versionByte(tc.version), tc.raw)
	}
	for _, tc := range badFixtures {
		f.Add(versionByte(tc.version), tc.raw)
	}
}

// checkDecodeError checks what a failed decode may return.
func checkDecodeError(t *testing.T, p proto.Packet, err error) {
	t.Helper()
	var pe *proto.Error
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &pe) {
		t.Fatalf("decode error %v (%T) is neither io.ErrUnexpectedEOF nor *proto.Error", err, err)
	}
	if p != nil {
		t.Fatalf("decode returned a packet with its error: %#v", p)
	}
}

// checkRoundTrip encodes p and decodes it again: the result must equal p, and
// encoding that gives the same bytes.
func checkRoundTrip(t *testing.T, p proto.Packet, v proto.Version) {
	t.Helper()
	ev := v
	if c, ok := p.(*proto.Connect); ok {
		ev = c.Version // CONNECT is encoded and decoded at its own level
	}
	enc, err := p.Append(nil, ev)
	if err != nil {
		t.Fatalf("Append(%#v): %v", p, err)
	}
	back, n, err := proto.DecodeBytes(enc, v)
	if err != nil {
		t.Fatalf("DecodeBytes(Append) = %v\npacket %#v\nbytes % X", err, p, enc)
	}
	if n != len(enc) {
		t.Fatalf("DecodeBytes(Append) used %d of %d bytes", n, len(enc))
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip\n got %#v\nwant %#v\nbytes % X", back, p, enc)
	}
	again, err := back.Append(nil, ev)
	if err != nil || !bytes.Equal(again, enc) {
		t.Fatalf("second Append = % X, %v\nwant % X", again, err, enc)
	}
	if size, err := proto.Size(p, ev); err != nil || size != len(enc) {
		t.Fatalf("Size = %d, %v; want %d", size, err, len(enc))
	}
}

func FuzzDecode(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, vb byte, data []byte) {
		v := fuzzVersion(vb)
		p, n, err := proto.DecodeBytes(data, v)
		if err != nil {
			checkDecodeError(t, p, err)
			return
		}
		if n < 2 || n > len(data) {
			t.Fatalf("DecodeBytes used %d of %d bytes", n, len(data))
		}
		if p.Type() != proto.PacketType(data[0]>>4) {
			t.Fatalf("Type() = %s, header says %s", p.Type(), proto.PacketType(data[0]>>4))
		}
		checkRoundTrip(t, p, v)
	})
}

// FuzzReadPacket reads a stream of packets with a small maxSize and checks that
// ReadPacket agrees with DecodeBytes on the same bytes.
func FuzzReadPacket(f *testing.F) {
	addFixtureSeeds(f)
	var stream []byte
	for _, tc := range fixtures {
		if tc.version == proto.V5 {
			stream = append(stream, tc.raw...)
		}
	}
	f.Add(versionByte(proto.V5), stream)
	const maxSize = 64
	f.Fuzz(func(t *testing.T, vb byte, data []byte) {
		v := fuzzVersion(vb)
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		off := 0
		for range 1000 {
			p, err := proto.ReadPacket(br, v, maxSize)
			if err == io.EOF {
				if off != len(data) {
					t.Fatalf("io.EOF at offset %d of %d", off, len(data))
				}
				return
			}
			want, n, derr := proto.DecodeBytes(data[off:], v)
			if err != nil {
				checkDecodeError(t, p, err)
				if errors.Is(err, proto.ErrPacketTooLarge) {
					return // DecodeBytes has no size limit: nothing to compare
				}
				if derr == nil || proto.CodeOf(derr, 0) != proto.CodeOf(err, 0) || errors.Is(derr, io.ErrUnexpectedEOF) != errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ReadPacket: %v; DecodeBytes: %v", err, derr)
				}
				return
			}
			if derr != nil {
				t.Fatalf("ReadPacket succeeded, DecodeBytes: %v", derr)
			}
			if n > maxSize {
				t.Fatalf("ReadPacket accepted a packet of %d bytes over maxSize %d", n, maxSize)
			}
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("ReadPacket\n got %#v\nDecodeBytes %#v", p, want)
			}
			checkRoundTrip(t, p, v)
			off += n
		}
	})
}

// FuzzTopicFilter checks that an accepted filter has # only as its whole last level
// and + only as whole levels, and that topic names never hold a wildcard.
func FuzzTopicFilter(f *testing.F) {
	for _, tc := range topicFilterCases {
		f.Add(tc.filter)
	}
	for _, tc := range topicNameCases {
		f.Add(tc.topic)
	}
	for _, tc := range fixtures {
		if s, ok := tc.want.(*proto.Subscribe); ok {
			for _, sub := range s.Subscriptions {
				f.Add(sub.Filter)
			}
		}
	}
	f.Fuzz(func(t *testing.T, filter string) {
		err := proto.ValidTopicFilter(filter)
		if err != nil {
			if proto.CodeOf(err, 0) != proto.TopicFilterInvalid {
				t.Fatalf("ValidTopicFilter(%q) = %v, want code 0x8F", filter, err)
			}
		} else {
			if filter == "" || !proto.ValidUTF8(filter) || len(filter) > proto.MaxStringLen {
				t.Fatalf("ValidTopicFilter accepted %q", filter)
			}
			levels := strings.Split(filter, "/")
			for i, l := range levels {
				if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
					t.Fatalf("ValidTopicFilter accepted %q: # in level %d %q", filter, i, l)
				}
				if strings.Contains(l, "+") && l != "+" {
					t.Fatalf("ValidTopicFilter accepted %q: + in level %d %q", filter, i, l)
				}
			}
			if group, inner, ok := proto.SplitShared(filter); ok {
				if group == "" || inner == "" || proto.HasWildcard(group) {
					t.Fatalf("ValidTopicFilter accepted shared %q (group %q, filter %q)", filter, group, inner)
				}
			}
		}
		if proto.ValidTopicName(filter) == nil {
			if proto.HasWildcard(filter) || filter == "" {
				t.Fatalf("ValidTopicName accepted %q", filter)
			}
			// A valid topic name without $share is a valid filter.
			if _, _, shared := proto.SplitShared(filter); !shared && err != nil {
				t.Fatalf("%q is a valid topic name but not a valid filter: %v", filter, err)
			}
		}
	})
}
