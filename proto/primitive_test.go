package proto_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skein-mq/skein/proto"
)

// TestVarint checks the boundary table of section 1.5.5 (2.2.3 in 3.1.1).
func TestVarint(t *testing.T) {
	tests := []struct {
		v    int
		want []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7F}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xFF, 0x7F}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xFF, 0xFF, 0x7F}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{268435455, []byte{0xFF, 0xFF, 0xFF, 0x7F}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.v), func(t *testing.T) {
			if got := proto.AppendVarint(nil, tc.v); !bytes.Equal(got, tc.want) {
				t.Errorf("AppendVarint(%d) = % X, want % X", tc.v, got, tc.want)
			}
			if got := proto.AppendVarint([]byte{0xAA}, tc.v); !bytes.Equal(got, append([]byte{0xAA}, tc.want...)) {
				t.Errorf("AppendVarint(dst, %d) = % X, want AA % X", tc.v, got, tc.want)
			}
			if got := proto.VarintLen(tc.v); got != len(tc.want) {
				t.Errorf("VarintLen(%d) = %d, want %d", tc.v, got, len(tc.want))
			}

			// Decoding as a remaining length. ReadPacket refuses a packet one byte over
			// maxSize before reading its body, which pins the value it decoded.
			hdr := append([]byte{0xC0}, tc.want...) // PINGREQ, then the length
			total := len(hdr) + tc.v
			if _, err := proto.ReadPacket(bytes.NewReader(hdr), proto.V311, total-1); !errors.Is(err, proto.ErrPacketTooLarge) {
				t.Errorf("ReadPacket with maxSize %d: %v, want packet too large", total-1, err)
			}
			if tc.v > 1<<21 {
				return // don't build a 256 MiB body
			}
			// DecodeBytes reports the end of the packet even when it refuses the body.
			raw := append(hdr, make([]byte, tc.v)...)
			if _, n, err := proto.DecodeBytes(raw, proto.V311); n != len(raw) {
				t.Errorf("DecodeBytes with length %d: used %d of %d bytes (%v)", tc.v, n, len(raw), err)
			}
		})
	}
}

func TestVarintLenAgrees(t *testing.T) {
	for _, v := range []int{0, 1, 126, 127, 128, 129, 16382, 16383, 16384, 16385, 2097150, 2097151, 2097152, 2097153, 268435454, proto.MaxVarint} {
		if got, want := proto.VarintLen(v), len(proto.AppendVarint(nil, v)); got != want {
			t.Errorf("VarintLen(%d) = %d, AppendVarint wrote %d", v, got, want)
		}
	}
}

func TestVarintFiveBytesRejected(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		v    proto.Version
	}{
		{"remaining length", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, proto.V311},
		{"remaining length all continuation", []byte{0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, proto.V5},
		{"property length", []byte{0xE0, 0x06, 0x00, 0x80, 0x80, 0x80, 0x80, 0x00}, proto.V5},
		{"subscription identifier", []byte{0x30, 0x0A, 0x00, 0x01, 't', 0x06, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, proto.V5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := proto.DecodeBytes(tc.raw, tc.v)
			if !errors.Is(err, proto.ErrMalformed) {
				t.Errorf("DecodeBytes: %v, want malformed", err)
			}
		})
	}
}

func TestValidUTF8(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{"empty", "", true},
		{"ascii", "sport/tennis", true},
		{"two byte", "caf\u00e9", true},
		{"three byte", "\u65e5\u672c", true},
		{"four byte", "\U0001F600", true},
		{"noncharacter U+FFFF is allowed", "\uFFFF", true},
		{"control character is allowed", "a\x01b", true},
		{"U+0000", "a\x00b", false},
		{"U+0000 after non-ascii", "\u00e9\x00", false},
		{"surrogate ED A0 80", "\xED\xA0\x80", false},
		{"surrogate ED BF BF", "a\xED\xBF\xBF", false},
		{"overlong C0 80", "\xC0\x80", false},
		{"lone continuation", "\x80", false},
		{"truncated sequence", "\xE6\x97", false},
		{"above U+10FFFF", "\xF4\x90\x80\x80", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := proto.ValidUTF8(tc.s); got != tc.want {
				t.Errorf("ValidUTF8(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

func TestVersionAndTypeString(t *testing.T) {
	tests := []struct{ got, want string }{
		{proto.V31.String(), "3.1"},
		{proto.V311.String(), "3.1.1"},
		{proto.V5.String(), "5.0"},
		{proto.Version(7).String(), "level(7)"},
		{proto.CONNECT.String(), "CONNECT"},
		{proto.AUTH.String(), "AUTH"},
		{proto.PacketType(0).String(), "RESERVED"},
		{proto.PacketType(16).String(), "TYPE(16)"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

// TestAppendVarintOutOfRange checks that a value the variable byte integer cannot hold
// is refused loudly: it is an encoder bug, and a negative value must not loop forever.
func TestAppendVarintOutOfRange(t *testing.T) {
	for _, v := range []int{-1, -128, proto.MaxVarint + 1, 1 << 40} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			done := make(chan any, 1)
			go func() {
				defer func() { done <- recover() }()
				proto.AppendVarint(nil, v)
			}()
			select {
			case r := <-done:
				if r == nil {
					t.Errorf("AppendVarint(%d) did not panic", v)
				}
			case <-time.After(time.Second):
				t.Fatalf("AppendVarint(%d) did not return", v)
			}
		})
	}
}
