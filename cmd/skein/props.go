package main

import (
	"strconv"

	"github.com/skein-mq/skein/proto"
)

// propertySet holds the 5.0 properties given with -D / --property, per packet.
type propertySet struct {
	connect, publish, subscribe, unsubscribe, disconnect, will proto.Properties
}

// propertyKinds maps mosquitto's property names to identifiers.
var propertyKinds = map[string]proto.PropID{
	"payload-format-indicator":     proto.PropPayloadFormat,
	"message-expiry-interval":      proto.PropMessageExpiry,
	"content-type":                 proto.PropContentType,
	"response-topic":               proto.PropResponseTopic,
	"correlation-data":             proto.PropCorrelationData,
	"subscription-identifier":      proto.PropSubscriptionID,
	"session-expiry-interval":      proto.PropSessionExpiry,
	"authentication-method":        proto.PropAuthMethod,
	"authentication-data":          proto.PropAuthData,
	"request-problem-information":  proto.PropRequestProblemInfo,
	"will-delay-interval":          proto.PropWillDelay,
	"request-response-information": proto.PropRequestResponseInfo,
	"reason-string":                proto.PropReasonString,
	"receive-maximum":              proto.PropReceiveMaximum,
	"topic-alias-maximum":          proto.PropTopicAliasMaximum,
	"topic-alias":                  proto.PropTopicAlias,
	"user-property":                proto.PropUser,
	"maximum-packet-size":          proto.PropMaximumPacketSize,
}

// allowedIn says which -D command each property may be given for.
var allowedIn = map[string]map[proto.PropID]bool{
	"connect": {proto.PropSessionExpiry: true, proto.PropAuthMethod: true, proto.PropAuthData: true,
		proto.PropRequestProblemInfo: true, proto.PropRequestResponseInfo: true, proto.PropReceiveMaximum: true,
		proto.PropTopicAliasMaximum: true, proto.PropUser: true, proto.PropMaximumPacketSize: true},
	"publish": {proto.PropPayloadFormat: true, proto.PropMessageExpiry: true, proto.PropContentType: true,
		proto.PropResponseTopic: true, proto.PropCorrelationData: true, proto.PropTopicAlias: true, proto.PropUser: true},
	"subscribe":   {proto.PropSubscriptionID: true, proto.PropUser: true},
	"unsubscribe": {proto.PropUser: true},
	"disconnect":  {proto.PropSessionExpiry: true, proto.PropReasonString: true, proto.PropUser: true},
	"will": {proto.PropPayloadFormat: true, proto.PropMessageExpiry: true, proto.PropContentType: true,
		proto.PropResponseTopic: true, proto.PropCorrelationData: true, proto.PropWillDelay: true, proto.PropUser: true},
}

// parse reads "-D command identifier value [value]" at a.args[a.i].
func (s *propertySet) parse(a *argReader) error {
	if a.i+3 >= len(a.args) {
		return usagef("--property argument given but not enough arguments specified.")
	}
	cmd, name, value := a.args[a.i+1], a.args[a.i+2], a.args[a.i+3]
	a.i += 3
	allowed, ok := allowedIn[cmd]
	if !ok {
		return usagef("Invalid command %s given in --property argument.", cmd)
	}
	id, ok := propertyKinds[name]
	if !ok {
		return usagef("Invalid property name %s in --property argument.", name)
	}
	if !allowed[id] {
		return usagef("%s property not allowed for %s in --property argument.", name, cmd)
	}
	p := s.target(cmd)
	if id == proto.PropUser {
		if a.i+1 >= len(a.args) {
			return usagef("--property argument given but not enough arguments specified.")
		}
		a.i++
		p.User = append(p.User, proto.UserProperty{Key: value, Value: a.args[a.i]})
		return nil
	}
	num := func(max uint64) (uint64, error) {
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil || n > max {
			return 0, usagef("Invalid value %s for property %s.", value, name)
		}
		return n, nil
	}
	var err error
	var n uint64
	switch id {
	case proto.PropPayloadFormat, proto.PropRequestProblemInfo, proto.PropRequestResponseInfo:
		if n, err = num(1); err == nil {
			switch id {
			case proto.PropPayloadFormat:
				p.PayloadFormat = byte(n)
			case proto.PropRequestProblemInfo:
				p.RequestProblemInfo = byte(n)
			default:
				p.RequestResponseInfo = byte(n)
			}
		}
	case proto.PropMessageExpiry, proto.PropSessionExpiry, proto.PropWillDelay, proto.PropMaximumPacketSize:
		if n, err = num(0xFFFFFFFF); err == nil {
			switch id {
			case proto.PropMessageExpiry:
				p.MessageExpiry = uint32(n)
			case proto.PropSessionExpiry:
				p.SessionExpiry = uint32(n)
			case proto.PropWillDelay:
				p.WillDelay = uint32(n)
			default:
				p.MaximumPacketSize = uint32(n)
			}
		}
	case proto.PropReceiveMaximum, proto.PropTopicAliasMaximum, proto.PropTopicAlias:
		if n, err = num(0xFFFF); err == nil {
			switch id {
			case proto.PropReceiveMaximum:
				p.ReceiveMaximum = uint16(n)
			case proto.PropTopicAliasMaximum:
				p.TopicAliasMaximum = uint16(n)
			default:
				p.TopicAlias = uint16(n)
			}
		}
	case proto.PropSubscriptionID:
		if n, err = num(proto.MaxVarint); err == nil {
			if n == 0 {
				return usagef("Invalid value %s for property %s.", value, name)
			}
			p.SubscriptionIDs = []int{int(n)}
		}
		return err
	case proto.PropCorrelationData:
		p.CorrelationData = []byte(value)
	case proto.PropAuthData:
		p.AuthData = []byte(value)
	case proto.PropContentType:
		p.ContentType = value
	case proto.PropResponseTopic:
		p.ResponseTopic = value
	case proto.PropAuthMethod:
		p.AuthMethod = value
	case proto.PropReasonString:
		p.ReasonString = value
	}
	if err != nil {
		return err
	}
	p.Set(id)
	return nil
}

func (s *propertySet) target(cmd string) *proto.Properties {
	switch cmd {
	case "connect":
		return &s.connect
	case "publish":
		return &s.publish
	case "subscribe":
		return &s.subscribe
	case "unsubscribe":
		return &s.unsubscribe
	case "disconnect":
		return &s.disconnect
	}
	return &s.will
}
