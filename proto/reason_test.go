package proto_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/skein-mq/skein/proto"
)

func TestReasonCodeString(t *testing.T) {
	tests := []struct {
		code proto.ReasonCode
		want string
	}{
		{proto.Success, "success"},
		{proto.GrantedQoS2, "granted qos 2"},
		{proto.DisconnectWithWill, "disconnect with will message"},
		{proto.ContinueAuthentication, "continue authentication"},
		{proto.MalformedPacket, "malformed packet"},
		{proto.ProtocolError, "protocol error"},
		{proto.UnsupportedProtocolVersion, "unsupported protocol version"},
		{proto.TopicNameInvalid, "topic name invalid"},
		{proto.PacketTooLarge, "packet too large"},
		{proto.WildcardSubscriptionsNotSupported, "wildcard subscriptions not supported"},
		{proto.ReasonCode(0x03), "reason 0x03"},
		{proto.ReasonCode(0xFF), "reason 0xFF"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.code.String(); got != tc.want {
				t.Errorf("ReasonCode(%#02x).String() = %q, want %q", byte(tc.code), got, tc.want)
			}
		})
	}
}

func TestReasonCodeIsError(t *testing.T) {
	for c := range 256 {
		code := proto.ReasonCode(c)
		if got, want := code.IsError(), c >= 0x80; got != want {
			t.Errorf("ReasonCode(%#02x).IsError() = %v", c, got)
		}
	}
}

func TestConnackCode(t *testing.T) {
	tests := []struct {
		in, want proto.ReasonCode
	}{
		{proto.Success, proto.ConnAccepted},
		{proto.UnsupportedProtocolVersion, proto.ConnRefusedProtocolVersion},
		{proto.ClientIdentifierNotValid, proto.ConnRefusedIdentifierRejected},
		{proto.BadUserNameOrPassword, proto.ConnRefusedBadUsernamePasswd},
		{proto.BadAuthenticationMethod, proto.ConnRefusedBadUsernamePasswd},
		{proto.NotAuthorized, proto.ConnRefusedNotAuthorized},
		{proto.Banned, proto.ConnRefusedNotAuthorized},
		{proto.ServerUnavailable, proto.ConnRefusedServerUnavailable},
		{proto.ServerBusy, proto.ConnRefusedServerUnavailable},
		{proto.UnspecifiedError, proto.ConnRefusedServerUnavailable},
		{proto.MalformedPacket, proto.ConnRefusedServerUnavailable},
		{proto.QuotaExceeded, proto.ConnRefusedServerUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.in.String(), func(t *testing.T) {
			if got := proto.ConnackCode(tc.in); got != tc.want {
				t.Errorf("ConnackCode(%#02x) = %d, want %d", byte(tc.in), got, tc.want)
			}
		})
	}
	// Every result is a 3.1.1 return code.
	for c := range 256 {
		if got := proto.ConnackCode(proto.ReasonCode(c)); got > 5 {
			t.Errorf("ConnackCode(%#02x) = %d, not a 3.1.1 return code", c, got)
		}
	}
}

func TestError(t *testing.T) {
	withMsg := &proto.Error{Code: proto.MalformedPacket, Msg: "topic name: truncated"}
	wrapped := fmt.Errorf("decode PUBLISH: %w", withMsg)
	joined := errors.Join(io.ErrClosedPipe, &proto.Error{Code: proto.ProtocolError})

	t.Run("message", func(t *testing.T) {
		if got, want := withMsg.Error(), "proto: malformed packet: topic name: truncated"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if got, want := proto.ErrPacketTooLarge.Error(), "proto: packet too large"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	})
	t.Run("is matches by code", func(t *testing.T) {
		if !errors.Is(withMsg, proto.ErrMalformed) || !errors.Is(wrapped, proto.ErrMalformed) {
			t.Error("errors.Is(…, ErrMalformed) = false for a malformed-packet error")
		}
		if errors.Is(wrapped, proto.ErrProtocol) || errors.Is(wrapped, proto.ErrTopicName) {
			t.Error("errors.Is matched a different code")
		}
		if !errors.Is(joined, proto.ErrProtocol) {
			t.Error("errors.Is does not find the code in a joined error")
		}
	})
	t.Run("is needs a target without message", func(t *testing.T) {
		other := &proto.Error{Code: proto.MalformedPacket, Msg: "something else"}
		if errors.Is(withMsg, other) {
			t.Error("errors.Is matched a target carrying its own message")
		}
		if !errors.Is(other, other) {
			t.Error("errors.Is(e, e) = false")
		}
	})
	t.Run("code of", func(t *testing.T) {
		tests := []struct {
			name string
			err  error
			def  proto.ReasonCode
			want proto.ReasonCode
		}{
			{"direct", withMsg, 0, proto.MalformedPacket},
			{"wrapped", wrapped, 0, proto.MalformedPacket},
			{"joined", joined, 0, proto.ProtocolError},
			{"sentinel", proto.ErrTopicFilter, 0, proto.TopicFilterInvalid},
			{"not a proto error", io.ErrUnexpectedEOF, proto.UnspecifiedError, proto.UnspecifiedError},
			{"nil", nil, proto.ImplementationSpecificError, proto.ImplementationSpecificError},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := proto.CodeOf(tc.err, tc.def); got != tc.want {
					t.Errorf("CodeOf(%v, %#02x) = %#02x, want %#02x", tc.err, byte(tc.def), byte(got), byte(tc.want))
				}
			})
		}
	})
	t.Run("as", func(t *testing.T) {
		var e *proto.Error
		if !errors.As(wrapped, &e) || e != withMsg {
			t.Errorf("errors.As = %v", e)
		}
	})
}
