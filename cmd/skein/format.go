package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/skein-mq/skein/proto"
)

// messagePrinter prints received messages as mosquitto_sub does: the payload alone,
// "topic payload" with -v, or a -F format string.
type messagePrinter struct {
	w       io.Writer
	errw    io.Writer // for mosquitto_sub's per-message errors (%J of a non-JSON payload)
	format  string
	verbose bool
	noEOL   bool
	pretty  bool
	now     func() time.Time // nil: time.Now
}

func (m *messagePrinter) print(p *proto.Publish) {
	var b []byte
	switch {
	case m.format != "":
		b = m.formatted(nil, p)
	case m.verbose:
		b = append(b, p.Topic...)
		b = append(b, ' ')
		if len(p.Payload) == 0 {
			b = append(b, "(null)"...)
		} else {
			b = append(b, p.Payload...)
		}
	default:
		b = append(b, p.Payload...)
	}
	if !m.noEOL {
		b = append(b, '\n')
	}
	_, _ = m.w.Write(b) // a closed stdout ends the program anyway
}

func (m *messagePrinter) time() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

// formatted expands the -F format: %-sequences from the message, @-sequences from the
// clock as strftime would, and \-escapes.
func (m *messagePrinter) formatted(dst []byte, p *proto.Publish) []byte {
	f := m.format
	now := m.time()
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '%' && i+1 < len(f):
			var spec fieldSpec
			i = spec.parse(f, i+1)
			if i >= len(f) {
				return dst
			}
			dst = m.field(dst, f[i], spec, p, now)
		case c == '@' && i+1 < len(f):
			i++
			dst = strftime(dst, f[i], now)
		case c == '\\' && i+1 < len(f):
			i++
			switch f[i] {
			case '\\':
				dst = append(dst, '\\')
			case '0':
				dst = append(dst, 0)
			case 'a':
				dst = append(dst, '\a')
			case 'e':
				dst = append(dst, 0x1b)
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'v':
				dst = append(dst, '\v')
			default:
				dst = append(dst, '\\', f[i])
			}
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// formatCodes are the %-conversions mosquitto_sub knows.
const formatCodes = "%tpqrmlxXIUjJACDEFPRS"

// checkFormat refuses an unknown %-conversion, as mosquitto_sub does at startup.
func checkFormat(f string) error {
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '\\', '@':
			i++
		case '%':
			var spec fieldSpec
			i = spec.parse(f, i+1)
			if i >= len(f) {
				return usagef("Error: Incomplete format specifier.")
			}
			if !strings.ContainsRune(formatCodes, rune(f[i])) {
				return usagef("Error: Invalid format specifier '%c'.", f[i])
			}
		}
	}
	return nil
}

// fieldSpec is the optional flags, width and precision of a %-sequence.
type fieldSpec struct {
	left, zero bool
	width      int
	prec       int // -1: none
}

// parse reads flags, width and precision starting at f[i] and returns the index of
// the conversion character.
func (s *fieldSpec) parse(f string, i int) int {
	s.prec = -1
	for ; i < len(f) && (f[i] == '-' || f[i] == '0'); i++ {
		if f[i] == '-' {
			s.left = true
		} else {
			s.zero = true
		}
	}
	for ; i < len(f) && f[i] >= '0' && f[i] <= '9'; i++ {
		s.width = s.width*10 + int(f[i]-'0')
	}
	if i < len(f) && f[i] == '.' {
		s.prec = 0
		for i++; i < len(f) && f[i] >= '0' && f[i] <= '9'; i++ {
			s.prec = s.prec*10 + int(f[i]-'0')
		}
	}
	return i
}

// pad applies width (and, for text, precision) to v.
func (s fieldSpec) pad(dst []byte, v string, numeric bool) []byte {
	if !numeric && s.prec >= 0 && len(v) > s.prec {
		v = v[:s.prec]
	}
	n := s.width - len(v)
	if n <= 0 {
		return append(dst, v...)
	}
	if s.left {
		dst = append(dst, v...)
		return append(dst, bytes.Repeat([]byte{' '}, n)...)
	}
	fill := byte(' ')
	if s.zero && numeric {
		fill = '0'
	}
	dst = append(dst, bytes.Repeat([]byte{fill}, n)...)
	return append(dst, v...)
}

func (m *messagePrinter) field(dst []byte, conv byte, s fieldSpec, p *proto.Publish, now time.Time) []byte {
	pr := &p.Props
	num := func(v uint64) []byte { return s.pad(dst, strconv.FormatUint(v, 10), true) }
	optNum := func(id proto.PropID, v uint64) []byte {
		if !pr.Has(id) {
			return dst
		}
		return num(v)
	}
	switch conv {
	case '%':
		return append(dst, '%')
	case 't':
		return s.pad(dst, p.Topic, false)
	case 'p':
		// mosquitto_sub 2.0 applies a width but no precision to the payload.
		s.prec = -1
		return s.pad(dst, string(p.Payload), false)
	case 'q':
		return append(dst, '0'+p.QoS)
	case 'r':
		return append(dst, '0'+byte(b2i(p.Retain)))
	case 'm':
		return num(uint64(p.PacketID))
	case 'l':
		return num(uint64(len(p.Payload)))
	case 'x':
		return s.pad(dst, hex.EncodeToString(p.Payload), true)
	case 'X':
		return s.pad(dst, strings.ToUpper(hex.EncodeToString(p.Payload)), true)
	case 'I':
		return s.pad(dst, now.Format("2006-01-02T15:04:05-0700"), false)
	case 'U':
		return append(dst, fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond())...)
	case 'j', 'J':
		return m.json(dst, p, now, conv == 'J')
	case 'A':
		return optNum(proto.PropTopicAlias, uint64(pr.TopicAlias))
	case 'C':
		return s.pad(dst, pr.ContentType, false)
	case 'D':
		return append(dst, pr.CorrelationData...)
	case 'E':
		return optNum(proto.PropMessageExpiry, uint64(pr.MessageExpiry))
	case 'F':
		return optNum(proto.PropPayloadFormat, uint64(pr.PayloadFormat))
	case 'P':
		for i, u := range pr.User {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, u.Key...)
			dst = append(dst, ':')
			dst = append(dst, u.Value...)
		}
		return dst
	case 'R':
		return s.pad(dst, pr.ResponseTopic, false)
	case 'S':
		for i, id := range pr.SubscriptionIDs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = s.pad(dst, strconv.Itoa(id), true)
		}
		return dst
	}
	return append(dst, '%', conv)
}

// json renders %j (and %J, with properties and the payload as JSON when it is JSON)
// in the key order mosquitto_sub uses.
func (m *messagePrinter) json(dst []byte, p *proto.Publish, now time.Time, withProps bool) []byte {
	type kv struct {
		k string
		v any
	}
	fields := []kv{
		{"tst", now.UTC().Format("2006-01-02T15:04:05.000000Z+0000")},
		{"topic", p.Topic},
		{"qos", p.QoS},
		{"retain", b2i(p.Retain)},
		{"payloadlen", len(p.Payload)},
	}
	if withProps {
		pr := &p.Props
		var props []kv
		if pr.Has(proto.PropPayloadFormat) {
			props = append(props, kv{"payload-format-indicator", pr.PayloadFormat})
		}
		if pr.Has(proto.PropMessageExpiry) {
			props = append(props, kv{"message-expiry-interval", pr.MessageExpiry})
		}
		if pr.Has(proto.PropContentType) {
			props = append(props, kv{"content-type", pr.ContentType})
		}
		if pr.Has(proto.PropResponseTopic) {
			props = append(props, kv{"response-topic", pr.ResponseTopic})
		}
		if pr.Has(proto.PropCorrelationData) {
			props = append(props, kv{"correlation-data", string(pr.CorrelationData)})
		}
		for _, id := range pr.SubscriptionIDs {
			props = append(props, kv{"subscription-identifier", id})
		}
		if pr.Has(proto.PropTopicAlias) {
			props = append(props, kv{"topic-alias", pr.TopicAlias})
		}
		if len(pr.User) > 0 {
			var users []kv
			for _, u := range pr.User {
				users = append(users, kv{u.Key, u.Value})
			}
			props = append(props, kv{"user-properties", users})
		}
		if len(props) > 0 {
			fields = append(fields, kv{"properties", props})
		}
	}
	var payload any = string(p.Payload)
	if withProps {
		if !json.Valid(p.Payload) {
			// mosquitto_sub prints nothing for it but the error.
			if m.errw != nil {
				fmt.Fprintf(m.errw, "Error: Message payload is not valid JSON on topic %s.\n", p.Topic)
			}
			return dst
		}
		payload = json.RawMessage(p.Payload)
	}
	fields = append(fields, kv{"payload", payload})

	var write func(dst []byte, v any, depth int) []byte
	write = func(dst []byte, v any, depth int) []byte {
		switch v := v.(type) {
		case []kv:
			dst = append(dst, '{')
			for i, f := range v {
				if i > 0 {
					dst = append(dst, ',')
				}
				if m.pretty {
					dst = append(dst, '\n')
					dst = append(dst, bytes.Repeat([]byte{'\t'}, depth+1)...)
				}
				key, _ := json.Marshal(f.k)
				dst = append(dst, key...)
				dst = append(dst, ':')
				if m.pretty {
					dst = append(dst, '\t')
				}
				dst = write(dst, f.v, depth+1)
			}
			if m.pretty {
				dst = append(dst, '\n')
				dst = append(dst, bytes.Repeat([]byte{'\t'}, depth)...)
			}
			return append(dst, '}')
		case json.RawMessage:
			if m.pretty {
				var buf bytes.Buffer
				if json.Indent(&buf, v, strings.Repeat("\t", depth), "\t") == nil {
					return append(dst, buf.Bytes()...)
				}
			}
			var buf bytes.Buffer
			if json.Compact(&buf, v) == nil {
				return append(dst, buf.Bytes()...)
			}
			return append(dst, v...)
		default:
			b, _ := json.Marshal(v)
			return append(dst, b...)
		}
	}
	return write(dst, fields, 0)
}

// strftime expands one @-sequence; @N is mosquitto's nanoseconds extension.
func strftime(dst []byte, c byte, t time.Time) []byte {
	layout := ""
	switch c {
	case '@':
		return append(dst, '@')
	case 'N':
		return append(dst, fmt.Sprintf("%09d", t.Nanosecond())...)
	case 's':
		return strconv.AppendInt(dst, t.Unix(), 10)
	case 'Y':
		layout = "2006"
	case 'y':
		layout = "06"
	case 'm':
		layout = "01"
	case 'd':
		layout = "02"
	case 'e':
		layout = "_2"
	case 'H':
		layout = "15"
	case 'I':
		layout = "03"
	case 'M':
		layout = "04"
	case 'S':
		layout = "05"
	case 'p':
		layout = "PM"
	case 'a':
		layout = "Mon"
	case 'A':
		layout = "Monday"
	case 'b', 'h':
		layout = "Jan"
	case 'B':
		layout = "January"
	case 'z':
		layout = "-0700"
	case 'Z':
		layout = "MST"
	case 'F':
		layout = "2006-01-02"
	case 'T':
		layout = "15:04:05"
	case 'R':
		layout = "15:04"
	case 'D':
		layout = "01/02/06"
	case 'j':
		return append(dst, fmt.Sprintf("%03d", t.YearDay())...)
	case 'u':
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return strconv.AppendInt(dst, int64(wd), 10)
	case 'w':
		return strconv.AppendInt(dst, int64(t.Weekday()), 10)
	case 'n':
		return append(dst, '\n')
	case 't':
		return append(dst, '\t')
	default:
		return append(dst, '@', c)
	}
	return t.AppendFormat(dst, layout)
}
