package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/listener"
)

// listenerOptions are the transport settings of skein serve.
type listenerOptions struct {
	mqttAddr, mqttsAddr, wsAddr, wssAddr, wsPath, httpAddr string
	tls                                                    listener.TLSFiles
}

// servers is every socket skein serve listens on, started and stopped together.
type servers struct {
	log    *slog.Logger
	certs  *listener.CertStore // nil without TLS
	mqtt   []net.Listener      // MQTT over TCP and TLS, served by the broker
	http   []*http.Server      // WebSocket, WebSocket over TLS, health and API
	httpLn []net.Listener
	wg     sync.WaitGroup
	errs   chan error
	ready  bool
	mu     sync.Mutex // guards ready
}

// openListeners binds every configured address before anything is served, so a
// port in use fails the start with a message naming the setting.
func openListeners(o *listenerOptions, b *node.Broker, health http.Handler, log *slog.Logger) (*servers, error) {
	s := &servers{log: log, errs: make(chan error, 8)}
	var err error
	tlsOn := o.tls.CertFile != "" || o.tls.KeyFile != ""
	if tlsOn {
		if s.certs, err = listener.NewCertStore(o.tls); err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	} else if o.tls.CAFile != "" || o.tls.RequireClientCert {
		return nil, errors.New("--tls-ca/--tls-require-client-cert: need --tls-cert and --tls-key")
	}
	closeAll := func() {
		for _, ln := range s.mqtt {
			ln.Close()
		}
		for _, ln := range s.httpLn {
			ln.Close()
		}
	}
	listen := func(flag, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		return ln, nil
	}
	if o.mqttAddr != "" {
		ln, err := listen("mqtt-addr", o.mqttAddr)
		if err != nil {
			return nil, err
		}
		s.mqtt = append(s.mqtt, ln)
	}
	if tlsOn && o.mqttsAddr != "" {
		ln, err := listen("mqtts-addr", o.mqttsAddr)
		if err != nil {
			return nil, err
		}
		s.mqtt = append(s.mqtt, tls.NewListener(ln, s.certs.ServerConfig()))
	}
	path := o.wsPath
	if path == "" {
		path = "/mqtt"
	}
	wsMux := http.NewServeMux()
	wsMux.Handle(path, listener.WebSocketHandler(b, log))
	if o.wsAddr != "" {
		ln, err := listen("ws-addr", o.wsAddr)
		if err != nil {
			return nil, err
		}
		s.addHTTP(ln, wsMux)
	}
	if tlsOn && o.wssAddr != "" {
		ln, err := listen("wss-addr", o.wssAddr)
		if err != nil {
			return nil, err
		}
		s.addHTTP(tls.NewListener(ln, s.certs.ServerConfig()), wsMux)
	}
	if o.httpAddr != "" && health != nil {
		ln, err := listen("http-addr", o.httpAddr)
		if err != nil {
			return nil, err
		}
		s.addHTTP(ln, health)
	}
	if len(s.mqtt) == 0 && len(s.http) == 0 {
		return nil, errors.New("no listener: set --mqtt-addr, --ws-addr, or --tls-cert with --mqtts-addr or --wss-addr")
	}
	return s, nil
}

func (s *servers) addHTTP(ln net.Listener, h http.Handler) {
	s.httpLn = append(s.httpLn, ln)
	s.http = append(s.http, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
}

// serve starts serving on every listener.
func (s *servers) serve(b *node.Broker) {
	for _, ln := range s.mqtt {
		// The broker logs each MQTT listener itself when it starts serving it.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := b.Serve(ln); err != nil && !errors.Is(err, node.ErrClosed) {
				s.errs <- err
			}
		}()
	}
	for i, srv := range s.http {
		ln := s.httpLn[i]
		s.log.Info("listening", "proto", "http", "addr", ln.Addr().String())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.errs <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
		}()
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
}

// isReady reports whether every listener is serving.
func (s *servers) isReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// reloadCerts re-reads the TLS files (SIGHUP).
func (s *servers) reloadCerts() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}

// closeHTTP stops the HTTP servers; WebSocket connections already handed to the
// broker are the broker's to close.
func (s *servers) closeHTTP(ctx context.Context) {
	s.mu.Lock()
	s.ready = false
	s.mu.Unlock()
	for _, srv := range s.http {
		_ = srv.Shutdown(ctx) // hijacked WebSocket connections are not waited for
	}
}

// wait returns once every serve goroutine has ended.
func (s *servers) wait() { s.wg.Wait() }
