package node

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/skein-mq/skein/proto"
)

// framerStream is a 3.1.1 stream of packets with every shape the framer meets: a
// PUBLISH with a payload (kept by the broker), acknowledgements decoded in place, a
// zero-length PINGREQ, and a PUBLISH whose remaining length takes two bytes.
func framerStream(t testing.TB) ([]byte, []proto.Packet) {
	t.Helper()
	big := bytes.Repeat([]byte("x"), 300) // remaining length 300+5: two bytes
	pkts := []proto.Packet{
		&proto.Publish{Topic: "a/b", Payload: []byte("hello")},
		&proto.Puback{PacketID: 7},
		&proto.Pingreq{},
		&proto.Publish{Topic: "big", QoS: 1, PacketID: 9, Payload: big},
		&proto.Subscribe{PacketID: 3, Subscriptions: []proto.Subscription{{Filter: "s/#", QoS: 1}}},
		&proto.Disconnect{},
	}
	var stream []byte
	for _, p := range pkts {
		var err error
		if stream, err = p.Append(stream, proto.V311); err != nil {
			t.Fatalf("encode %s: %v", p.Type(), err)
		}
	}
	return stream, pkts
}

// feed runs the stream through a framer in chunks of the given size, decoding each
// chunk in a buffer that is overwritten right after, as the pooled read buffers are.
func feed(t *testing.T, stream []byte, chunk int) []proto.Packet {
	t.Helper()
	var f framer
	var got []proto.Packet
	buf := make([]byte, chunk)
	for off := 0; off < len(stream); off += chunk {
		n := copy(buf, stream[off:])
		data := buf[:n]
		for {
			p, rest, err := f.next(data, proto.V311, 1<<20)
			if err != nil {
				t.Fatalf("chunk at %d: %v", off, err)
			}
			data = rest
			if p == nil {
				break
			}
			got = append(got, p)
		}
		for i := range buf {
			buf[i] = 0xEE // the reader reuses its buffer: kept packets must not see this
		}
	}
	if !errors.Is(f.eof(), io.EOF) {
		t.Fatalf("bytes left in the framer after the stream: %v", f.eof())
	}
	return got
}

func TestFramerChunks(t *testing.T) {
	stream, want := framerStream(t)
	for _, chunk := range []int{1, 2, 3, 5, 7, 64, 300, len(stream)} {
		got := feed(t, stream, chunk)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("chunks of %d bytes:\n got %v\nwant %v", chunk, got, want)
		}
	}
}

func TestFramerTail(t *testing.T) {
	// A packet larger than the first chunk: the reader reads the rest into tail,
	// whose room grows with what arrived, up to the packet's size.
	p := &proto.Publish{Topic: "t", Payload: bytes.Repeat([]byte("y"), 100<<10)}
	raw, _ := p.Append(nil, proto.V311)
	var f framer
	if got, _, err := f.next(raw[:10], proto.V311, 1<<20); got != nil || err != nil {
		t.Fatalf("first 10 bytes gave %v, %v", got, err)
	}
	rest, reads := raw[10:], 0
	for len(rest) > 0 {
		tail := f.tail()
		if len(tail) == 0 {
			t.Fatalf("no room in tail with %d bytes to go", len(rest))
		}
		k := copy(tail, rest)
		f.wrote(k)
		rest = rest[k:]
		reads++
	}
	if reads > 10 {
		t.Errorf("the rest of a 100 KiB packet took %d reads into tail: its room does not double", reads)
	}
	got, _, err := f.next(nil, proto.V311, 1<<20)
	if err != nil || !reflect.DeepEqual(got, proto.Packet(p)) {
		t.Fatalf("after the tail: %v, %v", got, err)
	}
}

func TestFramerHoldsWhatArrived(t *testing.T) {
	// A CONNECT's fixed header announcing about 1 MiB, and nothing more: the framer
	// holds room for what arrived, not for what was announced.
	var f framer
	if p, _, err := f.next([]byte{0x10, 0xFB, 0xFF, 0x3F}, proto.V311, 1<<20); p != nil || err != nil {
		t.Fatalf("the header gave %v, %v", p, err)
	}
	if cap(f.part) > minPart {
		t.Fatalf("4 bytes of a packet made the framer hold %d bytes, want at most %d", cap(f.part), minPart)
	}
	// Bytes that arrive make it grow, by doubling.
	body := bytes.Repeat([]byte{0}, 10<<10)
	if p, _, err := f.next(body, proto.V311, 1<<20); p != nil || err != nil {
		t.Fatalf("10 KiB of the body gave %v, %v", p, err)
	}
	if len(f.part) != 4+len(body) || cap(f.part) > 2*len(f.part) {
		t.Fatalf("after %d bytes the framer holds %d in %d of room", 4+len(body), len(f.part), cap(f.part))
	}
}

func TestFramerTooLarge(t *testing.T) {
	// Refused on its fixed header, before its body arrives or is allocated: a
	// 2 MiB PUBLISH announced in 5 bytes, split after 2.
	hdr := []byte{0x30, 0x80, 0x80, 0x80, 0x01}
	var f framer
	if p, _, err := f.next(hdr[:2], proto.V311, 1<<20); p != nil || err != nil {
		t.Fatalf("2 header bytes gave %v, %v", p, err)
	}
	_, _, err := f.next(hdr[2:], proto.V311, 1<<20)
	if proto.CodeOf(err, 0) != proto.PacketTooLarge {
		t.Fatalf("err = %v, want packet too large", err)
	}
	if f.part != nil {
		t.Fatalf("allocated %d bytes for a packet it refused", len(f.part))
	}
}

func FuzzFramer(f *testing.F) {
	stream, _ := framerStream(f)
	f.Add(stream, uint8(1))
	f.Add(stream, uint8(7))
	f.Add([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		// Whatever the chunking, the framer yields what decoding the whole stream
		// packet by packet yields, up to the first error.
		var want []proto.Packet
		whole := true // the stream is whole packets, all valid
		for rest := stream; len(rest) > 0; {
			p, n, err := proto.DecodeBytes(rest, proto.V311)
			if err != nil {
				whole = false
				break
			}
			want = append(want, p)
			rest = rest[n:]
		}
		var fr framer
		var got []proto.Packet
		failed := false
		step := int(chunk%64) + 1
	chunks:
		for off := 0; off < len(stream); off += step {
			data := bytes.Clone(stream[off:min(off+step, len(stream))])
			for {
				p, rest, err := fr.next(data, proto.V311, 1<<20)
				if err != nil {
					failed = true
					break chunks
				}
				data = rest
				if p == nil {
					break
				}
				got = append(got, p)
			}
		}
		if len(got) > len(want) || !reflect.DeepEqual(got, want[:len(got)]) {
			t.Fatalf("framer gave %v, decoding the whole stream %v", got, want)
		}
		if whole && (failed || len(got) != len(want)) {
			t.Fatalf("framer gave %d packets (failed: %v) of a stream of %d valid ones", len(got), failed, len(want))
		}
	})
}
