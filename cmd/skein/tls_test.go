package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// These tests run skein serve with its TLS listener (--mqtts-addr) and certificates
// made here: a CA, a server certificate for localhost and 127.0.0.1, and client
// certificates that are valid, expired, or signed by another CA.

// tlsPKI is a set of PEM files in a test's temp dir.
type tlsPKI struct {
	dir string
	// CAFile is the CA that signs the server and the trusted client certificates;
	// OtherCAFile a second CA, unknown to the broker unless a test adds it.
	CAFile, OtherCAFile   string
	ServerCert, ServerKey string
	ca, otherCA           *tlsIssuer
	serial                atomic.Int64
}

// tlsIssuer is a CA certificate and its key.
type tlsIssuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// tlsPair names the PEM files of a certificate and its key.
type tlsPair struct{ Cert, Key string }

// tlsNewPKI makes the CAs and the server certificate (CN "skein-server").
func tlsNewPKI(t testing.TB) *tlsPKI {
	t.Helper()
	p := &tlsPKI{dir: t.TempDir()}
	p.ca = p.newCA(t, "skein test CA")
	p.otherCA = p.newCA(t, "some other CA")
	p.CAFile = p.writePEM(t, "ca.pem", p.ca.cert.Raw)
	p.OtherCAFile = p.writePEM(t, "other-ca.pem", p.otherCA.cert.Raw)
	server := p.Server(t, "server", "skein-server")
	p.ServerCert, p.ServerKey = server.Cert, server.Key
	return p
}

func (p *tlsPKI) newCA(t testing.TB, cn string) *tlsIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(p.serial.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsIssuer{cert: cert, key: key}
}

func (p *tlsPKI) writePEM(t testing.TB, name string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue writes a certificate for cn signed by by, valid from notBefore to notAfter.
func (p *tlsPKI) issue(t testing.TB, name, cn string, server bool, by *tlsIssuer, notBefore, notAfter time.Time) tlsPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, by.cert, &key.PublicKey, by.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair := tlsPair{Cert: p.writePEM(t, name+".pem", der), Key: filepath.Join(p.dir, name+".key")}
	if err := os.WriteFile(pair.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pair
}

// Server issues a server certificate for localhost and 127.0.0.1 from the CA.
func (p *tlsPKI) Server(t testing.TB, name, cn string) tlsPair {
	t.Helper()
	return p.issue(t, name, cn, true, p.ca, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// Client issues a client certificate: kind "valid" (from the CA), "expired" (from
// the CA, expired yesterday) or "untrusted" (valid, from the other CA).
func (p *tlsPKI) Client(t testing.TB, kind, cn string) tlsPair {
	t.Helper()
	now := time.Now()
	name := kind + "-" + cn
	switch kind {
	case "valid":
		return p.issue(t, name, cn, false, p.ca, now.Add(-time.Hour), now.Add(24*time.Hour))
	case "expired":
		return p.issue(t, name, cn, false, p.ca, now.Add(-72*time.Hour), now.Add(-24*time.Hour))
	case "untrusted":
		return p.issue(t, name, cn, false, p.otherCA, now.Add(-time.Hour), now.Add(24*time.Hour))
	}
	t.Fatalf("unknown client certificate kind %q", kind)
	return tlsPair{}
}

// ClientConfig is a TLS client configuration that trusts the CA, presenting the
// certificate pair when it is not zero.
func (p *tlsPKI) ClientConfig(t testing.TB, pair tlsPair) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if pair.Cert != "" {
		cert, err := tls.LoadX509KeyPair(pair.Cert, pair.Key)
		if err != nil {
			t.Fatal(err)
		}
		// Always present it: Go's own selection would hold back a certificate whose
		// issuer the server does not list, and the broker must see it to refuse it.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg
}

// tlsMQTT is a packet-level MQTT connection over any transport (TLS, WebSocket, or
// TCP from a chosen source address), as nodetest.Client is over TCP.
type tlsMQTT struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	v  proto.Version
	// pending holds packets read while waiting for another one (a PUBLISH that came
	// before the PUBACK of the client's own publish); recv returns them first.
	pending []proto.Packet
}

// tlsWrap speaks MQTT version v on nc and closes it when the test ends.
func tlsWrap(t testing.TB, nc net.Conn, v proto.Version) *tlsMQTT {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	return &tlsMQTT{t: t, nc: nc, br: bufio.NewReader(nc), v: v}
}

// tlsDial opens a TLS connection to addr and completes the handshake.
func tlsDial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: nodetest.Timeout}
	nc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(nodetest.Timeout)) // the handshake is done; reads set their own
	return nc, nil
}

// tlsConnectTLS dials addr over TLS and connects as clientID, failing the test
// unless the broker accepts.
func tlsConnectTLS(t testing.TB, addr string, cfg *tls.Config, v proto.Version, clientID string) *tlsMQTT {
	t.Helper()
	nc, err := tlsDial(addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	c := tlsWrap(t, nc, v)
	if ack := c.connect(&proto.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 60}); ack.ReasonCode != proto.Success {
		t.Fatalf("CONNECT %q over TLS refused: %v", clientID, ack.ReasonCode)
	}
	return c
}

func (c *tlsMQTT) send(p proto.Packet) {
	c.t.Helper()
	b, err := p.Append(nil, c.v)
	if err != nil {
		c.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	c.sendRaw(b)
}

func (c *tlsMQTT) sendRaw(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(nodetest.Timeout)) // an error shows in Write
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recvWithin reads the next packet, or the read error (a timeout when nothing came
// within d).
func (c *tlsMQTT) recvWithin(d time.Duration) (proto.Packet, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d)) // an error shows in the read
	return proto.ReadPacket(c.br, c.v, 0)
}

func (c *tlsMQTT) recv() proto.Packet {
	c.t.Helper()
	if len(c.pending) > 0 {
		p := c.pending[0]
		c.pending = c.pending[1:]
		return p
	}
	p, err := c.recvWithin(nodetest.Timeout)
	if err != nil {
		c.t.Fatalf("read packet: %v", err)
	}
	return p
}

// tlsExpect reads the next packet and fails the test unless it is a T.
func tlsExpect[T proto.Packet](c *tlsMQTT) T {
	c.t.Helper()
	p := c.recv()
	v, ok := p.(T)
	if !ok {
		var zero T
		c.t.Fatalf("got %s, want %s", tlsDescribe(p), reflect.TypeOf(zero).Elem().Name())
	}
	return v
}

func (c *tlsMQTT) connect(cp *proto.Connect) *proto.Connack {
	c.t.Helper()
	if cp.Version == 0 {
		cp.Version = c.v
	}
	c.send(cp)
	return tlsExpect[*proto.Connack](c)
}

func (c *tlsMQTT) subscribe(id uint16, qos byte, filters ...string) []proto.ReasonCode {
	c.t.Helper()
	s := &proto.Subscribe{PacketID: id}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, proto.Subscription{Filter: f, QoS: qos})
	}
	c.send(s)
	ack := tlsExpect[*proto.Suback](c)
	if ack.PacketID != id {
		c.t.Fatalf("SUBACK for %d, want %d", ack.PacketID, id)
	}
	return ack.ReasonCodes
}

// publish sends a QoS 0 or 1 PUBLISH and returns the PUBACK's reason code (0 for
// QoS 0).
func (c *tlsMQTT) publish(qos byte, id uint16, topic, payload string) proto.ReasonCode {
	c.t.Helper()
	c.send(&proto.Publish{QoS: qos, PacketID: id, Topic: topic, Payload: []byte(payload)})
	if qos == 0 {
		return proto.Success
	}
	for {
		p, err := c.recvWithin(nodetest.Timeout)
		if err != nil {
			c.t.Fatalf("waiting for PUBACK %d: %v", id, err)
		}
		ack, ok := p.(*proto.Puback)
		if !ok {
			c.pending = append(c.pending, p)
			continue
		}
		if ack.PacketID != id {
			c.t.Fatalf("PUBACK for %d, want %d", ack.PacketID, id)
		}
		return ack.ReasonCode
	}
}

// tlsDescribe shows a packet in a failure message, with a long payload cut short.
func tlsDescribe(p proto.Packet) string {
	if pub, ok := p.(*proto.Publish); ok && len(pub.Payload) > 64 {
		short := *pub
		short.Payload = append(pub.Payload[:64:64], "..."...)
		return nodetest.String(&short)
	}
	return nodetest.String(p)
}

// expectPublish reads the next packet, which must be a PUBLISH of topic with
// payload, and acknowledges it at QoS 1.
func (c *tlsMQTT) expectPublish(topic, payload string) {
	c.t.Helper()
	p := tlsExpect[*proto.Publish](c)
	if p.Topic != topic || string(p.Payload) != payload {
		c.t.Fatalf("got %s, want PUBLISH %q %.64q", tlsDescribe(p), topic, payload)
	}
	if p.QoS == 1 {
		c.send(&proto.Puback{PacketID: p.PacketID})
	}
}

// expectClosed reads until the broker closes the connection and returns what it
// sent before; it fails the test if the connection stays open.
func (c *tlsMQTT) expectClosed() []proto.Packet {
	c.t.Helper()
	var got []proto.Packet
	for {
		p, err := c.recvWithin(nodetest.Timeout)
		if err == nil {
			got = append(got, p)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v (got %d packets)", nodetest.Timeout, len(got))
		}
		return got
	}
}

// ping checks that the connection is alive: PINGREQ gets PINGRESP.
func (c *tlsMQTT) ping() {
	c.t.Helper()
	c.send(&proto.Pingreq{})
	tlsExpect[*proto.Pingresp](c)
}

// tlsStart runs skein serve with a TLS listener (and the plain one) using the PKI's
// server certificate and the extra flags, and returns the plain and TLS addresses.
func tlsStart(t *testing.T, pki *tlsPKI, extra ...string) (plain, secure string, p *proc) {
	t.Helper()
	secure = freeAddr(t)
	args := append([]string{"--sys-interval", "0", "--mqtts-addr", secure,
		"--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey}, extra...)
	plain, p = startBrokerProc(t, args...)
	return plain, secure, p
}

// tlsMosq runs a mosquitto client to completion against host:port with args and
// returns its exit code and output.
func tlsMosq(t *testing.T, tool, addr string, args ...string) (int, *proc) {
	t.Helper()
	p := mosq(t, addr, "", tool, args...)
	return p.wait(t, waitTimeout), p
}

func TestTLSListener(t *testing.T) {
	pki := tlsNewPKI(t)
	plain, secure, _ := tlsStart(t, pki)

	// A subscriber over TLS stays connected through every case: bad input on the TLS
	// port must not disturb it.
	watch := tlsConnectTLS(t, secure, pki.ClientConfig(t, tlsPair{}), proto.V5, "tls-watch")
	if codes := watch.subscribe(1, 1, "tls/watch"); len(codes) != 1 || codes[0] != proto.GrantedQoS1 {
		t.Fatalf("SUBACK %v", codes)
	}
	var watched int
	stillWatching := func(t *testing.T) {
		t.Helper()
		watched++
		payload := fmt.Sprintf("still here %d", watched)
		pub := nodetest.Connect(t, plain, proto.V311, "tls-watch-pub")
		pub.Publish(&proto.Publish{QoS: 1, PacketID: 1, Topic: "tls/watch", Payload: []byte(payload)})
		pub.Disconnect()
		watch.expectPublish("tls/watch", payload)
	}

	t.Run("tls to tcp and back", func(t *testing.T) {
		for _, v := range []proto.Version{proto.V5, proto.V311, proto.V31} {
			t.Run(v.String(), func(t *testing.T) {
				c := tlsConnectTLS(t, secure, pki.ClientConfig(t, tlsPair{}), v, "tls-sub-"+v.String())
				state := c.nc.(*tls.Conn).ConnectionState()
				if cn := state.PeerCertificates[0].Subject.CommonName; cn != "skein-server" {
					t.Fatalf("server certificate CN %q, want skein-server (--tls-cert)", cn)
				}
				if state.Version < tls.VersionTLS12 {
					t.Fatalf("negotiated TLS version %x, below 1.2", state.Version)
				}
				c.subscribe(1, 1, "tls/to-tls")
				tcp := nodetest.Connect(t, plain, proto.V5, "tcp-"+v.String())
				tcp.Subscribe(1, 1, "tls/to-tcp")
				tcp.Publish(&proto.Publish{QoS: 1, PacketID: 2, Topic: "tls/to-tls", Payload: []byte("from tcp")})
				c.expectPublish("tls/to-tls", "from tcp")
				if code := c.publish(1, 2, "tls/to-tcp", "from tls"); code.IsError() {
					t.Fatalf("PUBACK %v", code)
				}
				tcp.ExpectPublish("tls/to-tcp", "from tls")
				c.send(&proto.Disconnect{})
				tcp.Disconnect()
			})
		}
	})

	t.Run("tls 1.1 refused", func(t *testing.T) {
		cfg := pki.ClientConfig(t, tlsPair{})
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		if nc, err := tlsDial(secure, cfg); err == nil {
			nc.Close()
			t.Fatal("TLS 1.1 handshake succeeded, want the 1.2 minimum")
		}
		stillWatching(t)
	})

	// Plain MQTT and other garbage sent to the TLS port: the broker must close the
	// connection without answering in MQTT and keep serving everyone else.
	garbage := []struct {
		name string
		data []byte
	}{
		{"plain mqtt connect", tlsConnectBytes(t)},
		{"http request", []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")},
		{"random bytes", []byte("\x16\x03\x01\x00\x05\xff\xff\xff\xff\xff and some more noise")},
		{"zeros", make([]byte, 4096)},
	}
	for _, g := range garbage {
		t.Run("garbage "+g.name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", secure, nodetest.Timeout)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(nodetest.Timeout))
			if _, err := nc.Write(g.data); err != nil {
				t.Fatalf("write: %v", err)
			}
			got, err := io.ReadAll(nc)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the broker kept the connection open %v after garbage", nodetest.Timeout)
			}
			// At most a TLS alert record (content type 21), never an MQTT CONNACK.
			if len(got) > 0 && got[0] != 0x15 {
				t.Fatalf("the broker answered %q, want nothing or a TLS alert", got)
			}
			stillWatching(t)
			// The TLS listener still accepts.
			c := tlsConnectTLS(t, secure, pki.ClientConfig(t, tlsPair{}), proto.V311, "after-garbage")
			c.ping()
		})
	}

	t.Run("mosquitto clients over tls", func(t *testing.T) {
		needMosquitto(t)
		mk := marker(t, plain)
		sub := mosqSub(t, secure, "--cafile", pki.CAFile, "-v", "-C", "2", "-W", "10", "-t", "tls/mosq", "-t", mk)
		sub.waitStdout(t, mk+" ready")
		if code, p := tlsMosq(t, "mosquitto_pub", secure, "--cafile", pki.CAFile, "-q", "1", "-t", "tls/mosq", "-m", "over openssl"); code != 0 {
			t.Fatalf("mosquitto_pub over TLS exited with %d\n%s", code, p.output())
		}
		wantOutput(t, "mosquitto_sub over TLS", sub.finish(t), lines(mk+" ready", "tls/mosq over openssl"))
		// A client that does not trust the broker's CA refuses to talk to it.
		if code, _ := tlsMosq(t, "mosquitto_pub", secure, "--cafile", pki.OtherCAFile, "-t", "tls/mosq", "-m", "x"); code == 0 {
			t.Fatal("mosquitto_pub trusting another CA connected")
		}
		stillWatching(t)
	})
}

// tlsConnectBytes is an encoded 3.1.1 CONNECT.
func tlsConnectBytes(t testing.TB) []byte {
	t.Helper()
	b, err := (&proto.Connect{Version: proto.V311, ClientID: "plain", CleanStart: true, KeepAlive: 60}).Append(nil, proto.V311)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tlsRefused dials with cfg and sends CONNECT, and returns the error that ended the
// attempt: with TLS 1.3 a refused client certificate shows on the first read, after
// the client's side of the handshake completed. It fails the test if a CONNACK came.
func tlsRefused(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	nc, err := tlsDial(addr, cfg)
	if err != nil {
		return err
	}
	c := tlsWrap(t, nc, proto.V311)
	if _, err := nc.Write(tlsConnectBytes(t)); err != nil {
		return err
	}
	p, err := c.recvWithin(nodetest.Timeout)
	if err == nil {
		t.Fatalf("the broker answered %s, want the TLS handshake refused", tlsDescribe(p))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no answer and no close after %v", nodetest.Timeout)
	}
	return err
}

func TestTLSMutual(t *testing.T) {
	pki := tlsNewPKI(t)
	plain, secure, _ := tlsStart(t, pki, "--tls-ca", pki.CAFile, "--tls-require-client-cert")
	valid := pki.Client(t, "valid", "alice")

	watch := tlsConnectTLS(t, secure, pki.ClientConfig(t, valid), proto.V5, "mtls-watch")
	watch.subscribe(1, 1, "mtls/watch")

	cases := []struct {
		name string
		cert tlsPair
		// alert is the TLS alert the client must get: the refusal's "code".
		alert string
	}{
		{"no client certificate", tlsPair{}, "certificate required"},
		{"expired certificate", pki.Client(t, "expired", "alice"), "expired certificate"},
		{"certificate from another CA", pki.Client(t, "untrusted", "alice"), "unknown certificate authority"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := tlsRefused(t, secure, pki.ClientConfig(t, c.cert))
			if !strings.Contains(err.Error(), c.alert) {
				t.Fatalf("refused with %q, want the TLS alert %q", err, c.alert)
			}
			// Nothing else is affected: the connected client still gets messages.
			pub := nodetest.Connect(t, plain, proto.V311, "mtls-pub")
			payload := fmt.Sprintf("after %d", i)
			pub.Publish(&proto.Publish{QoS: 1, PacketID: 1, Topic: "mtls/watch", Payload: []byte(payload)})
			pub.Disconnect()
			watch.expectPublish("mtls/watch", payload)
		})
	}

	t.Run("valid certificate", func(t *testing.T) {
		c := tlsConnectTLS(t, secure, pki.ClientConfig(t, valid), proto.V311, "mtls-valid")
		if code := c.publish(1, 1, "mtls/watch", "valid"); code != proto.Success {
			t.Fatalf("PUBACK %v", code)
		}
		watch.expectPublish("mtls/watch", "valid")
	})

	t.Run("mosquitto_pub with and without a certificate", func(t *testing.T) {
		needMosquitto(t)
		if code, p := tlsMosq(t, "mosquitto_pub", secure, "--cafile", pki.CAFile, "--cert", valid.Cert, "--key", valid.Key,
			"-q", "1", "-t", "mtls/watch", "-m", "openssl"); code != 0 {
			t.Fatalf("mosquitto_pub with a valid certificate exited with %d\n%s", code, p.output())
		}
		watch.expectPublish("mtls/watch", "openssl")
		if code, _ := tlsMosq(t, "mosquitto_pub", secure, "--cafile", pki.CAFile, "-q", "1", "-t", "mtls/watch", "-m", "nocert"); code == 0 {
			t.Fatal("mosquitto_pub without a client certificate exited with 0")
		}
		watch.ping() // nothing arrived in between
	})
}

// TestTLSIdentityAsUsername checks --use-identity-as-username: the certificate's
// Common Name is the username the ACL sees, whatever username CONNECT claims.
func TestTLSIdentityAsUsername(t *testing.T) {
	pki := tlsNewPKI(t)
	acl := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(acl, []byte("user alice\ntopic readwrite users/alice/#\nuser bob\ntopic readwrite users/bob/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, secure, _ := tlsStart(t, pki, "--tls-ca", pki.CAFile, "--tls-require-client-cert",
		"--use-identity-as-username", "--allow-anonymous=false", "--acl-file", acl)
	alice := pki.ClientConfig(t, pki.Client(t, "valid", "alice"))

	cases := []struct {
		name    string
		connect proto.Connect
	}{
		{"no username", proto.Connect{ClientID: "id-1", CleanStart: true}},
		{"claims to be bob", proto.Connect{ClientID: "id-2", CleanStart: true, UsernameSet: true, Username: "bob", PasswordSet: true, Password: []byte("x")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc, err := tlsDial(secure, alice)
			if err != nil {
				t.Fatal(err)
			}
			cl := tlsWrap(t, nc, proto.V5)
			if ack := cl.connect(&c.connect); ack.ReasonCode != proto.Success {
				t.Fatalf("CONNACK %v, want success from the certificate alone", ack.ReasonCode)
			}
			codes := cl.subscribe(1, 1, "users/alice/#", "users/bob/#")
			if len(codes) != 2 || codes[0] != proto.GrantedQoS1 || codes[1] != proto.NotAuthorized {
				t.Fatalf("SUBACK %v, want [granted QoS 1, not authorized]: the ACL must see alice", codes)
			}
		})
	}
	t.Run("plain listener has no certificate", func(t *testing.T) {
		c := nodetest.Dial(t, plain, proto.V5)
		ack := c.Connect(&proto.Connect{ClientID: "plain", CleanStart: true, UsernameSet: true, Username: "alice", PasswordSet: true, Password: []byte("x")})
		if ack.ReasonCode != proto.NotAuthorized {
			t.Fatalf("CONNACK %v, want not authorized", ack.ReasonCode)
		}
	})
}

// TestTLSReload checks that SIGHUP reloads the server certificate and the client CA
// file without dropping connections, and that a broken file keeps the old ones.
func TestTLSReload(t *testing.T) {
	pki := tlsNewPKI(t)
	// The broker reads copies, which the test overwrites in place.
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem")
	install := func(src, dst string) {
		t.Helper()
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		// Write a new file and rename it over the old one, as certificate tools do.
		tmp := dst + ".new"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			t.Fatal(err)
		}
	}
	install(pki.ServerCert, certFile)
	install(pki.ServerKey, keyFile)
	install(pki.CAFile, caFile)
	secure := freeAddr(t)
	plain, p := startBrokerProc(t, "--sys-interval", "0", "--mqtts-addr", secure, "--tls-cert", certFile, "--tls-key", keyFile,
		"--tls-ca", caFile, "--tls-require-client-cert")

	valid := pki.ClientConfig(t, pki.Client(t, "valid", "alice"))
	untrusted := pki.ClientConfig(t, pki.Client(t, "untrusted", "bob"))
	serverCN := func() string {
		t.Helper()
		nc, err := tlsDial(secure, valid)
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer nc.Close()
		return nc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	hup := func(logLine string) {
		t.Helper()
		before := strings.Count(p.stderr.String(), logLine)
		p.signal(t, syscall.SIGHUP)
		eventually(t, "skein to log "+logLine, func() bool { return strings.Count(p.stderr.String(), logLine) > before })
	}

	old := tlsConnectTLS(t, secure, valid, proto.V5, "before-reload")
	old.subscribe(1, 1, "reload/t")
	if cn := serverCN(); cn != "skein-server" {
		t.Fatalf("server CN %q before the reload", cn)
	}
	if err := tlsRefused(t, secure, untrusted); !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Fatalf("client of the other CA refused with %v before the reload", err)
	}

	// Renew the server certificate and trust the other CA as well.
	renewed := pki.Server(t, "renewed", "skein-renewed")
	install(renewed.Cert, certFile)
	install(renewed.Key, keyFile)
	bundle := filepath.Join(dir, "bundle.pem")
	var cas []byte
	for _, f := range []string{pki.CAFile, pki.OtherCAFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cas = append(cas, b...)
	}
	if err := os.WriteFile(bundle, cas, 0o600); err != nil {
		t.Fatal(err)
	}
	install(bundle, caFile)
	hup("reloaded TLS certificates")

	if cn := serverCN(); cn != "skein-renewed" {
		t.Fatalf("server CN %q after SIGHUP, want the renewed certificate", cn)
	}
	c := tlsConnectTLS(t, secure, untrusted, proto.V311, "other-ca")
	c.ping()
	// The connection made before the reload is still served.
	pub := nodetest.Connect(t, plain, proto.V311, "reload-pub")
	pub.Publish(&proto.Publish{QoS: 1, PacketID: 1, Topic: "reload/t", Payload: []byte("after reload")})
	old.expectPublish("reload/t", "after reload")

	// A broken key file: the reload fails and the renewed certificate stays.
	if err := os.WriteFile(keyFile, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("reload TLS certificates: keeping the previous ones")
	if cn := serverCN(); cn != "skein-renewed" {
		t.Fatalf("server CN %q after a failed reload, want the previous one kept", cn)
	}
	pub.Publish(&proto.Publish{QoS: 1, PacketID: 2, Topic: "reload/t", Payload: []byte("after failed reload")})
	old.expectPublish("reload/t", "after failed reload")
	pub.Disconnect()
}
