package proto_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/skein-mq/skein/proto"
)

func TestReadPacketMaxSize(t *testing.T) {
	// A QoS 0 PUBLISH of 10 bytes: header, length, topic "a/b", payload "hi!".
	pub := []byte{
		0x30, 0x08, // PUBLISH qos 0, remaining length 8
		0x00, 0x03, 'a', '/', 'b', // topic "a/b"
		'h', 'i', '!', // payload
	}
	tests := []struct {
		name    string
		raw     []byte
		maxSize int
		code    proto.ReasonCode // 0: must succeed
	}{
		{"exactly max size", pub, len(pub), 0},
		{"one byte over", pub, len(pub) - 1, proto.PacketTooLarge},
		{"zero means the protocol maximum", pub, 0, 0},
		{"header counts", []byte{0xC0, 0x00}, 1, proto.PacketTooLarge},
		// 268435455 declared, nothing follows: refused before the body is read, so the
		// answer is PacketTooLarge, not io.ErrUnexpectedEOF.
		{"protocol maximum declared, no body", []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, 1 << 20, proto.PacketTooLarge},
		{"2 MiB declared, no body", []byte{0x30, 0x80, 0x80, 0x80, 0x01}, 1 << 20, proto.PacketTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(tc.raw))
			start := time.Now()
			p, err := proto.ReadPacket(br, proto.V311, tc.maxSize)
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("ReadPacket took %v", elapsed)
			}
			if tc.code == 0 {
				if err != nil || p == nil {
					t.Fatalf("ReadPacket = %v, %v", p, err)
				}
				return
			}
			if got := proto.CodeOf(err, 0); got != tc.code || !errors.Is(err, proto.ErrPacketTooLarge) {
				t.Fatalf("ReadPacket = %v, %v; want code %#02x", p, err, byte(tc.code))
			}
		})
	}
}

// TestReadPacketTooLargeDoesNotRead checks that the body of an oversized packet is
// neither read nor allocated.
func TestReadPacketTooLargeDoesNotRead(t *testing.T) {
	// Declared 1 MiB, and the whole body follows.
	const n = 1 << 20
	raw := append([]byte{0x30, 0x80, 0x80, 0x40}, make([]byte, n)...)
	rd := bytes.NewReader(raw) // a ByteReader itself: no read-ahead hides what ReadPacket took
	if _, err := proto.ReadPacket(rd, proto.V311, 1024); !errors.Is(err, proto.ErrPacketTooLarge) {
		t.Fatalf("ReadPacket: %v, want packet too large", err)
	}
	if read := len(raw) - rd.Len(); read != 4 {
		t.Errorf("ReadPacket read %d bytes, want the 4 of the fixed header", read)
	}

	// Nothing near the declared size is allocated. AllocsPerRun counts allocations, not
	// bytes, so count the bytes too.
	br := bufio.NewReaderSize(rd, 64)
	run := func() {
		rd.Reset(raw)
		br.Reset(rd)
		if _, err := proto.ReadPacket(br, proto.V311, 1024); !errors.Is(err, proto.ErrPacketTooLarge) {
			t.Fatalf("ReadPacket: %v", err)
		}
	}
	allocs := testing.AllocsPerRun(100, run)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 100
	for range runs {
		run()
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("packet too large: %.0f allocs, %d bytes per call", allocs, perRun)
	if perRun > 1024 {
		t.Errorf("ReadPacket allocated %d bytes per refused packet", perRun)
	}
}

func TestReadPacketEOF(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty stream", nil, io.EOF},
		{"header byte only", []byte{0x30}, io.ErrUnexpectedEOF},
		{"inside remaining length", []byte{0x30, 0x80}, io.ErrUnexpectedEOF},
		{"inside remaining length, 3 bytes", []byte{0x30, 0xFF, 0xFF, 0xFF}, io.ErrUnexpectedEOF},
		{"no body", []byte{0x30, 0x05}, io.ErrUnexpectedEOF},
		{"part of the body", []byte{0x30, 0x05, 0x00, 0x01, 't'}, io.ErrUnexpectedEOF},
		{"part of a ping", []byte{0xC0}, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := proto.ReadPacket(bufio.NewReader(bytes.NewReader(tc.raw)), proto.V311, 0)
			if err != tc.want {
				t.Errorf("ReadPacket = %v, %v; want %v", p, err, tc.want)
			}
		})
	}
}

func TestReadPacketMalformedLength(t *testing.T) {
	raw := []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01} // remaining length of 5 bytes
	_, err := proto.ReadPacket(bufio.NewReader(bytes.NewReader(raw)), proto.V311, 0)
	if !errors.Is(err, proto.ErrMalformed) {
		t.Errorf("ReadPacket: %v, want malformed", err)
	}
}

// errReader fails with its error once its bytes are used up.
type errReader struct {
	b   []byte
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestReadPacketReaderError(t *testing.T) {
	boom := errors.New("connection reset")
	r := bufio.NewReader(&errReader{b: []byte{0x30, 0x05, 0x00}, err: boom})
	if _, err := proto.ReadPacket(r, proto.V311, 0); !errors.Is(err, boom) {
		t.Errorf("ReadPacket: %v, want the reader's error", err)
	}
}

func TestReadPacketBackToBack(t *testing.T) {
	var stream []byte
	var want []proto.Packet
	for _, tc := range fixtures {
		if tc.version != proto.V5 {
			continue
		}
		stream = append(stream, tc.raw...)
		want = append(want, tc.want)
	}
	br := bufio.NewReaderSize(bytes.NewReader(stream), 16) // smaller than most packets
	for i, w := range want {
		got, err := proto.ReadPacket(br, proto.V5, 0)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("packet %d\n got %#v\nwant %#v", i, got, w)
		}
	}
	if p, err := proto.ReadPacket(br, proto.V5, 0); err != io.EOF {
		t.Errorf("after the last packet: %v, %v; want io.EOF", p, err)
	}
}

// TestReadPacketOwnsBody checks the package doc's promise: a decoded packet does not
// alias the reader's buffer, so reading on does not change it.
func TestReadPacketOwnsBody(t *testing.T) {
	first := []byte{0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'}
	second := []byte{0x30, 0x07, 0x00, 0x03, 'x', '/', 'y', 'Z', 'Z'}
	br := bufio.NewReader(bytes.NewReader(append(append([]byte{}, first...), second...)))
	p1, err := proto.ReadPacket(br, proto.V311, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proto.ReadPacket(br, proto.V311, 0); err != nil {
		t.Fatal(err)
	}
	pub := p1.(*proto.Publish)
	if pub.Topic != "a/b" || string(pub.Payload) != "hi" {
		t.Errorf("first packet changed after the second read: %q %q", pub.Topic, pub.Payload)
	}
}

func TestFixedHeader(t *testing.T) {
	tests := []struct {
		name           string
		raw            []byte
		hdr, remaining int
		err            error // io.ErrUnexpectedEOF, proto.ErrMalformed or nil
	}{
		{"empty", nil, 0, 0, io.ErrUnexpectedEOF},
		{"type byte only", []byte{0xC0}, 0, 0, io.ErrUnexpectedEOF},
		{"PINGREQ", []byte{0xC0, 0x00}, 2, 0, nil},
		{"length 127 in one byte", []byte{0x30, 0x7F}, 2, 127, nil},
		{"length 128 in two bytes", []byte{0x30, 0x80, 0x01, 0xAA}, 3, 128, nil},
		{"two-byte length cut", []byte{0x30, 0x80}, 0, 0, io.ErrUnexpectedEOF},
		// [MQTT-1.5.5] the largest remaining length, 268435455, takes four bytes.
		{"protocol maximum", []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, 5, 268435455, nil},
		{"five length bytes", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, 0, 0, proto.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := proto.FixedHeader(tc.raw)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("FixedHeader = %d, %d, %v; want error %v", h, n, err, tc.err)
				}
				return
			}
			if err != nil || h != tc.hdr || n != tc.remaining {
				t.Fatalf("FixedHeader = %d, %d, %v; want %d, %d", h, n, err, tc.hdr, tc.remaining)
			}
		})
	}
}
