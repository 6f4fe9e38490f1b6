package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/proto/client"
)

const pubUsage = `skein pub is a simple mqtt client that will publish a message on a single topic and exit.
It accepts the options of mosquitto_pub.

Usage: skein pub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL}
                 {-f file | -l | -n | -m message | -s}
                 [-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay time] [-x session-expiry]
                 [-A bind_address] [--nodelay]
                 [-i id] [-I id_prefix]
                 [-d] [--quiet]
                 [-M max_inflight]
                 [-u username [-P password]]
                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
                 [{--cafile file | --capath dir} [--cert file] [--key file] [--insecure] [--tls-version version]]
                 [-V mqttv5|mqttv311|mqttv31]
                 [-D command identifier value]
       skein pub --help

Options are those of mosquitto_pub; see its manual page for their meaning.
`

// pubOptions are the settings of skein pub.
type pubOptions struct {
	clientFlags
	message     []byte
	mode        string // "m", "f", "l", "n" or "s"
	retain      bool
	maxInflight int
	repeat      int
	repeatDelay time.Duration
}

func parsePubArgs(args []string) (*pubOptions, error) {
	o := &pubOptions{clientFlags: defaultClientFlags("pub"), maxInflight: 20, repeat: 1}
	setMode := func(m string) error {
		if o.mode != "" {
			return usagef("Only one type of message can be sent at once.")
		}
		o.mode = m
		return nil
	}
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
		case "-m", "--message":
			var m string
			if m, err = a.next("-m"); err == nil {
				err = setMode("m")
				o.message = []byte(m)
			}
		case "-f", "--file":
			var path string
			if path, err = a.next("-f"); err == nil {
				if err = setMode("f"); err == nil {
					if o.message, err = os.ReadFile(path); err != nil {
						err = usagef("Error loading input file \"%s\".", path)
					}
				}
			}
		case "-l", "--stdin-line":
			err = setMode("l")
		case "-n", "--null-message":
			err = setMode("n")
		case "-s", "--stdin-file":
			err = setMode("s")
		case "-r", "--retain":
			o.retain = true
		case "-M":
			o.maxInflight, err = a.int(opt, 1, 65535)
		case "--repeat":
			o.repeat, err = a.int(opt, 1, 1<<30)
		case "--repeat-delay":
			var s string
			if s, err = a.next(opt); err == nil {
				f, perr := strconv.ParseFloat(s, 64)
				if perr != nil || f < 0 {
					err = usagef("Invalid repeat delay given: %s", s)
				}
				o.repeatDelay = time.Duration(f * float64(time.Second))
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
	if len(o.topics) == 0 || o.mode == "" {
		return nil, usagef("Both topic and message must be supplied.")
	}
	if len(o.topics) > 1 {
		return nil, usagef("Only one topic may be given.")
	}
	if err := proto.ValidTopicName(o.topics[0]); err != nil {
		return nil, usagef("Invalid publish topic '%s', does it contain '+' or '#'?", o.topics[0])
	}
	return o, nil
}

var errHelp = errors.New("help requested")

// runPub is `skein pub`: mosquitto_pub's behaviour, flags and messages.
func runPub(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parsePubArgs(args)
	if err != nil {
		return reportUsage(err, "pub", pubUsage, stdout, stderr)
	}
	errf := func(format string, a ...any) { o.errorf(stderr, format, a...) }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, code := o.connect(ctx, client.Options{MaxInflight: o.maxInflight}, stdout, stderr)
	if c == nil {
		return code
	}
	publish := func(payload []byte) bool {
		p := &proto.Publish{Topic: o.topics[0], QoS: o.qos, Retain: o.retain, Payload: payload, Props: o.props.publish}
		if err := c.Publish(ctx, p); err != nil {
			var ae *client.AckError
			if errors.As(err, &ae) {
				errf("Warning: Publish %d failed: %s.\n", p.PacketID, ae.Code)
				code = 1
				return true
			}
			errf("Error: %v\n", err)
			code = 1
			return false
		}
		return true
	}
	switch o.mode {
	case "l":
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64*1024), proto.MaxVarint)
		for sc.Scan() && publish(bytes.Clone(sc.Bytes())) {
		}
	default:
		payload := o.message
		if o.mode == "s" {
			if payload, err = io.ReadAll(stdin); err != nil {
				errf("Error: reading stdin: %v\n", err)
				c.Close()
				return 1
			}
		}
		for i := 0; i < o.repeat; i++ {
			if i > 0 && o.repeatDelay > 0 {
				select {
				case <-time.After(o.repeatDelay):
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil || !publish(payload) {
				break
			}
		}
	}
	var d *proto.Disconnect
	if o.version == proto.V5 && !o.props.disconnect.Empty() {
		d = &proto.Disconnect{Props: o.props.disconnect}
	}
	if err := c.Disconnect(d); err != nil && code == 0 {
		errf("Error: %v\n", err)
		code = 1
	}
	return code
}

// reportUsage prints a command-line error the way mosquitto's clients do and returns
// the exit code: --help prints the usage and exits 0.
func reportUsage(err error, tool, usage string, stdout, stderr io.Writer) int {
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "Error") {
		msg = "Error: " + msg
	}
	fmt.Fprintf(stderr, "%s\n\nUse 'skein %s --help' to see usage.\n", msg, tool)
	return 1
}
