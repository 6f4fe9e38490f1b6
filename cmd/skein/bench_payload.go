package main

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// The payload of every message skein bench publishes starts with a header, padded
// with zeros to the payload size (-s) when that is larger:
//
//	byte 0        benchMagic
//	uvarint       sequence number, per publisher, from 1
//	uvarint       publisher number (the %i of its topic)
//	8 bytes       send time in unix nanoseconds, little endian
//
// The integers are varints so that a 16-byte payload still holds the whole header
// for any realistic run (sequence numbers up to 2^28, publishers up to 16383). A
// larger header than -s makes the payload that much longer; the summary reports the
// payload size asked for.
const benchMagic = 0xB5

// maxBenchHeader is the longest header appendBenchHeader writes.
const maxBenchHeader = 1 + binary.MaxVarintLen64 + binary.MaxVarintLen32 + 8

// benchHeader is what a bench payload carries.
type benchHeader struct {
	Seq       uint64 // 1 for a publisher's first message
	Pub       uint32 // the publisher's number, from 1
	SentNanos int64  // time.Now().UnixNano() just before the message was written
}

// putBenchHeader writes h at the start of dst, which must hold maxBenchHeader bytes,
// and returns the header's length.
func putBenchHeader(dst []byte, h benchHeader) int {
	dst[0] = benchMagic
	n := 1
	n += binary.PutUvarint(dst[n:], h.Seq)
	n += binary.PutUvarint(dst[n:], uint64(h.Pub))
	binary.LittleEndian.PutUint64(dst[n:], uint64(h.SentNanos))
	return n + 8
}

// parseBenchHeader reads the header at the start of a payload; ok is false for a
// payload skein bench did not write (wrong magic, too short, sequence 0).
func parseBenchHeader(b []byte) (h benchHeader, ok bool) {
	if len(b) < 1 || b[0] != benchMagic {
		return h, false
	}
	n := 1
	seq, m := binary.Uvarint(b[n:])
	if m <= 0 || seq == 0 {
		return h, false
	}
	n += m
	pub, m := binary.Uvarint(b[n:])
	if m <= 0 || pub > 1<<32-1 {
		return h, false
	}
	n += m
	if len(b)-n < 8 {
		return h, false
	}
	return benchHeader{Seq: seq, Pub: uint32(pub), SentNanos: int64(binary.LittleEndian.Uint64(b[n:]))}, true
}

// expandTopic replaces %i in a topic template with the client's number.
func expandTopic(t string, i int) string {
	return strings.ReplaceAll(t, "%i", strconv.Itoa(i))
}
