package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skein-mq/skein/node"
)

// serveOptions are the settings of `skein serve`: every one is a flag and a key of
// the YAML config file.
type serveOptions struct {
	configFile      string
	mqttAddr        string
	dataDir         string
	logLevel        string
	logFormat       string
	maxPacketSize   int
	maxInflight     int
	maxQueued       int
	connectTimeout  time.Duration
	sharedStrategy  string
	sysInterval     time.Duration
	shutdownTimeout time.Duration
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
			return runServe(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configFile, "config", "", "YAML config file whose keys are these flags' names")
	f.StringVar(&o.mqttAddr, "mqtt-addr", ":1883", "MQTT over TCP listen address; empty disables")
	f.StringVar(&o.dataDir, "data-dir", "./data", "directory for persistent data")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.IntVar(&o.maxPacketSize, "max-packet-size", def.MaxPacketSize, "largest MQTT packet accepted from a client, in bytes")
	f.IntVar(&o.maxInflight, "max-inflight", def.Session.MaxInflight, "QoS 1/2 messages in flight to one client")
	f.IntVar(&o.maxQueued, "max-queued-messages", def.Session.MaxQueued, "QoS 1/2 messages queued per session beyond the inflight window")
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
	cfg.ConnectTimeout = o.connectTimeout
	cfg.SharedStrategy = o.sharedStrategy
	cfg.SysInterval = o.sysInterval
	cfg.Version = Version()
	checks := []struct {
		flag string
		err  error
	}{
		{"max-packet-size", rangeErr(o.maxPacketSize, 16, 268435460)},
		{"max-inflight", rangeErr(o.maxInflight, 1, 65535)},
		{"max-queued-messages", rangeErr(o.maxQueued, 0, 1<<30)},
		{"connect-timeout", positive(o.connectTimeout)},
		{"shutdown-timeout", positive(o.shutdownTimeout)},
		{"sys-interval", notNegative(o.sysInterval)},
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
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	cfg, err := o.nodeConfig(log)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	b, err := node.New(cfg)
	if err != nil {
		return err
	}
	var listeners []net.Listener
	if o.mqttAddr != "" {
		ln, err := net.Listen("tcp", o.mqttAddr)
		if err != nil {
			return fmt.Errorf("--mqtt-addr: %w", err)
		}
		listeners = append(listeners, ln)
	}
	if len(listeners) == 0 {
		return errors.New("no listener: set --mqtt-addr")
	}
	serveErr := make(chan error, len(listeners))
	for _, ln := range listeners {
		go func() { serveErr <- b.Serve(ln) }()
	}
	log.Info("skein started", "version", Version(), "mqtt_addr", o.mqttAddr, "data_dir", o.dataDir)

	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-serveErr:
		log.Error("listener failed", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	log.Info("stopped")
	return runErr
}
