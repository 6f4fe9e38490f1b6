// Package proto encodes and decodes the control packets of MQTT 3.1, 3.1.1 and 5.0:
// the fixed header and variable-length integer, UTF-8 string rules, 5.0 properties and
// reason codes, and validation of topic names and topic filters.
//
// It owns nothing but bytes: no sockets, no sessions, no clock. It imports only the
// standard library, and every other package of Skein imports it.
//
// Decoded packets own their memory: ReadPacket reads each packet's body into a fresh
// buffer sized by its remaining length, and byte slices in the packet (payloads,
// correlation data, passwords) alias that buffer, which nothing else writes. So a
// decoded PUBLISH can be stored and fanned out without copying its payload.
package proto
