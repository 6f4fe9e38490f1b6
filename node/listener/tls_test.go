package listener_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skein-mq/skein/node/listener"
)

// tlsTimeout bounds every handshake and read of these tests.
const tlsTimeout = 10 * time.Second

// tlsPKI makes certificates for a test: a CA, another CA, and certificates they sign.
type tlsPKI struct {
	t      *testing.T
	dir    string
	ca     *tlsIssuer
	other  *tlsIssuer
	serial atomic.Int64
}

type tlsIssuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate in PEM
}

// tlsPair is a certificate and key in PEM files.
type tlsPair struct{ Cert, Key string }

func tlsNewPKI(t *testing.T) *tlsPKI {
	t.Helper()
	p := &tlsPKI{t: t, dir: t.TempDir()}
	p.ca = p.newCA("test CA")
	p.other = p.newCA("other CA")
	return p
}

func (p *tlsPKI) newCA(cn string) *tlsIssuer {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		p.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	iss := &tlsIssuer{cert: cert, key: key, file: filepath.Join(p.dir, strings.ReplaceAll(cn, " ", "-")+".pem")}
	p.write(iss.file, "CERTIFICATE", der)
	return iss
}

func (p *tlsPKI) write(path, typ string, der []byte) {
	p.t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// issue writes a certificate for cn signed by by; a server one is for 127.0.0.1.
func (p *tlsPKI) issue(name, cn string, server bool, by *tlsIssuer, notAfter time.Time) tlsPair {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, by.cert, &key.PublicKey, by.key)
	if err != nil {
		p.t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	pair := tlsPair{Cert: filepath.Join(p.dir, name+".pem"), Key: filepath.Join(p.dir, name+".key")}
	p.write(pair.Cert, "CERTIFICATE", der)
	p.write(pair.Key, "PRIVATE KEY", keyDER)
	return pair
}

func (p *tlsPKI) server(name, cn string) tlsPair {
	return p.issue(name, cn, true, p.ca, time.Now().Add(24*time.Hour))
}

// client issues "valid", "expired" or "untrusted" (other CA) client certificates.
func (p *tlsPKI) client(kind, cn string) tlsPair {
	switch kind {
	case "expired":
		return p.issue(kind+"-"+cn, cn, false, p.ca, time.Now().Add(-24*time.Hour))
	case "untrusted":
		return p.issue(kind+"-"+cn, cn, false, p.other, time.Now().Add(24*time.Hour))
	}
	return p.issue(kind+"-"+cn, cn, false, p.ca, time.Now().Add(24*time.Hour))
}

// clientConfig trusts the CA and always presents pair when it is not zero (Go would
// hold back a certificate whose issuer the server does not list).
func (p *tlsPKI) clientConfig(pair tlsPair) *tls.Config {
	p.t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if pair.Cert != "" {
		cert, err := tls.LoadX509KeyPair(pair.Cert, pair.Key)
		if err != nil {
			p.t.Fatal(err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg
}

// tlsServer accepts TLS connections with cfg and, per connection, completes the
// handshake, writes the client certificate's CN (or "-") and a newline, then echoes.
type tlsServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func tlsServe(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(tlsTimeout))
				tc := nc.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				cn := "-"
				if chains := tc.ConnectionState().VerifiedChains; len(chains) > 0 {
					cn = chains[0][0].Subject.CommonName
				}
				if _, err := io.WriteString(tc, cn+"\n"); err != nil {
					return
				}
				_, _ = io.Copy(tc, tc) // echo until the client closes
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// tlsHello dials the server and returns the certificate CN the server saw and the
// server certificate's CN, or the error that ended the attempt.
func tlsHello(t *testing.T, addr string, cfg *tls.Config) (clientCN, serverCN string, err error) {
	t.Helper()
	d := &net.Dialer{Timeout: tlsTimeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(tlsTimeout))
	buf := make([]byte, 0, 64)
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			return "", "", err
		}
		if one[0] == '\n' {
			break
		}
		buf = append(buf, one[0])
	}
	return string(buf), c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestTLSNewCertStoreErrors(t *testing.T) {
	p := tlsNewPKI(t)
	server := p.server("server", "srv")
	other := p.server("other", "other")
	notPEM := filepath.Join(p.dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(p.dir, "missing.pem")
	cases := []struct {
		name  string
		files listener.TLSFiles
		want  []string // the error must contain each
	}{
		{"no certificate", listener.TLSFiles{KeyFile: server.Key}, []string{"both a certificate and a key"}},
		{"no key", listener.TLSFiles{CertFile: server.Cert}, []string{"both a certificate and a key"}},
		{"client certificates without a CA", listener.TLSFiles{CertFile: server.Cert, KeyFile: server.Key, RequireClientCert: true}, []string{"CA file"}},
		{"missing certificate file", listener.TLSFiles{CertFile: missing, KeyFile: server.Key}, []string{missing}},
		{"key of another certificate", listener.TLSFiles{CertFile: server.Cert, KeyFile: other.Key}, []string{server.Cert, other.Key}},
		{"certificate file not PEM", listener.TLSFiles{CertFile: notPEM, KeyFile: server.Key}, []string{notPEM}},
		{"missing CA file", listener.TLSFiles{CertFile: server.Cert, KeyFile: server.Key, CAFile: missing}, []string{missing}},
		{"CA file not PEM", listener.TLSFiles{CertFile: server.Cert, KeyFile: server.Key, CAFile: notPEM}, []string{notPEM, "no PEM certificate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := listener.NewCertStore(c.files)
			if err == nil {
				t.Fatalf("NewCertStore(%+v) = %v, nil; want an error", c.files, s)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestTLSServerConfigClientAuth(t *testing.T) {
	p := tlsNewPKI(t)
	server := p.server("server", "srv")
	valid, expired, untrusted := p.client("valid", "alice"), p.client("expired", "bob"), p.client("untrusted", "eve")
	modes := []struct {
		name  string
		files listener.TLSFiles
		// want is the CN the server sees per client certificate ("-": none), or
		// "refused".
		want map[string]string
	}{
		{"server certificate only", listener.TLSFiles{CertFile: server.Cert, KeyFile: server.Key},
			map[string]string{"none": "-", "valid": "-"}},
		{"CA: verify if given", listener.TLSFiles{CertFile: server.Cert, KeyFile: server.Key, CAFile: p.ca.file},
			map[string]string{"none": "-", "valid": "alice", "expired": "refused", "untrusted": "refused"}},
		{"CA: required", listener.TLSFiles{CertFile: server.Cert, KeyFile: server.Key, CAFile: p.ca.file, RequireClientCert: true},
			map[string]string{"none": "refused", "valid": "alice", "expired": "refused", "untrusted": "refused"}},
	}
	certs := map[string]tlsPair{"none": {}, "valid": valid, "expired": expired, "untrusted": untrusted}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			store, err := listener.NewCertStore(m.files)
			if err != nil {
				t.Fatal(err)
			}
			srv := tlsServe(t, store.ServerConfig())
			for kind, want := range m.want {
				t.Run(kind, func(t *testing.T) {
					got, serverCN, err := tlsHello(t, srv.ln.Addr().String(), p.clientConfig(certs[kind]))
					switch {
					case want == "refused" && err == nil:
						t.Fatalf("accepted, server saw client CN %q; want the handshake refused", got)
					case want == "refused":
					case err != nil:
						t.Fatalf("refused: %v", err)
					case got != want || serverCN != "srv":
						t.Fatalf("server saw client CN %q, client saw server CN %q; want %q and srv", got, serverCN, want)
					}
				})
			}
		})
	}

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		store, err := listener.NewCertStore(listener.TLSFiles{CertFile: server.Cert, KeyFile: server.Key})
		if err != nil {
			t.Fatal(err)
		}
		srv := tlsServe(t, store.ServerConfig())
		cfg := p.clientConfig(tlsPair{})
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		if _, _, err := tlsHello(t, srv.ln.Addr().String(), cfg); err == nil {
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
}

// tlsCopy copies src over dst.
func tlsCopy(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSReload(t *testing.T) {
	p := tlsNewPKI(t)
	first, second := p.server("first", "first"), p.server("second", "second")
	dir := t.TempDir()
	files := listener.TLSFiles{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	tlsCopy(t, first.Cert, files.CertFile)
	tlsCopy(t, first.Key, files.KeyFile)
	tlsCopy(t, p.ca.file, files.CAFile)
	store, err := listener.NewCertStore(files)
	if err != nil {
		t.Fatal(err)
	}
	srv := tlsServe(t, store.ServerConfig())
	addr := srv.ln.Addr().String()
	untrusted := p.clientConfig(p.client("untrusted", "eve"))

	// A connection made before the reload keeps working after it.
	d := &net.Dialer{Timeout: tlsTimeout}
	early, err := tls.DialWithDialer(d, "tcp", addr, p.clientConfig(tlsPair{}))
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	_ = early.SetDeadline(time.Now().Add(tlsTimeout))
	line := make([]byte, 2)
	if _, err := io.ReadFull(early, line); err != nil || string(line) != "-\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if _, serverCN, err := tlsHello(t, addr, p.clientConfig(tlsPair{})); err != nil || serverCN != "first" {
		t.Fatalf("before reload: server CN %q, %v", serverCN, err)
	}
	if _, _, err := tlsHello(t, addr, untrusted); err == nil {
		t.Fatal("a client of the other CA was accepted before the reload")
	}

	tlsCopy(t, second.Cert, files.CertFile)
	tlsCopy(t, second.Key, files.KeyFile)
	var cas []byte
	for _, f := range []string{p.ca.file, p.other.file} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cas = append(cas, b...)
	}
	if err := os.WriteFile(files.CAFile, cas, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, serverCN, err := tlsHello(t, addr, p.clientConfig(tlsPair{})); err != nil || serverCN != "second" {
		t.Fatalf("after reload: server CN %q, %v; want second", serverCN, err)
	}
	if clientCN, _, err := tlsHello(t, addr, untrusted); err != nil || clientCN != "eve" {
		t.Fatalf("client of the newly trusted CA: CN %q, %v", clientCN, err)
	}
	if _, err := early.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 4)
	if _, err := io.ReadFull(early, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("connection from before the reload: %q, %v", echo, err)
	}

	// Broken files: Reload fails, naming the file, and the loaded ones stay.
	broken := []struct {
		name string
		file string
	}{{"key", files.KeyFile}, {"certificate", files.CertFile}, {"CA", files.CAFile}}
	for _, b := range broken {
		t.Run("broken "+b.name, func(t *testing.T) {
			good, err := os.ReadFile(b.file)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := os.WriteFile(b.file, good, 0o600); err != nil {
					t.Fatal(err)
				}
			}()
			if err := os.WriteFile(b.file, []byte("garbage\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			err = store.Reload()
			if err == nil || !strings.Contains(err.Error(), b.file) {
				t.Fatalf("Reload with a broken %s: %v, want an error naming %s", b.name, err, b.file)
			}
			if _, serverCN, err := tlsHello(t, addr, p.clientConfig(tlsPair{})); err != nil || serverCN != "second" {
				t.Fatalf("after the failed reload: server CN %q, %v; want the previous certificate", serverCN, err)
			}
			if clientCN, _, err := tlsHello(t, addr, untrusted); err != nil || clientCN != "eve" {
				t.Fatalf("after the failed reload the previous CA pool is gone: %q, %v", clientCN, err)
			}
		})
	}
}

// TestTLSReloadDuringHandshakes reloads while clients connect: every handshake sees
// one whole certificate, and the race detector sees no unsynchronized access.
func TestTLSReloadDuringHandshakes(t *testing.T) {
	p := tlsNewPKI(t)
	a, b := p.server("a", "a"), p.server("b", "b")
	dir := t.TempDir()
	files := listener.TLSFiles{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	tlsCopy(t, a.Cert, files.CertFile)
	tlsCopy(t, a.Key, files.KeyFile)
	store, err := listener.NewCertStore(files)
	if err != nil {
		t.Fatal(err)
	}
	srv := tlsServe(t, store.ServerConfig())
	addr := srv.ln.Addr().String()

	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pems := [][2][]byte{{read(a.Cert), read(a.Key)}, {read(b.Cert), read(b.Key)}}
	stop := make(chan struct{})
	var reloads sync.WaitGroup
	var writeErr atomic.Value
	reloads.Add(1)
	go func() {
		defer reloads.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Write both files, then reload. The files are rewritten in place, so a
			// reload may read a half-written pair and fail: it must keep the old one.
			pair := pems[i%2]
			if err := os.WriteFile(files.CertFile, pair[0], 0o600); err != nil {
				writeErr.Store(err)
			}
			if err := os.WriteFile(files.KeyFile, pair[1], 0o600); err != nil {
				writeErr.Store(err)
			}
			_ = store.Reload() // an error keeps the previous pair; the handshakes check that
		}
	}()
	var clients sync.WaitGroup
	var failures atomic.Int64
	seen := [2]atomic.Int64{}
	for range 4 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for range 25 {
				_, cn, err := tlsHello(t, addr, p.clientConfig(tlsPair{}))
				switch {
				case err != nil:
					failures.Add(1)
				case cn == "a":
					seen[0].Add(1)
				case cn == "b":
					seen[1].Add(1)
				default:
					failures.Add(1)
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	reloads.Wait()
	if err := writeErr.Load(); err != nil {
		t.Fatal(err)
	}
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of 100 handshakes failed during reloads", n)
	}
	if seen[0].Load()+seen[1].Load() != 100 {
		t.Fatalf("saw a %d times and b %d times, want 100 in all", seen[0].Load(), seen[1].Load())
	}
}
