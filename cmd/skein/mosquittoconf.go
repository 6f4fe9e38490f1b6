package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// mosquittoListener collects one `listener` block of a mosquitto.conf: per-listener
// options apply to the listener above them.
type mosquittoListener struct {
	line      int
	addr      string
	websocket bool
	tls       bool
}

// applyMosquittoConf reads a Mosquitto configuration file and sets the flags its
// options map to, unless the command line set them. It returns a warning for each
// option it does not apply, so a migrating user sees what skein ignores; an option
// with a bad value is an error naming the file, line and option.
func applyMosquittoConf(path string, flags *pflag.FlagSet) (warnings []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-c: %w", err)
	}
	defer f.Close()

	set := func(line int, option, flag, value string) error {
		fl := flags.Lookup(flag)
		if fl.Changed {
			return nil // the command line wins
		}
		if err := flags.Set(flag, value); err != nil {
			return fmt.Errorf("%s line %d: %s: %w", path, line, option, err)
		}
		return nil
	}
	var listeners []*mosquittoListener
	current := func() *mosquittoListener {
		if len(listeners) == 0 {
			// Per-listener options before any listener apply to the default one.
			listeners = append(listeners, &mosquittoListener{addr: ":1883"})
		}
		return listeners[len(listeners)-1]
	}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		option, args := fields[0], fields[1:]
		value := strings.TrimSpace(strings.TrimPrefix(text, option))
		need := func(n int) error {
			if len(args) < n {
				return fmt.Errorf("%s line %d: %s: missing value", path, line, option)
			}
			return nil
		}
		var err error
		switch option {
		case "listener":
			if err = need(1); err == nil {
				port := args[0]
				if _, perr := strconv.Atoi(port); perr != nil {
					return warnings, fmt.Errorf("%s line %d: listener: %q is not a port", path, line, port)
				}
				host := ""
				if len(args) > 1 {
					host = args[1]
				}
				listeners = append(listeners, &mosquittoListener{line: line, addr: net.JoinHostPort(host, port)})
			}
		case "port":
			if err = need(1); err == nil {
				current().addr = ":" + args[0]
			}
		case "protocol":
			switch value {
			case "websockets":
				current().websocket = true
			case "mqtt":
			default:
				warnings = append(warnings, fmt.Sprintf("%s line %d: protocol %s is not supported; the listener stays MQTT", path, line, value))
			}
		case "certfile":
			current().tls = true
			err = set(line, option, "tls-cert", value)
		case "keyfile":
			err = set(line, option, "tls-key", value)
		case "cafile":
			err = set(line, option, "tls-ca", value)
		case "require_certificate":
			err = set(line, option, "tls-require-client-cert", value)
		case "use_identity_as_username":
			err = set(line, option, "use-identity-as-username", value)
		case "allow_anonymous":
			err = set(line, option, "allow-anonymous", value)
		case "password_file":
			err = set(line, option, "password-file", value)
		case "acl_file":
			err = set(line, option, "acl-file", value)
		case "max_inflight_messages":
			err = set(line, option, "max-inflight", value)
		case "max_queued_messages":
			err = set(line, option, "max-queued-messages", value)
		case "max_queued_bytes":
			err = set(line, option, "max-queued-bytes", value)
		case "queue_qos0_messages":
			err = set(line, option, "queue-qos0-messages", value)
		case "message_size_limit":
			// Mosquitto limits the payload; skein limits the whole packet. Allow the
			// payload plus a generous header so every message Mosquitto took fits.
			n, perr := strconv.Atoi(value)
			switch {
			case perr != nil || n < 0:
				err = fmt.Errorf("%s line %d: message_size_limit: %q is not a size", path, line, value)
			case n == 0:
				err = set(line, option, "max-packet-size", "268435460")
			default:
				err = set(line, option, "max-packet-size", strconv.Itoa(min(n+65536+16, 268435460)))
			}
		case "max_keepalive":
			err = set(line, option, "max-keepalive", value)
		case "max_connections":
			if value == "-1" {
				value = "0"
			}
			err = set(line, option, "max-connections", value)
		case "persistence_location":
			err = set(line, option, "data-dir", value)
		case "sys_interval":
			err = set(line, option, "sys-interval", value+"s")
		case "persistence":
			if value != "true" {
				warnings = append(warnings, fmt.Sprintf("%s line %d: persistence %s: skein always keeps persistent sessions and retained messages on disk", path, line, value))
			}
		default:
			warnings = append(warnings, fmt.Sprintf("%s line %d: option %s is not supported by skein and is ignored", path, line, option))
		}
		if err != nil {
			return warnings, err
		}
	}
	if err := sc.Err(); err != nil {
		return warnings, fmt.Errorf("-c: %w", err)
	}
	// Each listener becomes the skein listener of its kind; a second one of the
	// same kind cannot be expressed and is reported.
	taken := map[string]bool{}
	for _, l := range listeners {
		flag := "mqtt-addr"
		switch {
		case l.websocket && l.tls:
			flag = "wss-addr"
		case l.websocket:
			flag = "ws-addr"
		case l.tls:
			flag = "mqtts-addr"
		}
		if taken[flag] {
			warnings = append(warnings, fmt.Sprintf("%s line %d: a second %s listener is not supported and is ignored", path, l.line, flag))
			continue
		}
		taken[flag] = true
		if err := set(l.line, "listener", flag, l.addr); err != nil {
			return warnings, err
		}
	}
	// A configuration with listeners serves only those, as Mosquitto does.
	if len(listeners) > 0 {
		for _, flag := range []string{"mqtt-addr", "ws-addr", "mqtts-addr", "wss-addr"} {
			if !taken[flag] {
				if err := set(0, "listener", flag, ""); err != nil {
					return warnings, err
				}
			}
		}
	}
	return warnings, nil
}
