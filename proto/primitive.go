package proto

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// MaxVarint is the largest value the variable byte integer can hold (four bytes).
const MaxVarint = 268_435_455

// MaxStringLen is the longest UTF-8 string or binary field: a two-byte length prefix.
const MaxStringLen = 65535

// AppendVarint appends v as a variable byte integer (section 1.5.5). v must be in
// 0..MaxVarint: callers check lengths first, so any other value is an encoder bug and
// panics (a negative value would otherwise never end the loop).
func AppendVarint(dst []byte, v int) []byte {
	if v < 0 || v > MaxVarint {
		panic(fmt.Sprintf("proto: variable byte integer %d out of range", v))
	}
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if v == 0 {
			return dst
		}
	}
}

// VarintLen returns the number of bytes AppendVarint writes for v.
func VarintLen(v int) int {
	switch {
	case v < 128:
		return 1
	case v < 16384:
		return 2
	case v < 2097152:
		return 3
	}
	return 4
}

// ValidUTF8 checks the rules for UTF-8 encoded strings of section 1.5.4: well-formed
// UTF-8 (which excludes the surrogates U+D800..U+DFFF) [MQTT-1.5.4-1], no U+0000
// [MQTT-1.5.4-2].
func ValidUTF8(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			// Slow path only for non-ASCII input.
			return utf8.ValidString(s[i:]) && !containsNUL(s[i:])
		}
	}
	return true
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// reader consumes a packet body. Its methods record the first failure in err and
// return zero values after it, so decoders check err once at the end of a field group.
type reader struct {
	buf []byte
	pos int
	err error
}

func (r *reader) remaining() int { return len(r.buf) - r.pos }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.buf) {
		r.fail(malformed("%s: truncated", what))
		return 0
	}
	b := r.buf[r.pos]
	r.pos++
	return b
}

func (r *reader) uint16(what string) uint16 {
	if r.err != nil {
		return 0
	}
	if r.remaining() < 2 {
		r.fail(malformed("%s: truncated", what))
		return 0
	}
	v := binary.BigEndian.Uint16(r.buf[r.pos:])
	r.pos += 2
	return v
}

func (r *reader) uint32(what string) uint32 {
	if r.err != nil {
		return 0
	}
	if r.remaining() < 4 {
		r.fail(malformed("%s: truncated", what))
		return 0
	}
	v := binary.BigEndian.Uint32(r.buf[r.pos:])
	r.pos += 4
	return v
}

func (r *reader) varint(what string) int {
	if r.err != nil {
		return 0
	}
	v, mult := 0, 1
	for i := 0; i < 4; i++ {
		if r.pos >= len(r.buf) {
			r.fail(malformed("%s: truncated variable byte integer", what))
			return 0
		}
		b := r.buf[r.pos]
		r.pos++
		v += int(b&0x7f) * mult
		if b&0x80 == 0 {
			return v
		}
		mult *= 128
	}
	r.fail(malformed("%s: variable byte integer longer than 4 bytes", what))
	return 0
}

// binary reads a two-byte length and that many bytes, aliasing the buffer.
func (r *reader) binary(what string) []byte {
	n := int(r.uint16(what))
	if r.err != nil {
		return nil
	}
	if r.remaining() < n {
		r.fail(malformed("%s: length %d past end of packet", what, n))
		return nil
	}
	b := r.buf[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return b
}

// string reads a UTF-8 string and checks it.
func (r *reader) string(what string) string {
	b := r.binary(what)
	if r.err != nil {
		return ""
	}
	s := string(b)
	if !ValidUTF8(s) {
		r.fail(malformed("%s: invalid UTF-8", what))
		return ""
	}
	return s
}

// rest returns the bytes not yet read, aliasing the buffer.
func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	b := r.buf[r.pos:len(r.buf):len(r.buf)]
	r.pos = len(r.buf)
	return b
}

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendString(dst []byte, s string) []byte {
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// checkString is the encoder's guard for a string or binary field.
func checkLen(what string, n int) error {
	if n > MaxStringLen {
		return malformed("%s: %d bytes exceeds %d", what, n, MaxStringLen)
	}
	return nil
}
