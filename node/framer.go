package node

import (
	"fmt"
	"io"

	"github.com/skein-mq/skein/proto"
)

// framer cuts a connection's byte stream into packets. Bytes arrive in chunks of any
// size (a pooled read buffer, a small first read); a packet split across chunks is
// kept, and only its bytes, until it is complete: the few bytes of a fixed header in
// hdr, then, once the packet's size is known and checked against the maximum packet
// size, the packet's bytes in part. part grows with the bytes that arrive (doubling,
// up to the packet's size), not at once to the size the fixed header announces: a
// client that sends a header claiming a megabyte and nothing more makes the broker
// hold a kilobyte, not the megabyte. A reader may read the rest of a large packet
// straight into part's spare room (tail, wrote).
//
// Aliasing: a packet decoded from a chunk aliases the chunk, which the reader reuses
// as soon as the chunk is handled. PUBLISH and CONNECT, whose slices the broker keeps
// (payload, correlation data, will, password), are therefore decoded from a copy of
// their body, one allocation per packet as proto.ReadPacket makes. Every other packet
// a client sends keeps no slice past its handling (its strings are copies), so it is
// decoded in place. A packet assembled in part owns part.
type framer struct {
	hdr  [5]byte // the start of a fixed header cut by the end of a chunk
	nhdr int     // bytes in hdr; 0 when none
	part []byte  // the incomplete packet's bytes so far; nil when none
	size int     // the incomplete packet's whole size, fixed header included
}

// minPart is the least room a packet being assembled is given.
const minPart = 1 << 10

// tail returns the room left in the incomplete packet's buffer, for a reader to
// read into directly, doubling the buffer when it is full; nil when no packet of
// known size is incomplete.
func (f *framer) tail() []byte {
	if f.part == nil {
		return nil
	}
	f.grow(1)
	return f.part[len(f.part):min(cap(f.part), f.size)]
}

// grow makes room for k more bytes in part, at least doubling it, never past the
// packet's size.
func (f *framer) grow(k int) {
	if cap(f.part)-len(f.part) >= k {
		return
	}
	c := min(f.size, max(2*cap(f.part), len(f.part)+k, minPart))
	part := make([]byte, len(f.part), c)
	copy(part, f.part)
	f.part = part
}

// add appends data's bytes of the incomplete packet to part, and returns the rest.
func (f *framer) add(data []byte) []byte {
	k := min(len(data), f.size-len(f.part))
	f.grow(k)
	f.part = append(f.part, data[:k]...)
	return data[k:]
}

// start begins a packet of size bytes whose first bytes are data.
func (f *framer) start(size int, data []byte) {
	f.size = size
	f.part = make([]byte, 0, min(size, max(len(data), minPart)))
	f.add(data)
}

// eof is the error for a stream that ended: io.ErrUnexpectedEOF inside a packet,
// io.EOF between packets.
func (f *framer) eof() error {
	if f.nhdr > 0 || f.part != nil {
		return io.ErrUnexpectedEOF
	}
	return io.EOF
}

// wrote records that n bytes were read into tail.
func (f *framer) wrote(n int) { f.part = f.part[:len(f.part)+n] }

// next returns the next complete packet, built from the bytes kept so far and those
// of data it needs, and the rest of data. It returns no packet and no error when data
// is used up before a packet is complete: its bytes are kept for the next call.
// maxSize bounds the whole packet (fixed header included); v is the connection's
// version. A decoding failure is returned as the error, with no packet.
func (f *framer) next(data []byte, v proto.Version, maxSize int) (proto.Packet, []byte, error) {
	if f.nhdr > 0 {
		k := copy(f.hdr[f.nhdr:], data)
		h, n, err := proto.FixedHeader(f.hdr[:f.nhdr+k])
		if err == io.ErrUnexpectedEOF {
			f.nhdr += k // all of data went into the header
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if err := checkSize(f.hdr[0], h+n, maxSize); err != nil {
			return nil, nil, err
		}
		f.start(h+n, f.hdr[:h])
		data = data[h-f.nhdr:]
		f.nhdr = 0
	}
	if f.part != nil {
		data = f.add(data)
		if len(f.part) < f.size {
			return nil, data, nil
		}
		part := f.part
		f.part, f.size = nil, 0
		p, _, err := proto.DecodeBytes(part, v)
		return p, data, err
	}
	if len(data) == 0 {
		return nil, nil, nil
	}
	h, n, err := proto.FixedHeader(data)
	if err == io.ErrUnexpectedEOF {
		f.nhdr = copy(f.hdr[:], data)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if err := checkSize(data[0], h+n, maxSize); err != nil {
		return nil, nil, err
	}
	if len(data) < h+n {
		f.start(h+n, data)
		return nil, nil, nil
	}
	body := data[h : h+n : h+n]
	if t := proto.PacketType(data[0] >> 4); (t == proto.PUBLISH || t == proto.CONNECT) && n > 0 {
		body = append(make([]byte, 0, n), body...)
	}
	p, err := proto.Decode(data[0], body, v)
	return p, data[h+n:], err
}

// checkSize refuses a packet over maxSize before any of it is allocated.
func checkSize(header byte, size, maxSize int) error {
	if maxSize > 0 && size > maxSize {
		return &proto.Error{Code: proto.PacketTooLarge, Msg: fmt.Sprintf("%s of %d bytes exceeds maximum packet size %d",
			proto.PacketType(header>>4), size, maxSize)}
	}
	return nil
}
