package listener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// TLSFiles names the PEM files of a TLS listener.
type TLSFiles struct {
	CertFile string // server certificate chain
	KeyFile  string // its private key
	// CAFile, when set, holds the CAs that client certificates must chain to.
	CAFile string
	// RequireClientCert refuses clients without a valid certificate (mutual TLS).
	RequireClientCert bool
}

// CertStore holds a listener's certificate and client CA pool and swaps them on
// Reload, so a renewed certificate takes effect without a restart and without
// dropping connections.
type CertStore struct {
	files TLSFiles
	cert  atomic.Pointer[tls.Certificate]
	pool  atomic.Pointer[x509.CertPool]
}

// NewCertStore loads the files; an error names the file at fault.
func NewCertStore(files TLSFiles) (*CertStore, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("tls: both a certificate and a key file are needed")
	}
	if files.RequireClientCert && files.CAFile == "" {
		return nil, errors.New("tls: requiring client certificates needs a CA file to check them against")
	}
	s := &CertStore{files: files}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On error the previous certificate stays in use.
func (s *CertStore) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", s.files.CertFile, s.files.KeyFile, err)
	}
	var pool *x509.CertPool
	if s.files.CAFile != "" {
		pem, err := os.ReadFile(s.files.CAFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: %s holds no PEM certificate", s.files.CAFile)
		}
	}
	s.cert.Store(&cert)
	s.pool.Store(pool)
	return nil
}

// ServerConfig returns a TLS configuration that always uses the current certificate
// and CA pool. TLS 1.2 is the minimum.
func (s *CertStore) ServerConfig() *tls.Config {
	auth := tls.NoClientCert
	switch {
	case s.files.RequireClientCert:
		auth = tls.RequireAndVerifyClientCert
	case s.files.CAFile != "":
		auth = tls.VerifyClientCertIfGiven
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*s.cert.Load()},
			ClientCAs:    s.pool.Load(),
			ClientAuth:   auth,
		}, nil
	}
	return base
}
