package proto

import (
	"errors"
	"fmt"
)

// ReasonCode is an MQTT 5.0 reason code (and, before 5.0, a CONNACK return code or a
// SUBACK granted QoS / failure byte).
type ReasonCode byte

// Reason codes of MQTT 5.0 section 2.4.
const (
	Success                             ReasonCode = 0x00 // also Normal disconnection, Granted QoS 0
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// CONNACK return codes of MQTT 3.1 and 3.1.1.
const (
	ConnAccepted                  ReasonCode = 0
	ConnRefusedProtocolVersion    ReasonCode = 1
	ConnRefusedIdentifierRejected ReasonCode = 2
	ConnRefusedServerUnavailable  ReasonCode = 3
	ConnRefusedBadUsernamePasswd  ReasonCode = 4
	ConnRefusedNotAuthorized      ReasonCode = 5
)

// SubackFailure is the 3.1.1 SUBACK failure return code.
const SubackFailure ReasonCode = 0x80

var reasonNames = map[ReasonCode]string{
	0x00: "success", 0x01: "granted qos 1", 0x02: "granted qos 2",
	0x04: "disconnect with will message", 0x10: "no matching subscribers",
	0x11: "no subscription existed", 0x18: "continue authentication", 0x19: "re-authenticate",
	0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
	0x83: "implementation specific error", 0x84: "unsupported protocol version",
	0x85: "client identifier not valid", 0x86: "bad user name or password",
	0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
	0x8B: "server shutting down", 0x8C: "bad authentication method",
	0x8D: "keep alive timeout", 0x8E: "session taken over", 0x8F: "topic filter invalid",
	0x90: "topic name invalid", 0x91: "packet identifier in use",
	0x92: "packet identifier not found", 0x93: "receive maximum exceeded",
	0x94: "topic alias invalid", 0x95: "packet too large", 0x96: "message rate too high",
	0x97: "quota exceeded", 0x98: "administrative action", 0x99: "payload format invalid",
	0x9A: "retain not supported", 0x9B: "qos not supported", 0x9C: "use another server",
	0x9D: "server moved", 0x9E: "shared subscriptions not supported",
	0x9F: "connection rate exceeded", 0xA0: "maximum connect time",
	0xA1: "subscription identifiers not supported", 0xA2: "wildcard subscriptions not supported",
}

// String returns the 5.0 name of the reason code.
func (c ReasonCode) String() string {
	if s, ok := reasonNames[c]; ok {
		return s
	}
	return fmt.Sprintf("reason 0x%02X", byte(c))
}

// IsError reports whether c is a failure (0x80 and above).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// ConnackCode translates a 5.0 CONNACK reason code to the 3.1.1 return code closest to it,
// for refusing a client that speaks an older version.
func ConnackCode(c ReasonCode) ReasonCode {
	switch c {
	case Success:
		return ConnAccepted
	case UnsupportedProtocolVersion:
		return ConnRefusedProtocolVersion
	case ClientIdentifierNotValid:
		return ConnRefusedIdentifierRejected
	case BadUserNameOrPassword, BadAuthenticationMethod:
		return ConnRefusedBadUsernamePasswd
	case NotAuthorized, Banned:
		return ConnRefusedNotAuthorized
	}
	return ConnRefusedServerUnavailable
}

// Error is a protocol failure with the reason code to send (in CONNACK or DISCONNECT)
// before closing the connection. Use errors.As to get it from a wrapped error.
type Error struct {
	Code ReasonCode
	Msg  string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Msg == "" {
		return "proto: " + e.Code.String()
	}
	return "proto: " + e.Code.String() + ": " + e.Msg
}

// Is makes errors.Is match any *Error with the same code, so callers can test
// errors.Is(err, ErrMalformed) whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == ""
}

// Sentinel errors, matched by code with errors.Is.
var (
	ErrMalformed      = &Error{Code: MalformedPacket}
	ErrProtocol       = &Error{Code: ProtocolError}
	ErrPacketTooLarge = &Error{Code: PacketTooLarge}
	ErrTopicName      = &Error{Code: TopicNameInvalid}
	ErrTopicFilter    = &Error{Code: TopicFilterInvalid}
)

func malformed(format string, args ...any) error {
	return &Error{Code: MalformedPacket, Msg: fmt.Sprintf(format, args...)}
}

func protocolErr(format string, args ...any) error {
	return &Error{Code: ProtocolError, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the reason code carried by err, or def when err carries none.
func CodeOf(err error, def ReasonCode) ReasonCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return def
}
