package admin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/admin"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testUser = "admin"
	testPass = "s3cret"
	testKey  = "key-one"
	nodeName = "n1"
)

// env is a broker with the API in front of it.
type env struct {
	b   *nodetest.Broker
	url string
	// auth sets valid credentials on a request; nil for an open API.
	auth func(*http.Request)
}

func start(t *testing.T, cfg admin.Config) *env {
	t.Helper()
	bc := node.DefaultConfig()
	bc.SysInterval = 0
	b := nodetest.Start(t, bc)
	cfg.Broker = b.Broker
	cfg.NodeName = nodeName
	h, err := admin.New(cfg)
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(admin.Prefix+"/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{b: b, url: srv.URL}
	switch {
	case cfg.User != "":
		e.auth = func(r *http.Request) { r.SetBasicAuth(cfg.User, cfg.Password) }
	case len(cfg.APIKeys) > 0:
		e.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+cfg.APIKeys[0]) }
	}
	return e
}

// startAuth starts the API with both a user and a key.
func startAuth(t *testing.T) *env {
	return start(t, admin.Config{User: testUser, Password: testPass, APIKeys: []string{testKey, "key-two"}})
}

// do sends a request with valid credentials and returns the status and body.
func (e *env) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	return e.doWith(t, method, path, body, e.auth)
}

func (e *env) doWith(t *testing.T, method, path string, body any, auth func(*http.Request)) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			data, err := json.Marshal(b)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			rd = bytes.NewReader(data)
		}
	}
	req, err := http.NewRequest(method, e.url+admin.Prefix+path, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if resp.StatusCode != http.StatusNoContent && resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, data
}

// get fetches path, requires 200 and decodes the answer into v.
func (e *env) get(t *testing.T, path string, v any) {
	t.Helper()
	status, body := e.do(t, http.MethodGet, path, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: decode %s: %v", path, body, err)
	}
}

// errorOf decodes an error answer.
func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var e admin.Error
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("error answer %q is not {\"error\": ...}", body)
	}
	return e.Error
}

func TestEveryEndpointNeedsCredentials(t *testing.T) {
	e := startAuth(t)
	c := nodetest.Connect(t, e.b.Addr, proto.V311, "c1")
	c.Subscribe(1, 0, "a/b")
	c.Publish(&proto.Publish{Topic: "r/1", Retain: true, Payload: []byte("x")})
	nodetest.Eventually(t, "retained stored", func() bool { return e.b.RetainedCount() == 1 })

	endpoints := []struct {
		method, path string
		body         any
		ok           int
	}{
		{"GET", "/nodes", nil, 200},
		{"GET", "/stats", nil, 200},
		{"GET", "/clients", nil, 200},
		{"GET", "/clients/c1", nil, 200},
		{"GET", "/subscriptions", nil, 200},
		{"GET", "/routes", nil, 200},
		{"GET", "/retained", nil, 200},
		{"GET", "/retained/r/1", nil, 200},
		{"POST", "/publish", admin.PublishRequest{Topic: "p"}, 200},
		{"DELETE", "/retained/none", nil, 404},
		{"DELETE", "/clients/nobody", nil, 404},
		{"GET", "/nope", nil, 404},
	}
	creds := []struct {
		name string
		auth func(*http.Request)
		ok   bool
	}{
		{"none", nil, false},
		{"basic", func(r *http.Request) { r.SetBasicAuth(testUser, testPass) }, true},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testKey) }, true},
		{"second key", func(r *http.Request) { r.Header.Set("Authorization", "bearer key-two") }, true},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth(testUser, "wrong") }, false},
		{"wrong user", func(r *http.Request) { r.SetBasicAuth("root", testPass) }, false},
		{"wrong key", func(r *http.Request) { r.Header.Set("Authorization", "Bearer key-three") }, false},
		{"key as basic password", func(r *http.Request) { r.SetBasicAuth(testUser, testKey) }, false},
		{"password as key", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testPass) }, false},
	}
	for _, ep := range endpoints {
		for _, cr := range creds {
			t.Run(ep.method+ep.path+"/"+cr.name, func(t *testing.T) {
				status, body := e.doWith(t, ep.method, ep.path, ep.body, cr.auth)
				if !cr.ok {
					if status != http.StatusUnauthorized {
						t.Fatalf("status %d, want 401: %s", status, body)
					}
					errorOf(t, body)
					return
				}
				if status != ep.ok {
					t.Fatalf("status %d, want %d: %s", status, ep.ok, body)
				}
			})
		}
	}
	// The 401 tells the client how to authenticate.
	req, _ := http.NewRequest("GET", e.url+admin.Prefix+"/nodes", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ch := resp.Header.Values("WWW-Authenticate"); len(ch) != 2 || !strings.HasPrefix(ch[0], "Basic ") || !strings.HasPrefix(ch[1], "Bearer ") {
		t.Errorf("WWW-Authenticate = %q, want a Basic and a Bearer challenge", ch)
	}
	// Nothing was kicked or published by the refused requests.
	if got := e.b.Stats.Connected.Load(); got != 1 {
		t.Errorf("connected = %d, want 1", got)
	}
}

func TestOpenWithoutCredentials(t *testing.T) {
	e := start(t, admin.Config{})
	var nodes admin.Page[admin.Node]
	e.get(t, "/nodes", &nodes)
	if len(nodes.Data) != 1 || nodes.Data[0].Name != nodeName {
		t.Fatalf("nodes = %+v", nodes)
	}
}

func TestOnlyKeys(t *testing.T) {
	e := start(t, admin.Config{APIKeys: []string{"k"}})
	if status, _ := e.doWith(t, "GET", "/nodes", nil, func(r *http.Request) { r.SetBasicAuth("", "k") }); status != 401 {
		t.Errorf("basic auth with the key as password: %d, want 401", status)
	}
	if status, _ := e.do(t, "GET", "/nodes", nil); status != 200 {
		t.Errorf("bearer key: %d, want 200", status)
	}
}

func TestNodesAndStats(t *testing.T) {
	e := startAuth(t)
	sub := nodetest.Connect(t, e.b.Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "s/#")
	settle(t, sub)
	pub := nodetest.Connect(t, e.b.Addr, proto.V311, "pub")
	for i := range 3 {
		pub.Publish(&proto.Publish{Topic: "s/x", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("m")})
		sub.ExpectPublish("s/x", "m")
	}
	pub.Publish(&proto.Publish{Topic: "s/r", Retain: true, Payload: []byte("r")})
	sub.ExpectPublish("s/r", "r")
	// The writer counts a message once its write returned, maybe after the client read it.
	nodetest.Eventually(t, "deliveries counted", func() bool { return e.b.Stats.MessagesSent.Load() == 4 })

	var nodes admin.Page[admin.Node]
	e.get(t, "/nodes", &nodes)
	n := nodes.Data[0]
	if n.Name != nodeName || n.Version != "dev" || n.Connections != 2 || n.Sessions != 2 || n.Subscriptions != 1 || n.Retained != 1 {
		t.Errorf("node = %+v", n)
	}
	if n.StartedAt.IsZero() || n.UptimeSeconds < 0 {
		t.Errorf("node start %v, uptime %d", n.StartedAt, n.UptimeSeconds)
	}

	var st admin.Stats
	e.get(t, "/stats", &st)
	if st.MessagesReceivedQoS["1"] != 3 || st.MessagesReceivedQoS["0"] != 1 || st.MessagesReceived != 4 {
		t.Errorf("received %d by qos %v, want 4 with 3 at qos 1", st.MessagesReceived, st.MessagesReceivedQoS)
	}
	if st.Connections != 2 || st.ConnectionsTotal != 2 || st.ConnectsTotal != 2 || st.SessionsOnline != 2 || st.Subscriptions != 1 || st.Retained != 1 {
		t.Errorf("stats = %+v", st)
	}
	if st.MessagesSent != 4 || st.DeliveryLatencyCount != 4 {
		t.Errorf("sent %d, latency count %d, want 4 and 4", st.MessagesSent, st.DeliveryLatencyCount)
	}
	if _, ok := st.MessagesDropped["queue_full"]; !ok {
		t.Errorf("messages_dropped = %v: no queue_full", st.MessagesDropped)
	}
	if _, ok := st.ConnectionCloses["kicked"]; !ok {
		t.Errorf("connection_closes = %v: no kicked", st.ConnectionCloses)
	}
	if st.StoreCommits != nil {
		t.Errorf("store counters without a store")
	}
}

// settle returns once the broker has handled everything c sent before: the
// connection's packets are handled in order, so the answer to a ping comes after.
// A subscription is then complete, its retained messages included.
func settle(t *testing.T, c *nodetest.Client) {
	t.Helper()
	c.Send(&proto.Pingreq{})
	nodetest.Expect[*proto.Pingresp](c)
}

// connectAs connects a client with a username and keepalive.
func connectAs(t *testing.T, addr string, v proto.Version, id, user string, clean bool) *nodetest.Client {
	t.Helper()
	c := nodetest.Dial(t, addr, v)
	cp := &proto.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30}
	if user != "" {
		cp.Username, cp.UsernameSet = user, true
	}
	if !clean && v == proto.V5 {
		cp.Props.SessionExpiry = 3600
		cp.Props.Set(proto.PropSessionExpiry)
	}
	if ack := c.Connect(cp); ack.ReasonCode != 0 {
		t.Fatalf("CONNECT %s: %v", id, ack.ReasonCode)
	}
	return c
}

func clientIDs(cs []admin.Client) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ClientID)
	}
	return ids
}

func TestClientsPagingAndFilters(t *testing.T) {
	e := startAuth(t)
	var conns []*nodetest.Client
	for _, c := range []struct {
		id, user string
		v        proto.Version
	}{{"c1", "alice", proto.V5}, {"c2", "bob", proto.V311}, {"c3", "alice", proto.V5}, {"c4", "", proto.V311}, {"d5", "carol", proto.V31}} {
		conns = append(conns, connectAs(t, e.b.Addr, c.v, c.id, c.user, true))
	}
	conns[0].Subscribe(1, 1, "a", "b")
	// An offline persistent session.
	off := connectAs(t, e.b.Addr, proto.V5, "c6", "dave", false)
	off.Subscribe(1, 1, "z")
	off.Disconnect()
	nodetest.Eventually(t, "c6 offline", func() bool { return e.b.Stats.Connected.Load() == 5 })

	cases := []struct {
		query string
		ids   []string
		count int
	}{
		{"", []string{"c1", "c2", "c3", "c4", "c6", "d5"}, 6},
		{"?limit=2", []string{"c1", "c2"}, 6},
		{"?limit=2&page=2", []string{"c3", "c4"}, 6},
		{"?limit=4&page=2", []string{"c6", "d5"}, 6},
		{"?limit=2&page=4", nil, 6},
		{"?clientid=c3", []string{"c3"}, 1},
		{"?clientid=c", nil, 0},
		{"?like_clientid=c", []string{"c1", "c2", "c3", "c4", "c6"}, 5},
		{"?username=alice", []string{"c1", "c3"}, 2},
		{"?username=", []string{"c4"}, 1},
		{"?username=alice&limit=1&page=2", []string{"c3"}, 2},
		{"?node=" + nodeName, []string{"c1", "c2", "c3", "c4", "c6", "d5"}, 6},
		{"?node=other", nil, 0},
		{"?connected=false", []string{"c6"}, 1},
		{"?connected=true&username=dave", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			var page admin.Page[admin.Client]
			e.get(t, "/clients"+tc.query, &page)
			if got := clientIDs(page.Data); !slices.Equal(got, tc.ids) || page.Meta.Count != tc.count {
				t.Errorf("ids %v count %d, want %v count %d", got, page.Meta.Count, tc.ids, tc.count)
			}
			if page.Data == nil {
				t.Error(`"data" is null, want []`)
			}
		})
	}

	var page admin.Page[admin.Client]
	e.get(t, "/clients?clientid=c1", &page)
	c1 := page.Data[0]
	want := admin.Client{
		ClientID: "c1", Username: "alice", Node: nodeName, Connected: true, ProtocolVersion: "5.0",
		RemoteAddr: conns[0].Conn.LocalAddr().String(), KeepAlive: 30, SubscriptionsCount: 2,
	}
	if c1 != want {
		t.Errorf("c1 = %+v\nwant %+v", c1, want)
	}
	page = admin.Page[admin.Client]{} // decoding merges into what is there
	e.get(t, "/clients?clientid=c6", &page)
	if c6 := page.Data[0]; c6.Connected || c6.RemoteAddr != "" || c6.SessionExpiry != 3600 || c6.SubscriptionsCount != 1 || c6.Username != "dave" {
		t.Errorf("offline c6 = %+v", c6)
	}
	page = admin.Page[admin.Client]{}
	e.get(t, "/clients?clientid=d5", &page)
	if d5 := page.Data[0]; d5.ProtocolVersion != "3.1" {
		t.Errorf("d5 protocol %q, want 3.1", d5.ProtocolVersion)
	}

	for _, bad := range []string{"?page=0", "?limit=0", "?limit=1001", "?page=x", "?connected=maybe"} {
		status, body := e.do(t, "GET", "/clients"+bad, nil)
		if status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, status)
		}
		errorOf(t, body)
	}
}

func TestShowClient(t *testing.T) {
	e := startAuth(t)
	c := nodetest.Connect(t, e.b.Addr, proto.V5, "with/slash")
	c.Send(&proto.Subscribe{PacketID: 1, Subscriptions: []proto.Subscription{
		{Filter: "b/+", QoS: 2, NoLocal: true, RetainHandling: 2},
		{Filter: "$share/g/a/#", QoS: 1},
	}})
	nodetest.Expect[*proto.Suback](c)

	var d admin.ClientDetail
	e.get(t, "/clients/"+url.PathEscape("with/slash"), &d)
	if d.ClientID != "with/slash" || !d.Connected || d.SubscriptionsCount != 2 {
		t.Errorf("client = %+v", d.Client)
	}
	want := []admin.Subscription{
		{ClientID: "with/slash", Node: nodeName, Topic: "$share/g/a/#", QoS: 1},
		{ClientID: "with/slash", Node: nodeName, Topic: "b/+", QoS: 2, NoLocal: true, RetainHandling: 2},
	}
	if !slices.Equal(d.Subscriptions, want) {
		t.Errorf("subscriptions = %+v\nwant %+v", d.Subscriptions, want)
	}
	status, body := e.do(t, "GET", "/clients/nobody", nil)
	if status != http.StatusNotFound || !strings.Contains(errorOf(t, body), "nobody") {
		t.Errorf("unknown client: %d %s", status, body)
	}
}

func TestKick(t *testing.T) {
	e := startAuth(t)
	c := nodetest.Connect(t, e.b.Addr, proto.V5, "victim")
	other := nodetest.Connect(t, e.b.Addr, proto.V311, "bystander")

	status, body := e.do(t, "DELETE", "/clients/victim", nil)
	if status != http.StatusNoContent {
		t.Fatalf("kick: %d %s", status, body)
	}
	got := c.ExpectClosed()
	if len(got) != 1 {
		t.Fatalf("before closing the broker sent %d packets, want one DISCONNECT", len(got))
	}
	if d, ok := got[0].(*proto.Disconnect); !ok || d.ReasonCode != proto.AdministrativeAction {
		t.Fatalf("got %s, want DISCONNECT 0x98", nodetest.String(got[0]))
	}
	nodetest.Eventually(t, "victim gone", func() bool { return e.b.Stats.Connected.Load() == 1 })
	var st admin.Stats
	e.get(t, "/stats", &st)
	if st.ConnectionCloses["kicked"] != 1 {
		t.Errorf("kicked closes = %d, want 1", st.ConnectionCloses["kicked"])
	}
	status, body = e.do(t, "DELETE", "/clients/victim", nil)
	if status != http.StatusNotFound {
		t.Errorf("second kick: %d %s, want 404", status, body)
	}
	// The other client is untouched.
	other.Send(&proto.Pingreq{})
	nodetest.Expect[*proto.Pingresp](other)
}

func TestSubscriptions(t *testing.T) {
	e := startAuth(t)
	a := nodetest.Connect(t, e.b.Addr, proto.V5, "a")
	a.Subscribe(1, 1, "x/+", "y/#", "$share/g/x/1")
	b := nodetest.Connect(t, e.b.Addr, proto.V311, "b")
	b.Subscribe(1, 0, "x/1", "#")

	type sub struct{ id, topic string }
	list := func(q string) ([]sub, int) {
		var page admin.Page[admin.Subscription]
		e.get(t, "/subscriptions"+q, &page)
		var out []sub
		for _, s := range page.Data {
			out = append(out, sub{s.ClientID, s.Topic})
		}
		return out, page.Meta.Count
	}
	cases := []struct {
		query string
		want  []sub
		count int
	}{
		{"", []sub{{"a", "$share/g/x/1"}, {"a", "x/+"}, {"a", "y/#"}, {"b", "#"}, {"b", "x/1"}}, 5},
		{"?limit=2&page=2", []sub{{"a", "y/#"}, {"b", "#"}}, 5},
		{"?clientid=b", []sub{{"b", "#"}, {"b", "x/1"}}, 2},
		{"?topic=x/1", []sub{{"b", "x/1"}}, 1},
		{"?topic=" + url.QueryEscape("$share/g/x/1"), []sub{{"a", "$share/g/x/1"}}, 1},
		{"?match_topic=x/1", []sub{{"a", "$share/g/x/1"}, {"a", "x/+"}, {"b", "#"}, {"b", "x/1"}}, 4},
		{"?match_topic=x/1&clientid=a&limit=1", []sub{{"a", "$share/g/x/1"}}, 2},
		{"?match_topic=" + url.QueryEscape("$x/1"), nil, 0}, // # does not match a $ topic
		{"?node=elsewhere", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			got, n := list(tc.query)
			if !slices.Equal(got, tc.want) || n != tc.count {
				t.Errorf("got %v (count %d), want %v (count %d)", got, n, tc.want, tc.count)
			}
		})
	}
	var page admin.Page[admin.Subscription]
	e.get(t, "/subscriptions?clientid=a&topic=x/%2B", &page)
	if len(page.Data) != 1 || page.Data[0].QoS != 1 || page.Data[0].Node != nodeName {
		t.Errorf("x/+ of a = %+v", page.Data)
	}
}

func TestRoutes(t *testing.T) {
	e := startAuth(t)
	for _, id := range []string{"r1", "r2"} {
		c := nodetest.Connect(t, e.b.Addr, proto.V5, id)
		c.Subscribe(1, 0, "a/+", "$share/g/a/+")
	}
	c := nodetest.Connect(t, e.b.Addr, proto.V5, "r3")
	c.Subscribe(1, 0, "a/+", "b")

	var page admin.Page[admin.Route]
	e.get(t, "/routes", &page)
	want := []admin.Route{
		{Topic: "$share/g/a/+", Nodes: []string{nodeName}, Subscribers: 2},
		{Topic: "a/+", Nodes: []string{nodeName}, Subscribers: 3},
		{Topic: "b", Nodes: []string{nodeName}, Subscribers: 1},
	}
	if len(page.Data) != len(want) || page.Meta.Count != 3 {
		t.Fatalf("routes = %+v, want %+v", page, want)
	}
	for i := range want {
		if page.Data[i].Topic != want[i].Topic || page.Data[i].Subscribers != want[i].Subscribers || !slices.Equal(page.Data[i].Nodes, want[i].Nodes) {
			t.Errorf("route %d = %+v, want %+v", i, page.Data[i], want[i])
		}
	}
	page = admin.Page[admin.Route]{}
	e.get(t, "/routes?limit=1&page=3", &page)
	if len(page.Data) != 1 || page.Data[0].Topic != "b" {
		t.Errorf("page 3 = %+v", page.Data)
	}
	page = admin.Page[admin.Route]{}
	e.get(t, "/routes?topic=a/%2B", &page)
	if len(page.Data) != 1 || page.Data[0].Subscribers != 3 {
		t.Errorf("a/+ = %+v", page.Data)
	}
}

func TestRetained(t *testing.T) {
	e := startAuth(t)
	pub := nodetest.Connect(t, e.b.Addr, proto.V5, "pub")
	for _, m := range []struct{ topic, payload string }{{"r/1", "one"}, {"r/2", "two"}, {"s/1", "\x00\xff"}, {"r/a/b", "deep"}} {
		pub.Publish(&proto.Publish{Topic: m.topic, QoS: 1, PacketID: 1, Retain: true, Payload: []byte(m.payload)})
	}

	topics := func(q string) ([]string, int) {
		var page admin.Page[admin.Retained]
		e.get(t, "/retained"+q, &page)
		var out []string
		for _, r := range page.Data {
			out = append(out, r.Topic)
		}
		return out, page.Meta.Count
	}
	cases := []struct {
		query string
		want  []string
		count int
	}{
		{"", []string{"r/1", "r/2", "r/a/b", "s/1"}, 4},
		{"?topic=r/%2B", []string{"r/1", "r/2"}, 2},
		{"?topic=r/%23", []string{"r/1", "r/2", "r/a/b"}, 3},
		{"?topic=r/%23&limit=2&page=2", []string{"r/a/b"}, 3},
		{"?topic=s/1", []string{"s/1"}, 1},
		{"?topic=nothing", nil, 0},
	}
	for _, tc := range cases {
		got, n := topics(tc.query)
		if !slices.Equal(got, tc.want) || n != tc.count {
			t.Errorf("%s: %v (count %d), want %v (count %d)", tc.query, got, n, tc.want, tc.count)
		}
	}
	status, body := e.do(t, "GET", "/retained?topic=a/%23/b", nil)
	if status != http.StatusBadRequest {
		t.Errorf("invalid filter: %d %s, want 400", status, body)
	}

	var r admin.Retained
	e.get(t, "/retained/s/1", &r)
	if r.PayloadEncoding != admin.EncodingBase64 || r.Payload != "AP8=" || r.PayloadSize != 2 || r.QoS != 1 || r.From != "pub" || r.ReceivedAt == nil {
		t.Errorf("s/1 = %+v", r)
	}
	r = admin.Retained{}
	e.get(t, "/retained/r/1", &r)
	if r.PayloadEncoding != admin.EncodingPlain || r.Payload != "one" {
		t.Errorf("r/1 = %+v", r)
	}

	status, body = e.do(t, "DELETE", "/retained/r/1", nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	if status, _ := e.do(t, "GET", "/retained/r/1", nil); status != http.StatusNotFound {
		t.Errorf("deleted message still shown: %d", status)
	}
	if status, _ := e.do(t, "DELETE", "/retained/r/1", nil); status != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", status)
	}
	// A new subscriber gets what is left, not the deleted message.
	sub := nodetest.Connect(t, e.b.Addr, proto.V311, "late")
	sub.Subscribe(1, 0, "r/+")
	if p := sub.ExpectPublish("r/2", "two"); !p.Retain {
		t.Error("r/2 not flagged retained")
	}
	sub.ExpectNothing(100 * time.Millisecond)
	if e.b.RetainedCount() != 3 {
		t.Errorf("retained count %d, want 3", e.b.RetainedCount())
	}
}

func TestPublish(t *testing.T) {
	e := startAuth(t)
	sub := nodetest.Connect(t, e.b.Addr, proto.V5, "sub")
	sub.Subscribe(1, 1, "p/#")
	settle(t, sub)

	var res admin.PublishResult
	status, body := e.do(t, "POST", "/publish", admin.PublishRequest{
		Topic: "p/1", Payload: "hello", QoS: 1,
		Properties: &admin.Properties{ContentType: "text/plain", ResponseTopic: "reply/1", CorrelationData: "c-1",
			UserProperties: map[string]string{"b": "2", "a": "1"}},
	})
	if status != http.StatusOK {
		t.Fatalf("publish: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &res); err != nil || res.Subscribers != 1 || res.Topic != "p/1" {
		t.Fatalf("publish answer %s (%v)", body, err)
	}
	p := sub.ExpectPublish("p/1", "hello")
	if p.QoS != 1 || p.Retain {
		t.Errorf("delivered qos %d retain %v, want 1 false", p.QoS, p.Retain)
	}
	pr := &p.Props
	if pr.ContentType != "text/plain" || pr.ResponseTopic != "reply/1" || string(pr.CorrelationData) != "c-1" ||
		!slices.Equal(pr.User, []proto.UserProperty{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}) {
		t.Errorf("properties = %+v", pr)
	}

	// Base64 payload, retained: a later subscriber gets it.
	status, body = e.do(t, "POST", "/publish", `{"topic":"p/bin","payload":"AP8=","payload_encoding":"base64","retain":true}`)
	if status != http.StatusOK {
		t.Fatalf("publish base64: %d %s", status, body)
	}
	sub.ExpectPublish("p/bin", "\x00\xff")
	late := nodetest.Connect(t, e.b.Addr, proto.V311, "late")
	late.Subscribe(1, 0, "p/bin")
	if p := late.ExpectPublish("p/bin", "\x00\xff"); !p.Retain {
		t.Error("retained message from the API not flagged retained")
	}
	var r admin.Retained
	e.get(t, "/retained/p/bin", &r)
	if r.From != node.APIClientID {
		t.Errorf("retained from %q, want %q", r.From, node.APIClientID)
	}

	// No subscriber: accepted, reaching nobody.
	status, body = e.do(t, "POST", "/publish", admin.PublishRequest{Topic: "nobody/here"})
	if status != http.StatusOK || !strings.Contains(string(body), `"subscribers":0`) {
		t.Errorf("publish without subscribers: %d %s", status, body)
	}

	bad := []struct{ name, body string }{
		{"qos 3", `{"topic":"p/x","qos":3}`},
		{"wildcard topic", `{"topic":"p/+"}`},
		{"empty topic", `{"topic":""}`},
		{"sys topic", `{"topic":"$SYS/broker/uptime"}`},
		{"bad base64", `{"topic":"p/x","payload":"***","payload_encoding":"base64"}`},
		{"unknown encoding", `{"topic":"p/x","payload_encoding":"hex"}`},
		{"unknown field", `{"topic":"p/x","qso":1}`},
		{"not json", `topic=p/x`},
		{"two values", `{"topic":"p/x"}{"topic":"p/y"}`},
		{"payload format lies", `{"topic":"p/x","payload":"/w==","payload_encoding":"base64","properties":{"payload_format_indicator":1}}`},
		{"bad response topic", `{"topic":"p/x","properties":{"response_topic":"r/#"}}`},
	}
	for _, tc := range bad {
		status, body := e.do(t, "POST", "/publish", tc.body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", tc.name, status, body)
			continue
		}
		errorOf(t, body)
	}
	// None of them reached the subscriber.
	sub.ExpectNothing(100 * time.Millisecond)

}

func TestBodyLimit(t *testing.T) {
	e := start(t, admin.Config{MaxBodyBytes: 1024})
	sub := nodetest.Connect(t, e.b.Addr, proto.V311, "sub")
	sub.Subscribe(1, 0, "p/x")
	fits := `{"topic":"p/x","payload":"` + strings.Repeat("a", 900) + `"}`
	if status, body := e.do(t, "POST", "/publish", fits); status != http.StatusOK {
		t.Fatalf("body under the limit: %d %s", status, body)
	}
	sub.ExpectPublish("p/x", strings.Repeat("a", 900))
	big := `{"topic":"p/x","payload":"` + strings.Repeat("a", 2000) + `"}`
	status, body := e.do(t, "POST", "/publish", big)
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", status)
	}
	errorOf(t, body)
	sub.ExpectNothing(100 * time.Millisecond)
}

func TestMethodsAndUnknownPaths(t *testing.T) {
	e := startAuth(t)
	status, body := e.do(t, "POST", "/clients/x", nil)
	if status != http.StatusMethodNotAllowed {
		t.Errorf("POST /clients/x: %d, want 405", status)
	}
	errorOf(t, body)
	req, _ := http.NewRequest("PUT", e.url+admin.Prefix+"/retained/a", nil)
	e.auth(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Allow"); got != "DELETE, GET" {
		t.Errorf("Allow = %q, want DELETE, GET", got)
	}
	status, _ = e.do(t, "GET", "/publish", nil)
	if status != http.StatusMethodNotAllowed {
		t.Errorf("GET /publish: %d", status)
	}
	status, body = e.do(t, "GET", "/v2/things", nil)
	if status != http.StatusNotFound || !strings.Contains(errorOf(t, body), "/v2/things") {
		t.Errorf("unknown path: %d %s", status, body)
	}
}

func TestParseKeys(t *testing.T) {
	keys, err := admin.ParseKeys([]byte("# operators\nalpha\n\n  beta  \r\n#gamma\n"))
	if err != nil || !slices.Equal(keys, []string{"alpha", "beta"}) {
		t.Errorf("ParseKeys = %q, %v", keys, err)
	}
	for _, bad := range []string{"", "# only a comment\n\n", "two words\n"} {
		if _, err := admin.ParseKeys([]byte(bad)); err == nil {
			t.Errorf("ParseKeys(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	b := nodetest.Start(t, node.DefaultConfig())
	cases := []struct {
		name string
		cfg  admin.Config
		ok   bool
	}{
		{"open", admin.Config{Broker: b.Broker}, true},
		{"basic", admin.Config{Broker: b.Broker, User: "u", Password: "p"}, true},
		{"no broker", admin.Config{}, false},
		{"user without password", admin.Config{Broker: b.Broker, User: "u"}, false},
		{"password without user", admin.Config{Broker: b.Broker, Password: "p"}, false},
		{"colon in user", admin.Config{Broker: b.Broker, User: "a:b", Password: "p"}, false},
		{"empty key", admin.Config{Broker: b.Broker, APIKeys: []string{""}}, false},
		{"negative body", admin.Config{Broker: b.Broker, MaxBodyBytes: -1}, false},
	}
	for _, tc := range cases {
		_, err := admin.New(tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
