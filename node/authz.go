package node

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"

	"github.com/skein-mq/skein/node/auth"
	"github.com/skein-mq/skein/proto"
)

// Authorizer decides who may connect, and what each client may publish, subscribe
// to and receive. *auth.Checker (Mosquitto password and ACL files) is one. All
// methods may be called concurrently; a check must not block on I/O.
type Authorizer interface {
	// Authenticate accepts a CONNECT or refuses it with auth.ErrBadCredentials or
	// auth.ErrNotAuthorized.
	Authenticate(ci auth.ConnectInfo) error
	// Identity is the username and anonymity the topic checks use for ci.
	Identity(ci auth.ConnectInfo) (username string, anonymous bool)
	CanPublish(clientID, username string, anonymous bool, topic string) bool
	CanRead(clientID, username string, anonymous bool, topic string) bool
	CanSubscribe(clientID, username string, anonymous bool, filter string) bool
}

// connectInfo gathers what CONNECT and the transport (remote address addr) say
// about the client.
func (c *conn) connectInfo(cp *proto.Connect, addr net.Addr) auth.ConnectInfo {
	ci := auth.ConnectInfo{
		ClientID:    c.clientID,
		Username:    cp.Username,
		Password:    cp.Password,
		UsernameSet: cp.UsernameSet,
		PasswordSet: cp.PasswordSet,
		RemoteAddr:  addr,
	}
	if ts, ok := c.nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if certs := ts.ConnectionState().VerifiedChains; len(certs) > 0 && len(certs[0]) > 0 {
			ci.CertCommonName = certs[0][0].Subject.CommonName
		}
	}
	return ci
}

// authenticate runs the configured Authorizer and login throttle for a CONNECT. It
// returns the reason code to refuse with, or Success.
func (c *conn) authenticate(cp *proto.Connect) proto.ReasonCode {
	b := c.b
	addr := c.nc.RemoteAddr()
	if lim := b.cfg.LoginLimiter; lim != nil && !lim.Allow(addr) {
		c.log.Warn("too many failed logins from this address: refused")
		return proto.ConnectionRateExceeded
	}
	if b.cfg.Auth == nil {
		c.username, c.anonymous = cp.Username, !cp.UsernameSet
		return proto.Success
	}
	ci := c.connectInfo(cp, addr)
	if err := b.cfg.Auth.Authenticate(ci); err != nil {
		if lim := b.cfg.LoginLimiter; lim != nil {
			lim.Fail(addr)
		}
		c.log.Info("authentication failed", "username", cp.Username, "err", err)
		if errors.Is(err, auth.ErrBadCredentials) {
			return proto.BadUserNameOrPassword
		}
		return proto.NotAuthorized
	}
	if lim := b.cfg.LoginLimiter; lim != nil {
		lim.Reset(addr)
	}
	c.username, c.anonymous = b.cfg.Auth.Identity(ci)
	if c.will != nil && !b.cfg.Auth.CanPublish(c.clientID, c.username, c.anonymous, c.will.Topic) {
		c.log.Info("will topic not allowed", "topic", c.will.Topic)
		return proto.NotAuthorized
	}
	return proto.Success
}

// mayPublish checks a client's PUBLISH topic. Clients never publish to $SYS: those
// topics are the broker's own, as in Mosquitto.
func (c *conn) mayPublish(topic string) bool {
	if strings.HasPrefix(topic, "$SYS/") || topic == "$SYS" {
		return false
	}
	a := c.b.cfg.Auth
	return a == nil || a.CanPublish(c.clientID, c.username, c.anonymous, topic)
}

// maySubscribe checks a subscription's filter; a shared subscription is checked by
// the filter after its group.
func (c *conn) maySubscribe(filter string) bool {
	a := c.b.cfg.Auth
	if a == nil {
		return true
	}
	if _, inner, ok := proto.SplitShared(filter); ok {
		filter = inner
	}
	return a.CanSubscribe(c.clientID, c.username, c.anonymous, filter)
}

// overConnectionLimit reports whether a new socket would pass MaxConnections.
func (b *Broker) overConnectionLimitLocked() bool {
	return b.cfg.MaxConnections > 0 && len(b.conns) >= b.cfg.MaxConnections
}
