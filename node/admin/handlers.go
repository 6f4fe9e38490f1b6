package admin

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/session"
)

// GET /api/v1/nodes
func (a *api) nodes(w http.ResponseWriter, _ *http.Request) {
	b := a.b
	n := Node{
		Name:          a.name,
		Version:       b.Version(),
		StartedAt:     b.StartedAt().UTC(),
		UptimeSeconds: int64(b.Uptime() / time.Second),
		Connections:   b.Stats.Connected.Load(),
		Sessions:      b.SessionCount(),
		Subscriptions: b.SubscriptionCount(),
		Retained:      b.RetainedCount(),
	}
	writeJSON(w, http.StatusOK, Page[Node]{Data: []Node{n}, Meta: Meta{Page: 1, Limit: 1, Count: 1}})
}

// GET /api/v1/stats
func (a *api) stats(w http.ResponseWriter, _ *http.Request) {
	b := a.b
	st := &b.Stats
	ss := b.SessionStats()
	out := Stats{
		Node:                a.name,
		Connections:         st.Connected.Load(),
		ConnectionsMax:      st.MaxConnected.Load(),
		ConnectionsTotal:    st.ConnectionsTotal.Load(),
		ConnectsTotal:       st.ConnectsTotal.Load(),
		ConnectionsRefused:  map[string]int64{"max_connections": st.Refused.Load()},
		ConnectionCloses:    make(map[string]int64),
		SessionsOnline:      ss.Online,
		SessionsOffline:     ss.Offline,
		SessionsPersistent:  ss.Persistent,
		SessionsExpired:     st.SessionsExpired.Load(),
		Subscriptions:       b.SubscriptionCount(),
		Routes:              b.FilterCount(),
		Retained:            b.RetainedCount(),
		MessagesReceived:    st.MessagesReceived.Load(),
		MessagesReceivedQoS: make(map[string]int64),
		MessagesSent:        st.MessagesSent.Load(),
		MessagesDropped:     make(map[string]int64),
		BytesReceived:       st.BytesReceived.Load(),
		BytesSent:           st.BytesSent.Load(),
		PacketsReceived:     st.PacketsReceived.Load(),
		PacketsSent:         st.PacketsSent.Load(),
		Inflight:            ss.Inflight,
		Queued:              ss.Queued,
	}
	for i, r := range node.CloseReasons() {
		if i < len(st.Closed) {
			out.ConnectionCloses[r] = st.Closed[i].Load()
		}
	}
	out.ConnectionsRefused["connect_refused"] = out.ConnectionCloses["connect_refused"]
	for q := range st.PublishedReceived {
		out.MessagesReceivedQoS[strconv.Itoa(q)] = st.PublishedReceived[q].Load()
	}
	for i, r := range session.DropReasons() {
		if i != int(session.NotDropped) && i < len(st.Dropped) {
			out.MessagesDropped[r] = st.Dropped[i].Load()
		}
	}
	counts, sum := st.DeliveryLatency.Snapshot()
	for _, n := range counts {
		out.DeliveryLatencyCount += n
	}
	out.DeliveryLatencySum = sum.Seconds()
	if commits, writes, ok := b.StoreStats(); ok {
		out.StoreCommits, out.StoreWrites = &commits, &writes
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /api/v1/clients?page=&limit=&clientid=&like_clientid=&username=&node=&connected=
func (a *api) listClients(w http.ResponseWriter, r *http.Request) {
	p, err := readPaging(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	var connected *bool
	if s := q.Get("connected"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("connected %q: must be true or false", s))
			return
		}
		connected = &v
	}
	var all []node.ClientInfo
	if a.ourNode(q.Get("node")) {
		all = a.b.Clients()
	}
	clientID, like, username := q.Get("clientid"), q.Get("like_clientid"), q.Get("username")
	_, byUser := q["username"]
	kept := all[:0]
	for _, c := range all {
		switch {
		case clientID != "" && c.ClientID != clientID,
			like != "" && !strings.Contains(c.ClientID, like),
			byUser && c.Username != username,
			connected != nil && c.Connected != *connected:
			continue
		}
		kept = append(kept, c)
	}
	writeJSON(w, http.StatusOK, pageOf(p, kept, a.client))
}

// ourNode reports whether a node filter selects this node; empty selects every node.
func (a *api) ourNode(name string) bool { return name == "" || name == a.name }

// GET /api/v1/clients/{id}
func (a *api) showClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ci, subs, ok := a.b.Client(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no session with client id %q", id))
		return
	}
	d := ClientDetail{Client: a.client(ci), Subscriptions: make([]Subscription, 0, len(subs))}
	for _, s := range subs {
		d.Subscriptions = append(d.Subscriptions, a.subscription(id, s))
	}
	writeJSON(w, http.StatusOK, d)
}

// DELETE /api/v1/clients/{id}: disconnect the client (5.0: DISCONNECT 0x98). The
// answer comes once the broker has been told; the socket closes right after.
func (a *api) kickClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !a.b.Kick(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no connected client with client id %q", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// GET /api/v1/subscriptions?page=&limit=&clientid=&topic=&match_topic=&node=
//
// topic selects subscriptions with exactly that filter; match_topic those whose
// filter matches that topic name.
func (a *api) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	p, err := readPaging(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	var all []node.SubscriptionInfo
	if a.ourNode(q.Get("node")) {
		if m := q.Get("match_topic"); m != "" {
			all = a.b.SubscriptionsMatching(m)
		} else {
			all = a.b.Subscriptions()
		}
	}
	clientID, topic := q.Get("clientid"), q.Get("topic")
	kept := all[:0]
	for _, s := range all {
		if clientID != "" && s.ClientID != clientID || topic != "" && s.Filter != topic {
			continue
		}
		kept = append(kept, s)
	}
	writeJSON(w, http.StatusOK, pageOf(p, kept, func(s node.SubscriptionInfo) Subscription {
		return a.subscription(s.ClientID, s.Subscription)
	}))
}

// GET /api/v1/routes?page=&limit=&topic=
func (a *api) listRoutes(w http.ResponseWriter, r *http.Request) {
	p, err := readPaging(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	all := a.b.Routes()
	if topic := r.URL.Query().Get("topic"); topic != "" {
		kept := all[:0]
		for _, rt := range all {
			if rt.Filter == topic {
				kept = append(kept, rt)
			}
		}
		all = kept
	}
	writeJSON(w, http.StatusOK, pageOf(p, all, func(rt node.RouteInfo) Route {
		return Route{Topic: rt.Filter, Nodes: []string{a.name}, Subscribers: rt.Subscribers}
	}))
}

// GET /api/v1/retained?page=&limit=&topic=FILTER (default "#")
func (a *api) listRetained(w http.ResponseWriter, r *http.Request) {
	p, err := readPaging(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	filter := r.URL.Query().Get("topic")
	if filter == "" {
		filter = "#"
	}
	msgs, err := a.b.RetainedMessages(filter)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pageOf(p, msgs, retained))
}

// GET /api/v1/retained/{topic...}
func (a *api) showRetained(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	m, ok, err := a.b.RetainedMessage(topic)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no retained message on %q", topic))
		return
	}
	writeJSON(w, http.StatusOK, retained(m))
}

// DELETE /api/v1/retained/{topic...}
func (a *api) deleteRetained(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	ok, err := a.b.DeleteRetained(r.Context(), topic)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no retained message on %q", topic))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// POST /api/v1/publish
func (a *api) publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if err := a.readBody(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := req.packet()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	n, err := a.b.Publish(r.Context(), p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, PublishResult{Topic: req.Topic, Subscribers: n})
}
