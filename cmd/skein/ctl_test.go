package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

const (
	ctlTestUser = "ops"
	ctlTestPass = "pa55"
	ctlTestKey  = "k-123"
)

// ctlEnv is a broker behind the handler skein serve mounts on --http-addr, with
// basic auth and an API key file.
type ctlEnv struct {
	b   *nodetest.Broker
	url string
}

func ctlStart(t *testing.T) *ctlEnv {
	t.Helper()
	t.Setenv("SKEIN_API_KEY", "")
	t.Setenv("SKEIN_API_PASSWORD", "")
	cfg := node.DefaultConfig()
	cfg.SysInterval = 0
	b := nodetest.Start(t, cfg)
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte("# ops team\n"+ctlTestKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &serveOptions{apiUser: ctlTestUser, apiPassword: ctlTestPass, apiKeyFile: keyFile}
	h, err := healthHandler(func() bool { return true }, b.Broker, nil, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("healthHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &ctlEnv{b: b, url: srv.URL}
}

// run runs `skein ctl --url URL --api-key KEY args...` and returns its output.
func (e *ctlEnv) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.runAs(t, []string{"--api-key", ctlTestKey}, args...)
	if err != nil {
		t.Fatalf("skein ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// runAs runs `skein ctl --url URL creds... args...`.
func (e *ctlEnv) runAs(t *testing.T, creds []string, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(append([]string{"ctl", "--url", e.url}, creds...), args...))
	err := root.Execute()
	return out.String(), err
}

// ctlRow returns the fields of the first output line whose first field is key.
func ctlRow(t *testing.T, out, key string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == key {
			return f
		}
	}
	t.Fatalf("no row %q in:\n%s", key, out)
	return nil
}

func ctlHasRow(out, key string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == key {
			return true
		}
	}
	return false
}

func TestCtlNodesAndStats(t *testing.T) {
	e := ctlStart(t)
	sub := nodetest.Connect(t, e.b.Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "s/#")
	pub := nodetest.Connect(t, e.b.Addr, proto.V311, "pub")
	for i := range 2 {
		pub.Publish(&proto.Publish{Topic: "s/1", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("m")})
		sub.ExpectPublish("s/1", "m")
	}
	// The writer counts a message once its write returned, maybe after the client read it.
	nodetest.Eventually(t, "deliveries counted", func() bool { return e.b.Stats.MessagesSent.Load() == 2 })

	out := e.run(t, "nodes")
	host, _ := os.Hostname()
	if host == "" {
		host = "local"
	}
	row := ctlRow(t, out, host)
	// NAME VERSION UPTIME CONNECTIONS SESSIONS SUBSCRIPTIONS RETAINED
	if len(row) != 7 || row[3] != "2" || row[4] != "2" || row[5] != "1" || row[6] != "0" {
		t.Errorf("node row %q, want 2 connections, 2 sessions, 1 subscription, 0 retained:\n%s", row, out)
	}
	if !strings.HasPrefix(out, "NAME ") {
		t.Errorf("no header:\n%s", out)
	}

	out = e.run(t, "stats")
	for key, want := range map[string]string{
		"messages_received_qos.1": "2",
		"messages_received_qos.0": "0",
		"messages_sent":           "2",
		"connections":             "2",
		"subscriptions":           "1",
		"delivery_latency_count":  "2",
	} {
		if row := ctlRow(t, out, key); row[1] != want {
			t.Errorf("stats %s = %s, want %s", key, row[1], want)
		}
	}
}

func TestCtlClients(t *testing.T) {
	e := ctlStart(t)
	c1 := nodetest.Connect(t, e.b.Addr, proto.V5, "c1")
	c1.Subscribe(1, 1, "a/b", "c/#")
	nodetest.Connect(t, e.b.Addr, proto.V311, "c2")
	nodetest.Connect(t, e.b.Addr, proto.V311, "c3")

	out := e.run(t, "clients")
	for _, id := range []string{"c1", "c2", "c3"} {
		ctlRow(t, out, id)
	}
	if row := ctlRow(t, out, "c1"); row[2] != "yes" || row[3] != "5.0" || row[6] != "2" {
		t.Errorf("c1 row %q: want connected, 5.0, 2 subscriptions", row)
	}
	if !strings.Contains(out, "3 clients") {
		t.Errorf("no count line:\n%s", out)
	}
	out = e.run(t, "clients", "list", "--limit", "2", "--page", "2")
	if ctlHasRow(out, "c1") || !ctlHasRow(out, "c3") || !strings.Contains(out, "3 clients, page 2 of 2") {
		t.Errorf("page 2 of 2:\n%s", out)
	}
	out = e.run(t, "clients", "list", "--clientid", "c2")
	if ctlHasRow(out, "c1") || !ctlHasRow(out, "c2") {
		t.Errorf("--clientid c2:\n%s", out)
	}

	out = e.run(t, "clients", "show", "c1")
	if !strings.Contains(out, "client id:") || !ctlHasRow(out, "a/b") || !ctlHasRow(out, "c/#") {
		t.Errorf("show c1:\n%s", out)
	}

	out = e.run(t, "clients", "kick", "c1")
	if !strings.Contains(out, "disconnected c1") {
		t.Errorf("kick output %q", out)
	}
	got := c1.ExpectClosed()
	if len(got) != 1 {
		t.Fatalf("c1 got %d packets before the close, want one DISCONNECT", len(got))
	}
	if d, ok := got[0].(*proto.Disconnect); !ok || d.ReasonCode != proto.AdministrativeAction {
		t.Fatalf("c1 got %s, want DISCONNECT 0x98", nodetest.String(got[0]))
	}
	nodetest.Eventually(t, "c1 gone", func() bool { return e.b.Stats.Connected.Load() == 2 })
	if out, err := e.runAs(t, []string{"--api-key", ctlTestKey}, "clients", "kick", "c1"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("second kick: err %v, output %q; want a 404 error", err, out)
	}
	if _, err := e.runAs(t, []string{"--api-key", ctlTestKey}, "clients", "bogus"); err == nil {
		t.Error("unknown clients verb accepted")
	}
}

func TestCtlSubscriptionsAndRoutes(t *testing.T) {
	e := ctlStart(t)
	a := nodetest.Connect(t, e.b.Addr, proto.V5, "a")
	a.Send(&proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{{Filter: "x/+", QoS: 1, NoLocal: true}, {Filter: "y", QoS: 2}}})
	nodetest.Expect[*proto.Suback](a)
	b := nodetest.Connect(t, e.b.Addr, proto.V311, "b")
	b.Subscribe(1, 0, "x/+")

	out := e.run(t, "subscriptions")
	if !strings.Contains(out, "3 subscriptions") {
		t.Errorf("subscriptions:\n%s", out)
	}
	out = e.run(t, "subscriptions", "--clientid", "a", "--topic", "x/+")
	if row := ctlRow(t, out, "a"); row[1] != "x/+" || row[2] != "1" || row[3] != "no-local" {
		t.Errorf("a x/+ row %q", row)
	}
	out = e.run(t, "subscriptions", "--match-topic", "y")
	if ctlHasRow(out, "b") || !ctlHasRow(out, "a") {
		t.Errorf("--match-topic y:\n%s", out)
	}
	out = e.run(t, "routes")
	if row := ctlRow(t, out, "x/+"); row[1] != "2" {
		t.Errorf("route x/+ %q, want 2 subscribers", row)
	}
	if row := ctlRow(t, out, "y"); row[1] != "1" {
		t.Errorf("route y %q, want 1 subscriber", row)
	}
}

func TestCtlPublishAndRetained(t *testing.T) {
	e := ctlStart(t)
	sub := nodetest.Connect(t, e.b.Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "t/#")
	// The broker reads the retained store for a new subscription after sending
	// SUBACK; a ping answered means it is done, and the retained messages published
	// below come once, live.
	sub.Send(&proto.Pingreq{})
	nodetest.Expect[*proto.Pingresp](sub)

	out := e.run(t, "publish", "-t", "t/1", "-m", "hello", "-q", "1")
	if !strings.Contains(out, "reached 1 subscribers") {
		t.Errorf("publish output %q", out)
	}
	if p := sub.ExpectPublish("t/1", "hello"); p.QoS != 1 {
		t.Errorf("delivered at qos %d, want 1", p.QoS)
	}
	// Topics whose levels a URL path would mangle: empty levels, "..".
	for _, topic := range []string{"t/r", "/lead//empty", "t/../x"} {
		e.run(t, "publish", "-t", topic, "-m", "kept "+topic, "-r")
	}
	sub.ExpectPublish("t/r", "kept t/r")
	sub.ExpectPublish("t/../x", "kept t/../x")

	out = e.run(t, "retained")
	if row := ctlRow(t, out, "t/r"); row[1] != "0" || row[2] != "8" || row[3] != "kept" {
		t.Errorf("retained t/r row %q", row)
	}
	if !strings.Contains(out, "3 retained messages") {
		t.Errorf("retained count:\n%s", out)
	}
	out = e.run(t, "retained", "show", "t/../x")
	if !strings.Contains(out, "kept t/../x") || !strings.Contains(out, "from:") {
		t.Errorf("retained show:\n%s", out)
	}
	for _, topic := range []string{"t/r", "/lead//empty", "t/../x"} {
		out = e.run(t, "retained", "delete", topic)
		if !strings.Contains(out, "deleted the retained message of "+topic) {
			t.Errorf("delete %s: %q", topic, out)
		}
	}
	if n := e.b.RetainedCount(); n != 0 {
		t.Errorf("%d retained messages left after deleting all", n)
	}
	out = e.run(t, "retained", "list")
	if !strings.Contains(out, "0 retained messages") {
		t.Errorf("after delete:\n%s", out)
	}
	late := nodetest.Connect(t, e.b.Addr, proto.V311, "late")
	late.Subscribe(1, 0, "#")
	late.ExpectNothing(100 * time.Millisecond)

	if _, err := e.runAs(t, []string{"--api-key", ctlTestKey}, "publish", "-m", "no topic"); err == nil {
		t.Error("publish without -t accepted")
	}
	if _, err := e.runAs(t, []string{"--api-key", ctlTestKey}, "publish", "-t", "t/+", "-m", "x"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("publish to a wildcard: %v, want a 400 error", err)
	}
}

func TestCtlCredentials(t *testing.T) {
	e := ctlStart(t)
	cases := []struct {
		name  string
		creds []string
		env   map[string]string
		ok    bool
	}{
		{"none", nil, nil, false},
		{"api key", []string{"--api-key", ctlTestKey}, nil, true},
		{"basic", []string{"--user", ctlTestUser, "--password", ctlTestPass}, nil, true},
		{"wrong password", []string{"--user", ctlTestUser, "--password", "nope"}, nil, false},
		{"wrong key", []string{"--api-key", "nope"}, nil, false},
		{"key from env", nil, map[string]string{"SKEIN_API_KEY": ctlTestKey}, true},
		{"password from env", []string{"--user", ctlTestUser}, map[string]string{"SKEIN_API_PASSWORD": ctlTestPass}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, err := e.runAs(t, tc.creds, "nodes")
			if tc.ok {
				if err != nil || !strings.HasPrefix(out, "NAME") {
					t.Fatalf("err %v, output %q", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "authentication required") {
				t.Fatalf("err %v, want a 401 error with the API's message", err)
			}
		})
	}
	for _, bad := range [][]string{
		{"--user", ctlTestUser, "--api-key", ctlTestKey},
		{"--password", ctlTestPass},
	} {
		if _, err := e.runAs(t, bad, "nodes"); err == nil || strings.Contains(err.Error(), "401") {
			t.Errorf("%q: err %v, want a usage error before any request", bad, err)
		}
	}
}

func TestCtlJSON(t *testing.T) {
	e := ctlStart(t)
	nodetest.Connect(t, e.b.Addr, proto.V311, "j1")
	for _, args := range [][]string{{"nodes"}, {"stats"}, {"clients"}, {"subscriptions"}, {"routes"}, {"retained"}, {"publish", "-t", "j", "-m", "x"}} {
		out := e.run(t, append([]string{"--json"}, args...)...)
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("%v --json: not JSON (%v):\n%s", args, err, out)
		}
	}
	out := e.run(t, "--json", "clients")
	var page struct {
		Data []struct {
			ClientID string `json:"clientid"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Data) != 1 || page.Data[0].ClientID != "j1" {
		t.Errorf("clients --json = %s (%v)", out, err)
	}
}

// TestCtlServeHTTPHandler checks what skein serve mounts on --http-addr: probes and
// metrics open, the API behind its credentials, and the flags' errors.
func TestCtlServeHTTPHandler(t *testing.T) {
	e := ctlStart(t)
	nodetest.Connect(t, e.b.Addr, proto.V311, "m1")
	get := func(path string, auth bool) (int, string) {
		req, _ := http.NewRequest("GET", e.url+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+ctlTestKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, _ := get(path, false); status != http.StatusOK {
			t.Errorf("GET %s without credentials: %d, want 200", path, status)
		}
	}
	if _, body := get("/metrics", false); !strings.Contains(body, "\nskein_connections 1\n") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics lacks skein_connections 1 or the Go collector")
	}
	if status, _ := get("/api/v1/nodes", false); status != http.StatusUnauthorized {
		t.Errorf("API without credentials: %d, want 401", status)
	}
	if status, _ := get("/api/v1/nodes", true); status != http.StatusOK {
		t.Errorf("API with the key: %d, want 200", status)
	}

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# no keys yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, o := range []*serveOptions{
		{apiKeyFile: filepath.Join(dir, "missing")},
		{apiKeyFile: empty},
		{apiUser: "u"},
		{apiPassword: "p"},
	} {
		if _, err := healthHandler(func() bool { return true }, e.b.Broker, nil, o, log); err == nil || !strings.Contains(err.Error(), "--api-") {
			t.Errorf("options %+v: err %v, want an error naming the flag", *o, err)
		}
	}
	// Without credentials the API is open.
	h, err := healthHandler(func() bool { return true }, e.b.Broker, nil, &serveOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/stats", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("open API: %d", rec.Code)
	}
}
