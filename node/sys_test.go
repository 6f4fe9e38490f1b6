package node_test

// $SYS/broker/... status topics with Mosquitto's names, published every SysInterval.

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

// sysMosquittoNames are the $SYS/broker/ topics Mosquitto 2.0 publishes (its
// mosquitto(8) page; clients/active and clients/inactive are its older names).
var sysMosquittoNames = func() map[string]bool {
	names := []string{
		"version", "uptime", "timestamp",
		"clients/connected", "clients/disconnected", "clients/expired", "clients/maximum", "clients/total",
		"clients/active", "clients/inactive",
		"heap/current", "heap/maximum",
		"messages/received", "messages/sent", "messages/stored",
		"publish/messages/received", "publish/messages/sent", "publish/messages/dropped",
		"publish/bytes/received", "publish/bytes/sent",
		"bytes/received", "bytes/sent",
		"retained messages/count", "store/messages/count", "store/messages/bytes",
		"subscriptions/count",
	}
	for _, l := range []string{"bytes/received", "bytes/sent", "connections", "messages/received", "messages/sent",
		"publish/dropped", "publish/received", "publish/sent", "sockets"} {
		for _, p := range []string{"1min", "5min", "15min"} {
			names = append(names, "load/"+l+"/"+p)
		}
	}
	m := map[string]bool{}
	for _, n := range names {
		m["$SYS/broker/"+n] = true
	}
	return m
}()

// sysRequired are the topics a Mosquitto user's dashboards read first.
var sysRequired = []string{
	"version", "uptime", "clients/connected", "clients/disconnected", "clients/total", "clients/maximum",
	"clients/expired", "messages/received", "messages/sent", "publish/messages/received",
	"publish/messages/sent", "publish/messages/dropped", "bytes/received", "bytes/sent",
	"subscriptions/count", "retained messages/count",
	"load/messages/received/1min", "load/messages/sent/5min", "load/connections/15min",
	"load/bytes/received/1min", "load/publish/received/1min", "load/sockets/1min",
}

type sysMsg struct {
	topic, payload string
	retain         bool
}

// sysCollect gathers what c receives for d.
func sysCollect(c *v5Paho, d time.Duration) []sysMsg {
	var got []sysMsg
	deadline := time.After(d)
	for {
		select {
		case p := <-c.msgs:
			got = append(got, sysMsg{p.Topic, string(p.Payload), p.Retain})
		case <-deadline:
			return got
		}
	}
}

// TestSysTopics: the broker publishes its status under Mosquitto's $SYS names every
// SysInterval, as retained messages; a wildcard-first filter does not match them
// [MQTT-4.7.2-1].
func TestSysTopics(t *testing.T) {
	t.Parallel()
	const interval = 200 * time.Millisecond
	cfg := node.DefaultConfig()
	cfg.SysInterval = interval
	cfg.Version = "1.2.3"
	b := nodetest.Start(t, cfg)

	hash := nodetest.Connect(t, b.Addr, proto.V311, "hash")
	hash.Subscribe(1, 0, "#")
	plus := v5PahoClean(t, b.Addr, "plus")
	plus.sub(paho.SubscribeOptions{Topic: "+/broker/#"}, paho.SubscribeOptions{Topic: "+/+/uptime"})
	sys := v5PahoClean(t, b.Addr, "sys")
	sys.sub(paho.SubscribeOptions{Topic: "$SYS/broker/#"})
	got := sysCollect(sys, 6*interval+interval/2)

	latest := map[string]string{}
	var uptimes []sysMsg
	for _, m := range got {
		if !sysMosquittoNames[m.topic] {
			t.Errorf("%s is not one of Mosquitto's $SYS topics", m.topic)
		}
		latest[m.topic] = m.payload
		if m.topic == "$SYS/broker/uptime" {
			uptimes = append(uptimes, m)
		}
	}
	for _, n := range sysRequired {
		if _, ok := latest["$SYS/broker/"+n]; !ok {
			t.Errorf("$SYS/broker/%s never published", n)
		}
	}
	if v := latest["$SYS/broker/version"]; v != "skein version 1.2.3" {
		t.Errorf("$SYS/broker/version %q, want %q", v, "skein version 1.2.3")
	}
	for topic, v := range latest {
		ok := true
		switch {
		case topic == "$SYS/broker/version":
		case topic == "$SYS/broker/uptime":
			ok = regexp.MustCompile(`^\d+ seconds$`).MatchString(v)
		case strings.HasPrefix(topic, "$SYS/broker/load/"):
			_, err := strconv.ParseFloat(v, 64)
			ok = err == nil
		default:
			_, err := strconv.ParseInt(v, 10, 64)
			ok = err == nil
		}
		if !ok {
			t.Errorf("%s = %q: not in Mosquitto's format", topic, v)
		}
	}
	// The values of the moment are retained: they come first, with the retain flag;
	// then uptime again at every interval.
	if len(got) == 0 || !got[0].retain {
		t.Fatalf("first $SYS message not retained: %+v", got)
	}
	// 6.5 intervals: the retained value, then one per tick.
	if n := len(uptimes); n < 4 || n > 9 {
		t.Fatalf("$SYS/broker/uptime published %d times in %v, want one per %v", n, 6*interval+interval/2, interval)
	}
	// Three clients now; a new one shows in clients/connected at a later tick.
	if c := latest["$SYS/broker/clients/connected"]; c != "3" {
		t.Errorf("clients/connected %q, want 3", c)
	}
	v5PahoClean(t, b.Addr, "fourth")
	deadline := time.Now().Add(nodetest.Timeout)
	for seen := false; !seen; {
		if time.Now().After(deadline) {
			t.Fatalf("clients/connected never became 4")
		}
		for _, m := range sysCollect(sys, interval) {
			seen = seen || m.topic == "$SYS/broker/clients/connected" && m.payload == "4"
		}
	}

	// Wildcard-first filters saw none of it.
	if p, err := hash.RecvWithin(10 * time.Millisecond); err == nil {
		t.Errorf("# matched %s", nodetest.String(p))
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read: %v", err)
	}
	plus.none(10 * time.Millisecond)

	// A 3.1.1 client reads $SYS as well.
	old := v5ClientConnect(t, b.Addr, proto.V311, "old")
	v5ClientSubscribe(t, old.c, "$SYS/broker/version", 0)
	if p := old.expect(t, "$SYS/broker/version", "skein version 1.2.3"); !p.Retain {
		t.Errorf("3.1.1: $SYS/broker/version not retained")
	}
}

// TestSysDisabled: SysInterval 0 publishes nothing under $SYS.
func TestSysDisabled(t *testing.T) {
	t.Parallel()
	cfg := node.DefaultConfig()
	cfg.SysInterval = 0
	b := nodetest.Start(t, cfg)
	c := v5PahoClean(t, b.Addr, "c")
	c.sub(paho.SubscribeOptions{Topic: "$SYS/#"})
	if got := sysCollect(c, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("%d $SYS messages with SysInterval 0, first %s", len(got), got[0].topic)
	}
}
