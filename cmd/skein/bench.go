package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skein-mq/skein/proto"
)

// benchOptions are the settings of one skein bench run.
type benchOptions struct {
	command string // conn, pub, sub or pubsub
	mode    string // pubsub: fan-in, fan-out or pairs

	host        string
	port        int
	clients     int
	interval    float64 // ms between publishes of one publisher; 0 = as fast as the window allows
	qos         int
	size        int
	topic       string
	limit       int64 // messages per publisher; 0 = unlimited
	duration    time.Duration
	drain       time.Duration
	inflight    int
	version     string
	keepAlive   int
	username    string
	password    string
	prefix      string
	ifaddrs     []string
	rate        float64 // connections opened per second; 0 = as fast as concurrency allows
	concurrency int

	tls      bool
	cafile   string
	insecure bool
	ws       bool
	wsPath   string

	json  bool
	quiet bool

	protoVersion proto.Version // from version, set by validate
}

// Pubsub modes.
const (
	modeFanIn  = "fan-in"  // c publishers -> 1 subscriber on a wildcard
	modeFanOut = "fan-out" // 1 publisher -> c subscribers
	modePairs  = "pairs"   // publisher i -> subscriber i, on topic i
)

func defaultBenchOptions(command string) *benchOptions {
	o := &benchOptions{
		command:     command,
		mode:        modePairs,
		host:        "localhost",
		clients:     10,
		size:        16,
		topic:       "bench/%i",
		duration:    10 * time.Second,
		drain:       2 * time.Second,
		inflight:    1000,
		version:     "3.1.1",
		keepAlive:   300,
		concurrency: 64,
		wsPath:      "/mqtt",
	}
	if command == "conn" {
		o.clients = 1000
		o.duration = 0
	}
	return o
}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test an MQTT broker: connections, publish, subscribe, end-to-end latency",
		Long: `skein bench drives an MQTT broker (Skein or any other) with many clients and
reports rates, end-to-end latency (p50/p90/p99/max) and lost, duplicated and
reordered messages. A progress line goes to stderr every second; the summary
goes to stdout (--json for machines).

  skein bench conn     open -c connections at --rate, hold them for --duration
  skein bench pub      -c publishers on -t (%i is the client number)
  skein bench sub      -c subscribers on -t
  skein bench pubsub   publishers and subscribers together, --mode fan-in
                       (c -> 1 on a wildcard), fan-out (1 -> c) or pairs (i -> i)

Flags follow emqtt-bench: -h is the host (use --help for help).`,
	}
	cmd.AddCommand(
		newBenchSubCmd("conn", "Open many connections at a target rate and hold them"),
		newBenchSubCmd("pub", "Publish from many clients"),
		newBenchSubCmd("sub", "Subscribe from many clients and measure what arrives"),
		newBenchSubCmd("pubsub", "Publish and subscribe together: fan-in, fan-out or pairs"),
	)
	return cmd
}

func newBenchSubCmd(name, short string) *cobra.Command {
	o := defaultBenchOptions(name)
	cmd := &cobra.Command{
		Use:   name + " [flags]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if cmd.Flags().Changed("mode") && args[0] != o.mode {
					return fmt.Errorf("mode given twice: %q and --mode %q", args[0], o.mode)
				}
				o.mode = args[0]
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			// The first interrupt ends the run and still prints the summary; the
			// signal handling is then dropped, so a second one kills the process.
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			context.AfterFunc(ctx, stop)
			_, err := runBench(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		},
	}
	if name == "pubsub" {
		cmd.Use = "pubsub [fan-in|fan-out|pairs] [flags]"
		cmd.Args = cobra.MaximumNArgs(1)
	}
	addBenchFlags(cmd.Flags(), o)
	return cmd
}

func addBenchFlags(f *pflag.FlagSet, o *benchOptions) {
	cmd := o.command
	// Defining help ourselves keeps cobra from taking -h, which is the host here.
	f.Bool("help", false, "help for bench "+cmd)
	f.StringVarP(&o.host, "host", "h", o.host, "broker host")
	f.IntVarP(&o.port, "port", "p", 0, "broker port (default 1883, 8883 with TLS, 8083 with --ws, 8084 with both)")
	f.IntVarP(&o.clients, "count", "c", o.clients, clientsHelp(cmd))
	f.StringVarP(&o.version, "protocol-version", "V", o.version, "MQTT version: 3.1, 3.1.1 or 5")
	f.IntVarP(&o.keepAlive, "keepalive", "k", o.keepAlive, "keepalive in seconds")
	f.StringVarP(&o.username, "username", "u", "", "username")
	f.StringVarP(&o.password, "password", "P", "", "password")
	f.StringVar(&o.prefix, "prefix", "", "client id prefix (default skein-bench-<pid>-)")
	f.StringSliceVar(&o.ifaddrs, "ifaddr", nil, "source addresses to connect from, in turn (default: 127.0.0.1, 127.0.0.2, … in blocks of 20000 when a loopback broker needs more than 20000 connections)")
	f.Float64VarP(&o.rate, "rate", "R", 0, "connections opened per second; 0 for as fast as --concurrency allows")
	f.IntVar(&o.concurrency, "concurrency", o.concurrency, "connection handshakes in progress at once")
	f.DurationVar(&o.duration, "duration", o.duration, durationHelp(cmd))
	f.BoolVarP(&o.tls, "tls", "S", false, "connect with TLS")
	f.StringVar(&o.cafile, "cafile", "", "PEM CA certificates to verify the broker with (implies --tls)")
	f.BoolVar(&o.insecure, "insecure", false, "do not verify the broker's certificate (implies --tls)")
	f.BoolVar(&o.ws, "ws", false, "connect over WebSocket (wss with --tls)")
	f.StringVar(&o.wsPath, "ws-path", o.wsPath, "WebSocket path")
	f.BoolVar(&o.json, "json", false, "print the summary as JSON")
	f.BoolVar(&o.quiet, "quiet", false, "no progress line on stderr")
	if cmd == "conn" {
		return
	}
	f.StringVarP(&o.topic, "topic", "t", o.topic, "topic; %i is replaced by the client number (1..c)")
	f.IntVarP(&o.qos, "qos", "q", 0, "QoS of publishes and subscriptions")
	if cmd == "sub" {
		return
	}
	f.Float64VarP(&o.interval, "interval", "i", 0, "milliseconds between publishes of each publisher; 0 for as fast as the in-flight window allows")
	f.IntVarP(&o.size, "size", "s", o.size, "payload size in bytes; a smaller one grows to the bench header (11-16 bytes in practice)")
	f.Int64VarP(&o.limit, "limit", "L", 0, "messages per publisher; 0 for no limit")
	f.IntVar(&o.inflight, "inflight", o.inflight, "closed loop: at most this many messages in flight per run (published, not yet received; without subscribers, not yet acknowledged at QoS 1/2)")
	if cmd == "pubsub" {
		f.StringVar(&o.mode, "mode", o.mode, "fan-in (c publishers -> 1 subscriber on a wildcard), fan-out (1 publisher -> c subscribers) or pairs (publisher i -> subscriber i)")
		f.DurationVar(&o.drain, "drain", o.drain, "after publishing: wait this long without a message before counting the missing ones as lost")
	}
}

func clientsHelp(cmd string) string {
	switch cmd {
	case "conn":
		return "connections"
	case "pubsub":
		return "clients: publishers (fan-in), subscribers (fan-out) or pairs"
	}
	return "clients"
}

func durationHelp(cmd string) string {
	if cmd == "conn" {
		return "how long to hold the connections once open; 0 to close at once"
	}
	return "how long to publish or subscribe; 0 for until the limit or an interrupt"
}

// validate checks the options and fills the derived ones.
func (o *benchOptions) validate() error {
	var err error
	if o.protoVersion, err = parseBenchVersion(o.version); err != nil {
		return err
	}
	if o.prefix == "" {
		o.prefix = fmt.Sprintf("skein-bench-%d-", os.Getpid())
	}
	if o.cafile != "" || o.insecure {
		o.tls = true
	}
	if o.port == 0 {
		o.port = 1883
		switch {
		case o.ws && o.tls:
			o.port = 8084
		case o.ws:
			o.port = 8083
		case o.tls:
			o.port = 8883
		}
	}
	if !strings.HasPrefix(o.wsPath, "/") {
		o.wsPath = "/" + o.wsPath
	}
	checks := []struct {
		bad  bool
		what string
	}{
		{o.port < 1 || o.port > 65535, "-p: port must be 1..65535"},
		{o.clients < 1, "-c: need at least one client"},
		{o.qos < 0 || o.qos > 2, "-q: QoS must be 0, 1 or 2"},
		{o.size < 0, "-s: size must not be negative"},
		{o.size > 256<<20, "-s: size must fit an MQTT packet"},
		{!(o.interval >= 0 && o.interval <= 1e9), "-i: interval must be a number of milliseconds >= 0"},
		{o.limit < 0, "-L: limit must not be negative"},
		{o.duration < 0, "--duration: must not be negative"},
		{o.drain < 0, "--drain: must not be negative"},
		{o.inflight < 1, "--inflight: must be at least 1"},
		{o.keepAlive < 0 || o.keepAlive > 65535, "-k: keepalive must be 0..65535"},
		{o.rate < 0, "--rate: must not be negative"},
		{o.concurrency < 1, "--concurrency: must be at least 1"},
	}
	for _, c := range checks {
		if c.bad {
			return errors.New(c.what)
		}
	}
	if o.command == "pubsub" {
		switch o.mode {
		case modeFanIn, modeFanOut:
		case modePairs:
			if o.clients > 1 && !strings.Contains(o.topic, "%i") {
				return errors.New("pairs: -t needs %i so that each pair has its own topic")
			}
		default:
			return fmt.Errorf("unknown pubsub mode %q: want fan-in, fan-out or pairs", o.mode)
		}
	}
	if o.command != "conn" {
		t := expandTopic(o.topic, 1)
		if o.command == "sub" {
			err = proto.ValidTopicFilter(t)
		} else {
			err = proto.ValidTopicName(t)
		}
		if err != nil {
			return fmt.Errorf("-t %q: %w", o.topic, err)
		}
		if o.command == "pubsub" && o.mode == modeFanIn {
			if err := proto.ValidTopicFilter(fanInFilter(o.topic)); err != nil {
				return fmt.Errorf("-t %q: %w", o.topic, err)
			}
		}
	}
	return nil
}

// fanInFilter is the fan-in subscriber's filter: the topic with %i as a wildcard
// level, or the topic itself when every publisher shares it.
func fanInFilter(topic string) string { return strings.ReplaceAll(topic, "%i", "+") }

func parseBenchVersion(s string) (proto.Version, error) {
	switch strings.ToLower(s) {
	case "3.1.1", "311", "4", "mqttv311":
		return proto.V311, nil
	case "5", "5.0", "mqttv5":
		return proto.V5, nil
	case "3.1", "31", "3", "mqttv31":
		return proto.V31, nil
	}
	return 0, fmt.Errorf("-V %q: want 3.1, 3.1.1 or 5", s)
}

// runBench runs one bench, prints its summary to stdout (and progress to stderr
// unless quiet) and returns the summary.
func runBench(ctx context.Context, o *benchOptions, stdout, stderr io.Writer) (*benchSummary, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.quiet {
		stderr = io.Discard
	}
	r, err := newBenchRun(ctx, o, stderr)
	if err != nil {
		return nil, err
	}
	var s *benchSummary
	switch o.command {
	case "conn":
		s, err = r.runConn(ctx)
	case "pub":
		s, err = r.runPub(ctx)
	case "sub":
		s, err = r.runSub(ctx)
	case "pubsub":
		s, err = r.runPubSub(ctx)
	default:
		err = fmt.Errorf("unknown bench %q", o.command)
	}
	if err != nil {
		return nil, err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(s)
	} else {
		err = s.writeText(stdout)
	}
	return s, err
}

// benchSummary is the result of a run, as --json prints it.
type benchSummary struct {
	Command     string  `json:"command"`
	Mode        string  `json:"mode,omitempty"`
	Transport   string  `json:"transport"`
	Version     string  `json:"protocol_version"`
	Publishers  int     `json:"publishers"`
	Subscribers int     `json:"subscribers"`
	QoS         int     `json:"qos"`
	PayloadSize int     `json:"payload_size"`
	Inflight    int     `json:"inflight,omitempty"`
	DurationSec float64 `json:"duration_s"`

	// Sent counts a QoS 0 message when written, a QoS 1/2 one when acknowledged.
	Sent     uint64  `json:"sent"`
	Unacked  uint64  `json:"unacked"`
	SendRate float64 `json:"send_rate"`
	// Expected is the deliveries due: every written message times its subscribers.
	Expected   uint64  `json:"expected"`
	Received   uint64  `json:"received"`
	RecvRate   float64 `json:"recv_rate"`
	Lost       uint64  `json:"lost"`
	Duplicated uint64  `json:"duplicated"`
	Reordered  uint64  `json:"reordered"`
	Foreign    uint64  `json:"foreign"` // messages without a bench header, or from a publisher not expected
	// WindowResets counts times the closed loop gave up on deliveries that never came.
	WindowResets uint64         `json:"window_resets"`
	Errors       uint64         `json:"errors"`
	FirstError   string         `json:"first_error,omitempty"`
	Latency      latencySummary `json:"latency"`

	// bench conn
	Connections int     `json:"connections,omitempty"`
	Connected   int     `json:"connected,omitempty"`
	ConnFailed  int     `json:"conn_failed,omitempty"`
	ConnRate    float64 `json:"conn_rate,omitempty"`
	ConnSec     float64 `json:"conn_s,omitempty"`
	Dropped     int     `json:"dropped,omitempty"` // connections the broker closed during the hold
}

// latencySummary is a latency distribution in milliseconds.
type latencySummary struct {
	// Kind is what was timed: end_to_end (publish to delivery), ack (publish to
	// PUBACK/PUBCOMP) or connect (dial to CONNACK).
	Kind  string  `json:"kind,omitempty"`
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func newLatencySummary(kind string, h *histSnapshot) latencySummary {
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return latencySummary{
		Kind:  kind,
		Count: h.total,
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		Max:   ms(h.max),
	}
}

// writeText prints the summary for people.
func (s *benchSummary) writeText(w io.Writer) error {
	var b strings.Builder
	name := s.Command
	if s.Mode != "" {
		name += " " + s.Mode
	}
	fmt.Fprintf(&b, "skein bench %s: MQTT %s over %s", name, s.Version, s.Transport)
	if s.Command == "conn" {
		fmt.Fprintf(&b, ", %d connections\n", s.Connections)
		fmt.Fprintf(&b, "connected   %d in %.2fs (%s conn/s), failed %d, dropped while held %d\n",
			s.Connected, s.ConnSec, fmtRate(s.ConnRate), s.ConnFailed, s.Dropped)
	} else {
		if s.Publishers > 0 {
			fmt.Fprintf(&b, ", %s", plural(s.Publishers, "publisher"))
		}
		if s.Subscribers > 0 {
			fmt.Fprintf(&b, ", %s", plural(s.Subscribers, "subscriber"))
		}
		fmt.Fprintf(&b, ", QoS %d", s.QoS)
		if s.Publishers > 0 {
			fmt.Fprintf(&b, ", %d-byte payload", s.PayloadSize)
		}
		fmt.Fprintf(&b, ", %.2fs\n", s.DurationSec)
		if s.Publishers > 0 {
			fmt.Fprintf(&b, "sent        %d msg (%s msg/s)", s.Sent, fmtRate(s.SendRate))
			if s.Unacked > 0 {
				fmt.Fprintf(&b, ", %d never acknowledged", s.Unacked)
			}
			b.WriteByte('\n')
		}
		if s.Subscribers > 0 {
			fmt.Fprintf(&b, "received    %d msg (%s msg/s)", s.Received, fmtRate(s.RecvRate))
			if s.Expected > 0 {
				fmt.Fprintf(&b, " of %d expected", s.Expected)
			}
			b.WriteByte('\n')
			fmt.Fprintf(&b, "lost %d, duplicated %d, reordered %d, foreign %d\n", s.Lost, s.Duplicated, s.Reordered, s.Foreign)
		}
		if s.WindowResets > 0 {
			fmt.Fprintf(&b, "window      reset %d times: deliveries stopped while messages were in flight\n", s.WindowResets)
		}
	}
	if s.Latency.Count > 0 {
		l := s.Latency
		fmt.Fprintf(&b, "latency     %s: p50 %s  p90 %s  p99 %s  max %s (%d samples)\n",
			strings.ReplaceAll(l.Kind, "_", "-"), fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.Max), l.Count)
	}
	fmt.Fprintf(&b, "errors      %d", s.Errors)
	if s.FirstError != "" {
		fmt.Fprintf(&b, " (first: %s)", s.FirstError)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func fmtRate(r float64) string { return strconv.FormatFloat(r, 'f', 0, 64) }

func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
	case ms >= 1:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(ms*1000, 'f', 0, 64) + "µs"
}
