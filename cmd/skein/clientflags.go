package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/proto/client"
)

// clientFlags are the options mosquitto_pub and mosquitto_sub share, parsed by hand
// because their syntax (-h for host, multi-word -D) does not fit a flag library.
type clientFlags struct {
	tool        string // "pub" or "sub", for messages
	host        string
	port        int
	portSet     bool
	bindAddr    string
	clientID    string
	idPrefix    string
	keepAlive   int
	qos         byte
	version     proto.Version
	username    string
	usernameSet bool
	password    string
	passwordSet bool
	noClean     bool
	expiry      int64 // -x; -2 when not given
	debug       bool
	quiet       bool
	topics      []string
	nodelay     bool
	unixPath    string

	willTopic   string
	willPayload string
	willQoS     byte
	willRetain  bool

	cafile, capath, certfile, keyfile string
	insecure                          bool
	tlsVersion                        string
	useTLS                            bool

	props propertySet
}

// usageError is a command-line mistake: mosquitto prints it followed by a pointer
// to --help and exits 1.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// argReader walks the arguments.
type argReader struct {
	args []string
	i    int
}

func (a *argReader) next(opt string) (string, error) {
	if a.i+1 >= len(a.args) {
		return "", usagef("%s argument given but no %s specified.", opt, argName(opt))
	}
	a.i++
	return a.args[a.i], nil
}

func argName(opt string) string {
	switch opt {
	case "-h":
		return "host"
	case "-p":
		return "port"
	case "-t":
		return "topic"
	case "-m":
		return "message"
	case "-q":
		return "QoS"
	case "-i":
		return "id"
	case "-k":
		return "keepalive"
	case "-u":
		return "username"
	case "-P":
		return "password"
	case "-f":
		return "file"
	}
	return "value"
}

func (a *argReader) int(opt string, lo, hi int) (int, error) {
	s, err := a.next(opt)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, usagef("Invalid %s given: %s", argName(opt), s)
	}
	return n, nil
}

func defaultClientFlags(tool string) clientFlags {
	return clientFlags{tool: tool, host: "localhost", port: 1883, keepAlive: 60, version: proto.V311, expiry: -2}
}

// parseCommon consumes one option shared by pub and sub at a.args[a.i]; it reports
// false when the option is not a common one.
func (f *clientFlags) parseCommon(a *argReader) (bool, error) {
	opt := a.args[a.i]
	var err error
	switch opt {
	case "-h", "--host":
		f.host, err = a.next("-h")
	case "-p", "--port":
		f.port, err = a.int("-p", 1, 65535)
		f.portSet = true
	case "-A":
		f.bindAddr, err = a.next(opt)
	case "-i", "--id":
		f.clientID, err = a.next("-i")
		if err == nil && f.idPrefix != "" {
			err = usagef("-i and -I argument cannot be used together.")
		}
	case "-I", "--id-prefix":
		f.idPrefix, err = a.next(opt)
		if err == nil && f.clientID != "" {
			err = usagef("-i and -I argument cannot be used together.")
		}
	case "-k", "--keepalive":
		f.keepAlive, err = a.int("-k", 0, 65535)
		if err == nil && f.keepAlive > 0 && f.keepAlive < 5 {
			err = usagef("Invalid keepalive given, it must be between 5 and 65535 inclusive.")
		}
	case "-q", "--qos":
		var q int
		q, err = a.int("-q", 0, 2)
		f.qos = byte(q)
	case "-V", "--protocol-version":
		var v string
		if v, err = a.next(opt); err == nil {
			f.version, err = parseVersion(v)
		}
	case "-u", "--username":
		f.username, err = a.next("-u")
		f.usernameSet = true
	case "-P", "--pw":
		f.password, err = a.next("-P")
		f.passwordSet = true
	case "-c", "--disable-clean-session":
		f.noClean = true
	case "-x":
		var s string
		if s, err = a.next(opt); err == nil {
			f.expiry, err = parseExpiry(s)
		}
	case "-d", "--debug":
		f.debug = true
	case "--quiet":
		f.quiet = true
	case "--nodelay":
		f.nodelay = true
	case "--unix":
		f.unixPath, err = a.next(opt)
	case "-t", "--topic":
		var t string
		if t, err = a.next("-t"); err == nil {
			f.topics = append(f.topics, t)
		}
	case "-L", "--url":
		var s string
		if s, err = a.next(opt); err == nil {
			err = f.parseURL(s)
		}
	case "--will-topic":
		f.willTopic, err = a.next(opt)
	case "--will-payload":
		f.willPayload, err = a.next(opt)
	case "--will-qos":
		var q int
		q, err = a.int(opt, 0, 2)
		f.willQoS = byte(q)
	case "--will-retain":
		f.willRetain = true
	case "--cafile":
		f.cafile, err = a.next(opt)
		f.useTLS = true
	case "--capath":
		f.capath, err = a.next(opt)
		f.useTLS = true
	case "--cert":
		f.certfile, err = a.next(opt)
	case "--key":
		f.keyfile, err = a.next(opt)
	case "--insecure":
		f.insecure = true
	case "--tls-version":
		f.tlsVersion, err = a.next(opt)
	case "--tls-use-os-certs":
		f.useTLS = true
	case "-D", "--property":
		// Properties exist only in 5.0: mosquitto's tools switch to it.
		err = f.props.parse(a)
		f.version = proto.V5
	default:
		return false, nil
	}
	return true, err
}

func parseVersion(s string) (proto.Version, error) {
	switch s {
	case "mqttv5", "5":
		return proto.V5, nil
	case "mqttv311", "311":
		return proto.V311, nil
	case "mqttv31", "31":
		return proto.V31, nil
	}
	return 0, usagef("Invalid protocol version argument given.")
}

func parseExpiry(s string) (int64, error) {
	if s == "∞" || s == "-1" {
		return 0xFFFFFFFF, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 0xFFFFFFFF {
		return 0, usagef("Invalid session-expiry-interval given: %s", s)
	}
	return n, nil
}

// parseURL applies -L mqtt(s)://[user[:password]@]host[:port]/topic.
func (f *clientFlags) parseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "mqtt" && u.Scheme != "mqtts") || u.Host == "" {
		return usagef("Unsupported URL scheme.")
	}
	if u.Scheme == "mqtts" {
		f.useTLS = true
		f.port = 8883
	}
	f.host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return usagef("Invalid port given: %s", p)
		}
		f.port, f.portSet = n, true
	}
	if u.User != nil {
		f.username, f.usernameSet = u.User.Username(), true
		if pw, ok := u.User.Password(); ok {
			f.password, f.passwordSet = pw, true
		}
	}
	if t := strings.TrimPrefix(u.Path, "/"); t != "" {
		f.topics = append(f.topics, t)
	}
	return nil
}

// finish checks combinations after all options are read.
func (f *clientFlags) finish() error {
	if f.useTLS && !f.portSet {
		f.port = 8883
	}
	if f.willTopic != "" {
		if err := proto.ValidTopicName(f.willTopic); err != nil {
			return usagef("Invalid will topic '%s', does it contain '+' or '#'?", f.willTopic)
		}
	} else if f.willPayload != "" || f.willRetain {
		return usagef("Will payload or retain given, but no will topic given.")
	}
	if f.passwordSet && !f.usernameSet && f.version != proto.V5 {
		return usagef("Password given, but no username given.") // [MQTT-3.1.2-22]
	}
	if f.noClean && f.clientID == "" && f.idPrefix == "" {
		return usagef("You must provide a client id if you are using the -c option.")
	}
	// -x without MQTT 5 is accepted and ignored, as mosquitto's tools do.
	return nil
}

// connectPacket builds the CONNECT the flags describe.
func (f *clientFlags) connectPacket() proto.Connect {
	cp := proto.Connect{
		Version:    f.version,
		CleanStart: !f.noClean,
		KeepAlive:  uint16(f.keepAlive),
		ClientID:   f.clientID,
		Props:      f.props.connect,
	}
	if f.idPrefix != "" {
		cp.ClientID = f.idPrefix + strconv.Itoa(os.Getpid())
	}
	if f.version == proto.V5 {
		switch {
		case f.expiry >= 0:
			cp.Props.SessionExpiry = uint32(f.expiry)
			cp.Props.Set(proto.PropSessionExpiry)
		case f.noClean:
			// -c without -x: a session that does not expire, as mosquitto does.
			cp.Props.SessionExpiry = 0xFFFFFFFF
			cp.Props.Set(proto.PropSessionExpiry)
		}
	}
	if f.usernameSet {
		cp.UsernameSet, cp.Username = true, f.username
	}
	if f.passwordSet {
		cp.PasswordSet, cp.Password = true, []byte(f.password)
	}
	if f.willTopic != "" {
		cp.Will = &proto.Will{Topic: f.willTopic, Payload: []byte(f.willPayload), QoS: f.willQoS, Retain: f.willRetain, Props: f.props.will}
	}
	return cp
}

// dialer returns the function that opens the connection: TCP or a unix socket,
// optionally bound to -A, optionally with TLS.
func (f *clientFlags) dialer() (func(ctx context.Context) (net.Conn, error), error) {
	var tlsCfg *tls.Config
	if f.useTLS {
		var err error
		if tlsCfg, err = f.tlsConfig(); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		if f.bindAddr != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(f.bindAddr)}
		}
		network, addr := "tcp", net.JoinHostPort(f.host, strconv.Itoa(f.port))
		if f.unixPath != "" {
			network, addr = "unix", f.unixPath
		}
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tc, ok := nc.(*net.TCPConn); ok && f.nodelay {
			_ = tc.SetNoDelay(true) // Go sets TCP_NODELAY by default anyway
		}
		if tlsCfg == nil {
			return nc, nil
		}
		tc := tls.Client(nc, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return tc, nil
	}, nil
}

func (f *clientFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: f.host, InsecureSkipVerify: f.insecure, MinVersion: tls.VersionTLS12}
	switch f.tlsVersion {
	case "", "tlsv1.2":
	case "tlsv1.3":
		cfg.MinVersion = tls.VersionTLS13
	case "tlsv1.1":
		cfg.MinVersion = tls.VersionTLS11
	default:
		return nil, fmt.Errorf("invalid TLS version given: %s", f.tlsVersion)
	}
	if f.cafile != "" || f.capath != "" {
		pool := x509.NewCertPool()
		var files []string
		if f.cafile != "" {
			files = append(files, f.cafile)
		}
		if f.capath != "" {
			entries, err := os.ReadDir(f.capath)
			if err != nil {
				return nil, fmt.Errorf("problem setting TLS options: %w", err)
			}
			for _, e := range entries {
				files = append(files, f.capath+"/"+e.Name())
			}
		}
		for _, file := range files {
			pem, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("problem setting TLS options: %w", err)
			}
			pool.AppendCertsFromPEM(pem)
		}
		cfg.RootCAs = pool
	}
	if f.certfile != "" || f.keyfile != "" {
		cert, err := tls.LoadX509KeyPair(f.certfile, f.keyfile)
		if err != nil {
			return nil, fmt.Errorf("problem setting TLS options: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// errorf prints an error message unless --quiet.
func (f *clientFlags) errorf(w io.Writer, format string, a ...any) {
	if !f.quiet {
		fmt.Fprintf(w, format, a...)
	}
}

// connect dials and completes CONNECT as the flags say, with -d debug output. On
// failure it prints what mosquitto's tools print and returns their exit code.
func (f *clientFlags) connect(ctx context.Context, opts client.Options, stdout, stderr io.Writer) (*client.Client, int) {
	dial, err := f.dialer()
	if err != nil {
		f.errorf(stderr, "Error: %v\n", err)
		return nil, 1
	}
	cp := f.connectPacket()
	opts.Dial, opts.Connect = dial, cp
	if f.debug {
		opts.OnPacket = (&debugPrinter{w: stdout, id: cp.ClientID}).print
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.Connect(cctx, opts)
	if err != nil {
		msg, code := connectError(err, f.tool)
		f.errorf(stderr, "%s\n", msg)
		return nil, code
	}
	return c, 0
}

// debugPrinter prints packets the way libmosquitto's debug log does, so scripts and
// eyes used to mosquitto_pub -d see the same lines.
type debugPrinter struct {
	w  io.Writer
	id string // the client id sent, until the broker assigns one
	// mid follows libmosquitto's message id counter, which QoS 0 publishes advance
	// too although they carry no packet id.
	mid uint16
}

func (d *debugPrinter) print(sent bool, p proto.Packet) {
	dir := "received"
	if sent {
		dir = "sending"
	}
	if a, ok := p.(*proto.Connack); ok && a.Props.Has(proto.PropAssignedClientID) {
		d.id = a.Props.AssignedClientID
	}
	id := d.id
	if id == "" {
		id = "(null)"
	}
	switch p := p.(type) {
	case *proto.Connack:
		fmt.Fprintf(d.w, "Client %s %s CONNACK (%d)\n", id, dir, byte(p.ReasonCode))
	case *proto.Publish:
		mid := p.PacketID
		if sent {
			if mid == 0 {
				d.mid++
				mid = d.mid
			} else {
				d.mid = mid
			}
		}
		fmt.Fprintf(d.w, "Client %s %s PUBLISH (d%d, q%d, r%d, m%d, '%s', ... (%d bytes))\n",
			id, dir, b2i(p.Dup), p.QoS, b2i(p.Retain), mid, p.Topic, len(p.Payload))
	case *proto.Puback:
		if sent {
			fmt.Fprintf(d.w, "Client %s sending PUBACK (m%d, rc%d)\n", id, p.PacketID, byte(p.ReasonCode))
		} else {
			fmt.Fprintf(d.w, "Client %s received PUBACK (Mid: %d, RC:%d)\n", id, p.PacketID, byte(p.ReasonCode))
		}
	case *proto.Pubrec:
		if sent {
			fmt.Fprintf(d.w, "Client %s sending PUBREC (m%d, rc%d)\n", id, p.PacketID, byte(p.ReasonCode))
		} else {
			fmt.Fprintf(d.w, "Client %s received PUBREC (Mid: %d)\n", id, p.PacketID)
		}
	case *proto.Pubrel:
		if sent {
			fmt.Fprintf(d.w, "Client %s sending PUBREL (m%d)\n", id, p.PacketID)
		} else {
			fmt.Fprintf(d.w, "Client %s received PUBREL (Mid: %d)\n", id, p.PacketID)
		}
	case *proto.Pubcomp:
		if sent {
			fmt.Fprintf(d.w, "Client %s sending PUBCOMP (m%d)\n", id, p.PacketID)
		} else {
			fmt.Fprintf(d.w, "Client %s received PUBCOMP (Mid: %d, RC:%d)\n", id, p.PacketID, byte(p.ReasonCode))
		}
	case *proto.Subscribe:
		for _, s := range p.Subscriptions {
			opts := byte(0)
			if s.NoLocal {
				opts |= 0x04
			}
			if s.RetainAsPublished {
				opts |= 0x08
			}
			opts |= s.RetainHandling << 4
			fmt.Fprintf(d.w, "Client %s sending SUBSCRIBE (Mid: %d, Topic: %s, QoS: %d, Options: 0x%02x)\n", id, p.PacketID, s.Filter, s.QoS, opts)
		}
	case *proto.Unsubscribe:
		for _, t := range p.Filters {
			fmt.Fprintf(d.w, "Client %s sending UNSUBSCRIBE (Mid: %d, Topic: %s)\n", id, p.PacketID, t)
		}
	case *proto.Unsuback:
		fmt.Fprintf(d.w, "Client %s received UNSUBACK\n", id)
	case *proto.Suback:
		fmt.Fprintf(d.w, "Client %s received SUBACK\n", id)
		fmt.Fprintf(d.w, "Subscribed (mid: %d): %s\n", p.PacketID, joinCodes(p.ReasonCodes))
	default:
		fmt.Fprintf(d.w, "Client %s %s %s\n", id, dir, p.Type())
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// connectError renders a connection failure as mosquitto's clients do and returns
// their exit code: the CONNACK code when the broker refused, 1 otherwise. pub prints a
// second line after a refusal, as mosquitto_pub does.
func connectError(err error, tool string) (msg string, code int) {
	var ce *client.ConnectError
	if errors.As(err, &ce) {
		if ce.Version == proto.V5 {
			msg = "Connection error: " + reasonTitle(ce.Code)
			if tool == "pub" {
				msg += "\nError: A network protocol error occurred when communicating with the broker."
			}
			return msg, int(ce.Code)
		}
		msg = "Connection error: Connection Refused: " + connRefusedText(ce.Code)
		if tool == "pub" {
			msg += "\nError: The connection was refused."
		}
		return msg, int(ce.Code)
	}
	var ne *net.OpError
	if errors.As(err, &ne) && strings.Contains(err.Error(), "refused") {
		return "Error: Connection refused", 1
	}
	return "Error: " + err.Error(), 1
}

// reasonTitle is a 5.0 reason code as libmosquitto's mosquitto_reason_string words it.
func reasonTitle(c proto.ReasonCode) string {
	if c == proto.BadUserNameOrPassword {
		return "Bad User Name or Password"
	}
	s := c.String()
	return strings.ToUpper(s[:1]) + s[1:]
}

func connRefusedText(c proto.ReasonCode) string {
	switch c {
	case proto.ConnRefusedProtocolVersion:
		return "unacceptable protocol version."
	case proto.ConnRefusedIdentifierRejected:
		return "identifier rejected."
	case proto.ConnRefusedServerUnavailable:
		return "broker unavailable."
	case proto.ConnRefusedBadUsernamePasswd:
		return "bad user name or password."
	case proto.ConnRefusedNotAuthorized:
		return "not authorised."
	}
	return "unknown reason."
}
