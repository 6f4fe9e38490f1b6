package node

import (
	"fmt"
	"io"

	"github.com/skein-mq/skein/proto"
)

// framer cuts a connection's byte stream into packets. Bytes arrive in chunks of any
// size (a pooled read buffer, a small first read); a packet split across chunks is
// kept, and only its bytes, until it is complete: the few bytes of a fixed header in
// hdr, then, once the packet's size is known, the whole packet in part, allocated at
// that size after the size was checked against the maximum packet size. A reader may
// read the rest of a large packet straight into part (tail, wrote).
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
	part []byte  // the incomplete packet, at its full size; nil when none
	n    int     // bytes of part filled
}

// tail returns the unfilled end of the incomplete packet, for a reader to read into
// directly; nil when no packet of known size is incomplete.
func (f *framer) tail() []byte {
	if f.part == nil {
		return nil
	}
	return f.part[f.n:]
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
func (f *framer) wrote(n int) { f.n += n }

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
		f.part = make([]byte, h+n)
		f.n = copy(f.part, f.hdr[:h])
		data = data[h-f.nhdr:]
		f.nhdr = 0
	}
	if f.part != nil {
		k := copy(f.part[f.n:], data)
		f.n += k
		data = data[k:]
		if f.n < len(f.part) {
			return nil, data, nil
		}
		part := f.part
		f.part, f.n = nil, 0
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
		f.part = make([]byte, h+n)
		f.n = copy(f.part, data)
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
