package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/admin"
	"github.com/skein-mq/skein/node/auth"
	"github.com/skein-mq/skein/node/metrics"
	"github.com/skein-mq/skein/session"
)

// serveOptions are the settings of `skein serve`: every one is a flag and a key of
// the YAML config file.
type serveOptions struct {
	configFile      string
	listeners       listenerOptions
	cluster         clusterOptions
	dataDir         string
	logLevel        string
	logFormat       string
	maxPacketSize   int
	maxInflight     int
	maxQueued       int
	maxQueuedBytes  int
	dropPolicy      string
	queueQoS0       bool
	connectTimeout  time.Duration
	sharedStrategy  string
	sysInterval     time.Duration
	mosquittoConf   string
	allowAnonymous  bool
	passwordFile    string
	aclFile         string
	identityAsUser  bool
	maxConnections  int
	eventLoop       bool
	maxKeepAlive    int
	responseInfo    string
	shutdownTimeout time.Duration
	apiUser         string
	apiPassword     string
	apiKeyFile      string
}

func newServeCmd() *cobra.Command {
	o := &serveOptions{}
	def := node.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the broker",
		Long: `Run the broker. With no settings it is a complete single-node broker on :1883.
Every flag can also be set in a YAML file given with --config, under the flag's name;
flags on the command line win over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.configFile != "" {
				if err := applyConfigFile(o.configFile, cmd.Flags()); err != nil {
					return err
				}
			}
			if o.mosquittoConf != "" {
				warnings, err := applyMosquittoConf(o.mosquittoConf, cmd.Flags())
				for _, w := range warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), "skein: warning:", w)
				}
				if err != nil {
					return err
				}
			}
			return runServe(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configFile, "config", "", "YAML config file whose keys are these flags' names")
	o.cluster.flags(f)
	f.StringVarP(&o.mosquittoConf, "mosquitto-config", "c", "", "read a Mosquitto configuration file (mosquitto.conf) for the options it shares with skein")
	f.BoolVar(&o.allowAnonymous, "allow-anonymous", true, "let clients connect without a username (Mosquitto's allow_anonymous)")
	f.StringVar(&o.passwordFile, "password-file", "", "Mosquitto password file (mosquitto_passwd / skein passwd); reloaded on SIGHUP")
	f.StringVar(&o.aclFile, "acl-file", "", "Mosquitto ACL file; reloaded on SIGHUP")
	f.BoolVar(&o.identityAsUser, "use-identity-as-username", false, "use the TLS client certificate's common name as the username (needs --tls-require-client-cert)")
	f.IntVar(&o.maxConnections, "max-connections", 0, "open connections allowed; 0 for no limit")
	f.BoolVar(&o.eventLoop, "event-loop", def.EventLoop, "serve --mqtt-addr connections from an epoll event loop (Linux): an idle connection has no goroutine and no buffer; false gives each connection a goroutine, as TLS and WebSocket ones always have")
	f.IntVar(&o.maxKeepAlive, "max-keepalive", 0, "longest keepalive allowed in seconds (5.0 clients are told, older clients asking more are refused); 0 for no limit")
	f.StringVar(&o.responseInfo, "response-information", "", "Response Information sent to 5.0 clients that request it")
	l := &o.listeners
	f.StringVar(&l.mqttAddr, "mqtt-addr", ":1883", "MQTT over TCP listen address; empty disables")
	f.StringVar(&l.mqttsAddr, "mqtts-addr", ":8883", "MQTT over TLS listen address, used when --tls-cert is set; empty disables")
	f.StringVar(&l.wsAddr, "ws-addr", ":8083", "MQTT over WebSocket listen address; empty disables")
	f.StringVar(&l.wssAddr, "wss-addr", ":8084", "MQTT over WebSocket with TLS, used when --tls-cert is set; empty disables")
	f.StringVar(&l.wsPath, "ws-path", "/mqtt", "HTTP path of the WebSocket listeners")
	f.StringVar(&l.httpAddr, "http-addr", ":18083", "HTTP address for /healthz, /readyz, /metrics and the admin API (/api/v1); empty disables")
	f.StringVar(&o.apiUser, "api-user", "", "admin API basic auth user (with --api-password); without it or --api-key-file the API is open: keep --http-addr private")
	f.StringVar(&o.apiPassword, "api-password", "", "admin API basic auth password")
	f.StringVar(&o.apiKeyFile, "api-key-file", "", "file of admin API keys, one per line, for \"Authorization: Bearer KEY\"")
	f.StringVar(&l.tls.CertFile, "tls-cert", "", "PEM certificate chain for the TLS listeners (reloaded on SIGHUP)")
	f.StringVar(&l.tls.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&l.tls.CAFile, "tls-ca", "", "PEM CA certificates that client certificates must chain to")
	f.BoolVar(&l.tls.RequireClientCert, "tls-require-client-cert", false, "refuse TLS clients without a valid certificate (mutual TLS)")
	f.StringVar(&o.dataDir, "data-dir", "./data", "directory for persistent data")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.IntVar(&o.maxPacketSize, "max-packet-size", def.MaxPacketSize, "largest MQTT packet accepted from a client, in bytes")
	f.IntVar(&o.maxInflight, "max-inflight", def.Session.MaxInflight, "QoS 1/2 messages in flight to one client")
	f.IntVar(&o.maxQueued, "max-queued-messages", def.Session.MaxQueued, "QoS 1/2 messages queued per session beyond the inflight window")
	f.IntVar(&o.maxQueuedBytes, "max-queued-bytes", 0, "topic and payload bytes queued per session; 0 for no limit beyond --max-queued-messages")
	f.StringVar(&o.dropPolicy, "queue-drop-policy", "newest", "which message a full session queue drops: newest (the one arriving, as Mosquitto) or oldest")
	f.BoolVar(&o.queueQoS0, "queue-qos0-messages", false, "queue QoS 0 messages for offline persistent sessions, as Mosquitto's queue_qos0_messages")
	f.DurationVar(&o.connectTimeout, "connect-timeout", def.ConnectTimeout, "close a connection that sends no CONNECT within this time")
	f.StringVar(&o.sharedStrategy, "shared-subscription-strategy", def.SharedStrategy, "shared subscription dispatch: round_robin, random, hash_clientid or hash_topic")
	f.DurationVar(&o.sysInterval, "sys-interval", def.SysInterval, "how often to publish $SYS/broker/... topics; 0 disables them")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take before connections are closed hard")
	return cmd
}

// nodeConfig turns the options into the broker's configuration, naming the setting
// at fault when one is invalid.
func (o *serveOptions) nodeConfig(log *slog.Logger) (node.Config, error) {
	cfg := node.DefaultConfig()
	cfg.Logger = log
	cfg.MaxPacketSize = o.maxPacketSize
	cfg.Session.MaxInflight = o.maxInflight
	cfg.Session.MaxQueued = o.maxQueued
	cfg.Session.MaxQueuedBytes = o.maxQueuedBytes
	cfg.Session.QueueQoS0 = o.queueQoS0
	switch o.dropPolicy {
	case "newest":
	case "oldest":
		cfg.Session.DropOldest = true
	default:
		return cfg, fmt.Errorf("--queue-drop-policy: %q is not newest or oldest", o.dropPolicy)
	}
	cfg.ConnectTimeout = o.connectTimeout
	cfg.SharedStrategy = o.sharedStrategy
	cfg.SysInterval = o.sysInterval
	cfg.Version = Version()
	cfg.MaxConnections = o.maxConnections
	cfg.EventLoop = o.eventLoop
	cfg.MaxKeepAlive = uint16(o.maxKeepAlive)
	cfg.ResponseInformation = o.responseInfo
	checks := []struct {
		flag string
		err  error
	}{
		{"max-packet-size", rangeErr(o.maxPacketSize, 16, 268435460)},
		{"max-inflight", rangeErr(o.maxInflight, 1, 65535)},
		{"max-queued-messages", rangeErr(o.maxQueued, 0, 1<<30)},
		{"max-queued-bytes", rangeErr(o.maxQueuedBytes, 0, 1<<40)},
		{"connect-timeout", positive(o.connectTimeout)},
		{"shutdown-timeout", positive(o.shutdownTimeout)},
		{"sys-interval", notNegative(o.sysInterval)},
		{"max-connections", rangeErr(o.maxConnections, 0, 1<<30)},
		{"max-keepalive", rangeErr(o.maxKeepAlive, 0, 65535)},
	}
	for _, c := range checks {
		if c.err != nil {
			return cfg, fmt.Errorf("--%s: %w", c.flag, c.err)
		}
	}
	if o.dataDir == "" {
		return cfg, errors.New("--data-dir: must not be empty")
	}
	if err := cfg.Validate(); err != nil {
		if strings.Contains(err.Error(), "strategy") {
			return cfg, fmt.Errorf("--shared-subscription-strategy: %w", err)
		}
		return cfg, err
	}
	return cfg, nil
}

func rangeErr(v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%d is out of range %d..%d", v, lo, hi)
	}
	return nil
}

func positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%v must be positive", d)
	}
	return nil
}

func notNegative(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%v must not be negative", d)
	}
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

func runServe(ctx context.Context, o *serveOptions) error {
	// Signals are caught before anything listens: one arriving during start-up must
	// stop (or reload) the broker gracefully, not kill it with the default action.
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	cfg, err := o.nodeConfig(log)
	if err != nil {
		return err
	}
	files := raiseFileLimit()
	if files > 0 && o.maxConnections > 0 && uint64(o.maxConnections) > files {
		log.Warn("--max-connections is above the open file limit: connections past the limit are refused by the system",
			"max_connections", o.maxConnections, "max_open_files", files)
	}
	store, err := session.OpenStore(filepath.Join(o.dataDir, "skein.db"), session.StoreOptions{Logger: log})
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	defer store.Close()
	cfg.Store = store
	checker, err := o.authChecker()
	if err != nil {
		return err
	}
	if checker != nil {
		cfg.Auth = checker
	}
	cfg.LoginLimiter = auth.NewLoginLimiter(auth.LoginLimiterConfig{})
	var cl *cluster.Cluster
	if o.cluster.enabled() {
		ccfg, err := o.cluster.config(o.dataDir, store, log)
		if err != nil {
			return err
		}
		if cl, err = cluster.New(ccfg); err != nil {
			return fmt.Errorf("--peer-addr: %w", err)
		}
		cfg.Cluster = cl
	}
	b, err := node.New(cfg)
	if err != nil {
		return err
	}
	if cl != nil {
		if err := cl.Start(b); err != nil {
			return fmt.Errorf("--gossip-addr: %w", err)
		}
		defer func() {
			if err := cl.Close(); err != nil {
				log.Warn("leave the cluster", "err", err)
			}
		}()
	}
	var srv *servers
	ready := func() bool {
		// Ready once every listener serves and, in a cluster, a leader is known.
		return srv != nil && srv.isReady() && (cl == nil || cl.Status().Leader != "")
	}
	var health http.Handler
	if o.listeners.httpAddr != "" {
		if health, err = healthHandler(ready, b, cl, o, log); err != nil {
			_ = b.Shutdown(context.Background()) // nothing is connected yet
			return err
		}
	}
	srv, err = openListeners(&o.listeners, b, health, log)
	if err != nil {
		_ = b.Shutdown(context.Background()) // nothing is connected yet
		return err
	}
	srv.serve(b)
	log.Info("skein started", "version", Version(), "data_dir", o.dataDir, "event_loop", cfg.EventLoop, "max_open_files", files)

	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			break wait
		case <-hup:
			// SIGHUP reloads certificates, password and ACL files, as Mosquitto
			// does, without dropping a connection; a broken file keeps the old one.
			if err := srv.reloadCerts(); err != nil {
				log.Error("reload TLS certificates: keeping the previous ones", "err", err)
			} else {
				log.Info("reloaded TLS certificates")
			}
			if checker != nil {
				if err := checker.Reload(); err != nil {
					log.Error("reload password and ACL files: keeping the previous ones", "err", err)
				} else {
					log.Info("reloaded password and ACL files")
				}
			}
		case runErr = <-srv.errs:
			log.Error("listener failed", "err", runErr)
			break wait
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	srv.closeHTTP(sctx)
	if err := b.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	srv.wait()
	batches, writes := store.CommitStats()
	log.Info("stopped", "store_commits", batches, "store_writes", writes)
	return runErr
}

// authChecker builds the authentication and ACL checks, or nil when every client
// may connect and use every topic (the embedded default).
func (o *serveOptions) authChecker() (*auth.Checker, error) {
	if o.allowAnonymous && o.passwordFile == "" && o.aclFile == "" && !o.identityAsUser {
		return nil, nil
	}
	if o.identityAsUser && !o.listeners.tls.RequireClientCert {
		return nil, errors.New("--use-identity-as-username: needs --tls-require-client-cert")
	}
	c, err := auth.NewChecker(auth.Options{
		AllowAnonymous:        o.allowAnonymous,
		PasswordFile:          o.passwordFile,
		ACLFile:               o.aclFile,
		UseIdentityAsUsername: o.identityAsUser,
	})
	if err != nil {
		return nil, fmt.Errorf("--password-file/--acl-file: %w", err)
	}
	return c, nil
}

// healthHandler serves /healthz (the process answers), /readyz (every listener is
// serving), /metrics (Prometheus) and the admin API under /api/v1. Only the API asks
// for credentials: probes and scrapers need none.
func healthHandler(ready func() bool, b *node.Broker, cl *cluster.Cluster, o *serveOptions, log *slog.Logger) (http.Handler, error) {
	apiCfg := admin.Config{Broker: b, User: o.apiUser, Password: o.apiPassword, Logger: log, Cluster: clusterHandler(cl)}
	// The cluster's node name, or the hostname (without one the API says "local").
	apiCfg.NodeName, _ = os.Hostname()
	if cl != nil {
		apiCfg.NodeName = cl.Name()
	}
	if o.apiKeyFile != "" {
		data, err := os.ReadFile(o.apiKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--api-key-file: %w", err)
		}
		if apiCfg.APIKeys, err = admin.ParseKeys(data); err != nil {
			return nil, fmt.Errorf("--api-key-file: %w", err)
		}
	}
	api, err := admin.New(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("--api-user/--api-password: %w", err)
	}
	mux := http.NewServeMux()
	var source metrics.ClusterSource
	if cl != nil {
		source = clusterSource{cl}
	}
	mux.Handle("/metrics", metrics.Handler(b, source))

	mux.Handle(admin.Prefix+"/", api)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n") // a failed write means the prober left
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n") // as above
	})
	return mux, nil
}
