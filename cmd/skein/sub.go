package main

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/proto/client"
	"github.com/skein-mq/skein/route"
)

const subUsage = `skein sub is a simple mqtt client that will subscribe to a set of topics and print all messages it receives.
It accepts the options of mosquitto_sub.

Usage: skein sub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL [-t topic]}
                 [-c] [-k keepalive] [-q qos] [-x session-expiry-interval]
                 [-C msg_count] [-E] [-R] [--retained-only] [--remove-retained] [-T filter_out] [-U topic ...]
                 [-F format]
                 [-W timeout_secs]
                 [-A bind_address] [--nodelay]
                 [-i id] [-I id_prefix]
                 [-d] [-N] [--quiet] [-v] [--pretty] [--random-filter chance]
                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
                 [{--cafile file | --capath dir} [--cert file] [--key file] [--insecure] [--tls-version version]]
                 [-V mqttv5|mqttv311|mqttv31]
                 [-D command identifier value]
       skein sub --help

Options are those of mosquitto_sub; see its manual page for their meaning.
`

// exitTimedOut is mosquitto_sub's exit code when -W runs out.
const exitTimedOut = 27

// subOptions are the settings of skein sub.
type subOptions struct {
	clientFlags
	count          int
	exitAfterSub   bool
	noStale        bool
	retainedOnly   bool
	removeRetained bool
	filterOut      []string
	unsubscribe    []string
	format         string
	noEOL          bool
	verbose        bool
	timeout        time.Duration
	pretty         bool
	randomFilter   float64
}

func parseSubArgs(args []string) (*subOptions, error) {
	o := &subOptions{clientFlags: defaultClientFlags("sub"), randomFilter: 100}
	a := &argReader{args: args}
	for ; a.i < len(args); a.i++ {
		if ok, err := o.parseCommon(a); ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		var err error
		switch opt := args[a.i]; opt {
		case "--help":
			return nil, errHelp
		case "-C":
			o.count, err = a.int(opt, 1, 1<<31-1)
		case "-E":
			o.exitAfterSub = true
		case "-R":
			o.noStale = true
		case "--retained-only":
			o.retainedOnly = true
		case "--remove-retained":
			o.removeRetained = true
		case "-T", "--filter-out":
			var t string
			if t, err = a.next(opt); err == nil {
				if proto.ValidTopicFilter(t) != nil {
					err = usagef("Invalid filter topic '%s', are all '+' and '#' wildcards correct?", t)
				}
				o.filterOut = append(o.filterOut, t)
			}
		case "-U", "--unsubscribe":
			var t string
			if t, err = a.next(opt); err == nil {
				if proto.ValidTopicFilter(t) != nil {
					err = usagef("Invalid unsubscribe topic '%s', are all '+' and '#' wildcards correct?", t)
				}
				o.unsubscribe = append(o.unsubscribe, t)
			}
		case "-F":
			if o.format, err = a.next(opt); err == nil {
				err = checkFormat(o.format)
			}
		case "-N":
			o.noEOL = true
		case "-v", "--verbose":
			o.verbose = true
		case "-W":
			var n int
			n, err = a.int(opt, 1, 1<<31-1)
			o.timeout = time.Duration(n) * time.Second
		case "--pretty":
			o.pretty = true
		case "--random-filter":
			var s string
			if s, err = a.next(opt); err == nil {
				f, perr := strconv.ParseFloat(s, 64)
				if perr != nil || f < 0 || f > 100 {
					err = usagef("Invalid random filter given: %s", s)
				}
				o.randomFilter = f
			}
		default:
			err = usagef("Unknown option '%s'.", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := o.finish(); err != nil {
		return nil, err
	}
	if len(o.topics) == 0 {
		return nil, usagef("You must specify a topic to subscribe to.")
	}
	for _, t := range o.topics {
		if proto.ValidTopicFilter(t) != nil {
			return nil, usagef("Invalid subscription topic '%s', are all '+' and '#' wildcards correct?", t)
		}
	}
	return o, nil
}

// runSub is `skein sub`: mosquitto_sub's behaviour, flags, output and exit codes.
func runSub(args []string, stdout, stderr io.Writer) int {
	o, err := parseSubArgs(args)
	if err != nil {
		return reportUsage(err, "sub", subUsage, stdout, stderr)
	}
	errf := func(format string, a ...any) { o.errorf(stderr, format, a...) }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	out := &messagePrinter{w: stdout, errw: stderr, format: o.format, verbose: o.verbose, noEOL: o.noEOL, pretty: o.pretty}
	var (
		mu       sync.Mutex // guards received and toClear
		received int
	)
	finished := make(chan struct{})
	var finishOnce sync.Once
	finish := func() { finishOnce.Do(func() { close(finished) }) }
	var filterOut []*route.Trie[int, struct{}]
	for _, t := range o.filterOut {
		tr := route.NewTrie[int, struct{}]()
		tr.Add(t, 0, struct{}{})
		filterOut = append(filterOut, tr)
	}
	var toClear []string

	onMessage := func(p *proto.Publish) {
		mu.Lock()
		defer mu.Unlock()
		if o.count > 0 && received >= o.count {
			return
		}
		for _, tr := range filterOut {
			matched := false
			tr.Match(p.Topic, func(string, int, struct{}) bool { matched = true; return false })
			if matched {
				return
			}
		}
		if o.retainedOnly && !p.Retain {
			finish()
			return
		}
		if o.removeRetained && p.Retain {
			toClear = append(toClear, p.Topic)
		}
		if o.noStale && p.Retain {
			return
		}
		if o.randomFilter < 100 && rand.Float64()*100 >= o.randomFilter {
			return
		}
		out.print(p)
		received++
		if o.count > 0 && received >= o.count {
			finish()
		}
	}
	c, code := o.connect(ctx, client.Options{OnMessage: onMessage}, stdout, stderr)
	if c == nil {
		return code
	}

	sub := &proto.Subscribe{Props: o.props.subscribe}
	for _, t := range o.topics {
		sub.Subscriptions = append(sub.Subscriptions, proto.Subscription{Filter: t, QoS: o.qos})
	}
	ack, err := c.Subscribe(ctx, sub)
	if err != nil {
		errf("Error: %v\n", err)
		c.Close()
		return 1
	}
	denied := 0
	for _, rc := range ack.ReasonCodes {
		if rc.IsError() {
			denied++
		}
	}
	if denied == len(ack.ReasonCodes) {
		// mosquitto_sub says so and exits 0; scripts rely on the exit code.
		errf("All subscription requests were denied.\n")
		_ = c.Disconnect(nil)
		return 0
	}
	if len(o.unsubscribe) > 0 {
		if _, err := c.Unsubscribe(ctx, &proto.Unsubscribe{Filters: o.unsubscribe, Props: o.props.unsubscribe}); err != nil {
			errf("Error: %v\n", err)
		}
	}
	if o.exitAfterSub {
		_ = c.Disconnect(nil)
		return 0
	}

	var timeout <-chan time.Time
	if o.timeout > 0 {
		timeout = time.After(o.timeout)
	}
	code = 0
	select {
	case <-finished:
	case <-ctx.Done():
	case <-timeout:
		errf("Timed out\n")
		code = exitTimedOut
	case <-c.Done():
		if d := c.ServerDisconnect(); d != nil {
			errf("%s\n", d.ReasonCode)
		} else {
			errf("Error: %v\n", c.Err())
		}
		return 1
	}
	mu.Lock()
	clear := toClear
	mu.Unlock()
	for _, t := range clear {
		_ = c.Publish(context.Background(), &proto.Publish{Topic: t, Retain: true})
	}
	var d *proto.Disconnect
	if o.version == proto.V5 && !o.props.disconnect.Empty() {
		d = &proto.Disconnect{Props: o.props.disconnect}
	}
	if err := c.Disconnect(d); err != nil && !errors.Is(err, client.ErrClosed) && code == 0 {
		errf("Error: %v\n", err)
	}
	return code
}

func joinCodes(codes []proto.ReasonCode) string {
	s := ""
	for i, c := range codes {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(int(c))
	}
	return s
}
