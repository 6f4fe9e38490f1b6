package auth

import (
	"errors"
	"net"
	"sync/atomic"
)

// Errors returned by Checker.Authenticate. The broker maps them to CONNACK codes:
// ErrBadCredentials to 0x04 (3.1.1) or 0x86 Bad User Name or Password (5.0),
// ErrNotAuthorized to 0x05 or 0x87 Not authorized. (Mosquitto 2.0 answers both with
// 0x05 / 0x87, which tells a prober less.)
var (
	ErrBadCredentials = errors.New("auth: bad username or password")
	ErrNotAuthorized  = errors.New("auth: not authorized")
)

// ConnectInfo is what a CONNECT tells the broker about who connects.
type ConnectInfo struct {
	ClientID    string
	Username    string
	Password    []byte
	UsernameSet bool // the CONNECT has the User Name flag
	PasswordSet bool // the CONNECT has the Password flag
	RemoteAddr  net.Addr
	// CertCommonName is the Common Name of the verified TLS client certificate, or "".
	CertCommonName string
}

// Options configure a Checker. The zero value rejects every client (no anonymous
// access and no password file to authenticate against) and, with no ACL file, would
// allow every topic.
type Options struct {
	// AllowAnonymous lets clients connect without a username (Mosquitto's
	// allow_anonymous). Default false.
	AllowAnonymous bool
	// PasswordFile is the path of a Mosquitto password file (password_file). Empty: no
	// password file, and a client with a username is treated as AllowAnonymous says,
	// as Mosquitto does.
	PasswordFile string
	// ACLFile is the path of a Mosquitto ACL file (acl_file). Empty: every client may
	// publish, receive and subscribe to every topic.
	ACLFile string
	// UseIdentityAsUsername makes the Common Name of a verified client certificate
	// the username, without a password check (Mosquitto's use_identity_as_username).
	// A client without one (on a listener that asks for none) goes through the
	// password rules. Default false.
	UseIdentityAsUsername bool
	// GrantAllSubscriptions accepts every SUBSCRIBE, as Mosquitto 2.0's acl_file does,
	// leaving CanRead to filter each delivery. Default false: CanSubscribe refuses a
	// filter that no read rule covers (see ACL.CanSubscribe).
	GrantAllSubscriptions bool
}

// Checker authenticates CONNECTs against a password file and authorizes topics
// against an ACL file. It is safe for concurrent use: Reload swaps the loaded files
// atomically, so checks never block and see either the old or the new files.
type Checker struct {
	opts  Options
	state atomic.Pointer[checkerState]
}

// checkerState is one loaded generation of the files; immutable.
type checkerState struct {
	passwords *PasswordFile // nil without Options.PasswordFile
	acl       *ACL          // nil without Options.ACLFile
}

// NewChecker loads the files o names and returns a Checker using them.
func NewChecker(o Options) (*Checker, error) {
	c := &Checker{opts: o}
	st, err := c.load()
	if err != nil {
		return nil, err
	}
	c.state.Store(st)
	return c, nil
}

// load reads the files of c.opts.
func (c *Checker) load() (*checkerState, error) {
	st := &checkerState{}
	var errPW, errACL error
	if c.opts.PasswordFile != "" {
		st.passwords, errPW = LoadPasswordFile(c.opts.PasswordFile)
	}
	if c.opts.ACLFile != "" {
		st.acl, errACL = LoadACLFile(c.opts.ACLFile)
	}
	if err := errors.Join(errPW, errACL); err != nil {
		return nil, err
	}
	return st, nil
}

// Reload re-reads the password and ACL files (on SIGHUP). If either fails to load,
// the Checker keeps using the files it had and Reload returns the error.
func (c *Checker) Reload() error {
	st, err := c.load()
	if err != nil {
		return err
	}
	c.state.Store(st)
	return nil
}

// Authenticate decides whether a CONNECT may proceed, following Mosquitto 2.0:
//
//   - With UseIdentityAsUsername, a client certificate is required and is enough.
//   - Without a username: allowed only with AllowAnonymous, else ErrNotAuthorized. A
//     password without a username (MQTT 5) is ignored.
//   - With a username and a password file: the user must be in the file and send its
//     password, else ErrBadCredentials. A password file entry is the only way a
//     username is accepted; AllowAnonymous does not admit unknown users.
//   - With a username and no password file: allowed only with AllowAnonymous.
//
// It does not throttle failures; see LoginLimiter.
func (c *Checker) Authenticate(ci ConnectInfo) error {
	if c.opts.UseIdentityAsUsername && ci.CertCommonName != "" {
		return nil
	}
	// Without a verified certificate (a listener without client certificates, as
	// Mosquitto's per-listener use_identity_as_username allows), the password rules
	// below apply.
	if !ci.UsernameSet {
		if c.opts.AllowAnonymous {
			return nil
		}
		return ErrNotAuthorized
	}
	pf := c.state.Load().passwords
	if pf == nil {
		if c.opts.AllowAnonymous {
			return nil
		}
		return ErrNotAuthorized
	}
	if !ci.PasswordSet {
		// Hash anyway so that a missing password costs as much as a wrong one.
		pf.Check(ci.Username, nil)
		return ErrBadCredentials
	}
	if !pf.Check(ci.Username, ci.Password) {
		return ErrBadCredentials
	}
	return nil
}

// Identity returns the username the ACL checks must use for a client that passed
// Authenticate, and whether the client is anonymous (has no username): the certificate
// Common Name with UseIdentityAsUsername, else the CONNECT's username.
func (c *Checker) Identity(ci ConnectInfo) (username string, anonymous bool) {
	if c.opts.UseIdentityAsUsername && ci.CertCommonName != "" {
		return ci.CertCommonName, false
	}
	if !ci.UsernameSet {
		return "", true
	}
	return ci.Username, false
}

// CanPublish reports whether the client may publish to topic; see ACL.CanPublish. With
// no ACL file everything is allowed. username and anonymous come from Identity.
func (c *Checker) CanPublish(clientID, username string, anonymous bool, topic string) bool {
	acl := c.state.Load().acl
	return acl == nil || acl.CanPublish(clientID, username, anonymous, topic)
}

// CanRead reports whether the client may be sent a message on topic; see ACL.CanRead.
// The broker checks it at every delivery.
func (c *Checker) CanRead(clientID, username string, anonymous bool, topic string) bool {
	acl := c.state.Load().acl
	return acl == nil || acl.CanRead(clientID, username, anonymous, topic)
}

// CanSubscribe reports whether the client may subscribe to filter; see
// ACL.CanSubscribe and Options.GrantAllSubscriptions.
func (c *Checker) CanSubscribe(clientID, username string, anonymous bool, filter string) bool {
	acl := c.state.Load().acl
	if acl == nil || c.opts.GrantAllSubscriptions {
		return true
	}
	return acl.CanSubscribe(clientID, username, anonymous, filter)
}
