package admin

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/proto"
	"github.com/skein-mq/skein/session"
)

// Node is one node of the cluster; for now the API lists this node only.
type Node struct {
	Name          string    `json:"name"`
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	// Connections counts the clients connected now; Sessions the sessions, online
	// and offline.
	Connections   int64 `json:"connections"`
	Sessions      int   `json:"sessions"`
	Subscriptions int   `json:"subscriptions"`
	Retained      int   `json:"retained"`
}

// Stats is every counter of the node, as the metrics report them.
type Stats struct {
	Node               string           `json:"node"`
	Connections        int64            `json:"connections"`
	ConnectionsMax     int64            `json:"connections_max"`
	ConnectionsTotal   int64            `json:"connections_total"`
	ConnectsTotal      int64            `json:"connects_total"`
	ConnectionsRefused map[string]int64 `json:"connections_refused"`
	ConnectionCloses   map[string]int64 `json:"connection_closes"`
	SessionsOnline     int              `json:"sessions_online"`
	SessionsOffline    int              `json:"sessions_offline"`
	SessionsPersistent int              `json:"sessions_persistent"`
	SessionsExpired    int64            `json:"sessions_expired"`
	Subscriptions      int              `json:"subscriptions"`
	Routes             int              `json:"routes"`
	Retained           int              `json:"retained"`
	MessagesReceived   int64            `json:"messages_received"`
	// MessagesReceivedQoS splits MessagesReceived by QoS ("0", "1", "2").
	MessagesReceivedQoS map[string]int64 `json:"messages_received_qos"`
	MessagesSent        int64            `json:"messages_sent"`
	MessagesDropped     map[string]int64 `json:"messages_dropped"`
	BytesReceived       int64            `json:"bytes_received"`
	BytesSent           int64            `json:"bytes_sent"`
	PacketsReceived     int64            `json:"packets_received"`
	PacketsSent         int64            `json:"packets_sent"`
	Inflight            int              `json:"inflight"`
	Queued              int              `json:"queued"`
	// DeliveryLatencyCount and DeliveryLatencySum (seconds) summarize the delivery
	// latency histogram; /metrics has its buckets.
	DeliveryLatencyCount uint64  `json:"delivery_latency_count"`
	DeliveryLatencySum   float64 `json:"delivery_latency_seconds_sum"`
	// StoreCommits and StoreWrites are set when the node keeps a session store.
	StoreCommits *int64 `json:"store_commits,omitempty"`
	StoreWrites  *int64 `json:"store_writes,omitempty"`
}

// Client is one session and, while it is connected, its connection.
type Client struct {
	ClientID  string `json:"clientid"`
	Username  string `json:"username"`
	Anonymous bool   `json:"anonymous"`
	Node      string `json:"node"`
	Connected bool   `json:"connected"`
	// ProtocolVersion ("3.1", "3.1.1", "5.0"), RemoteAddr and KeepAlive (seconds)
	// describe the connection; they are empty for an offline session.
	ProtocolVersion string `json:"protocol_version,omitempty"`
	RemoteAddr      string `json:"remote_addr,omitempty"`
	KeepAlive       int    `json:"keepalive,omitempty"`
	// SessionExpiry is the session expiry interval in seconds (4294967295: never).
	SessionExpiry      uint32 `json:"session_expiry_interval"`
	SubscriptionsCount int    `json:"subscriptions_count"`
	Inflight           int    `json:"inflight"`
	Queued             int    `json:"queued"`
	Dropped            uint64 `json:"dropped"`
}

// ClientDetail is a client with its subscriptions.
type ClientDetail struct {
	Client
	Subscriptions []Subscription `json:"subscriptions"`
}

// Subscription is one subscription of one session. Topic is the filter as the
// client subscribed, with any $share/group/ prefix.
type Subscription struct {
	ClientID          string `json:"clientid"`
	Node              string `json:"node"`
	Topic             string `json:"topic"`
	QoS               int    `json:"qos"`
	NoLocal           bool   `json:"no_local"`
	RetainAsPublished bool   `json:"retain_as_published"`
	RetainHandling    int    `json:"retain_handling"`
	SubscriptionID    int    `json:"subscription_id,omitempty"`
}

// Route is a topic filter and the nodes with subscribers to it.
type Route struct {
	Topic string   `json:"topic"`
	Nodes []string `json:"nodes"`
	// Subscribers counts the local sessions subscribed.
	Subscribers int `json:"subscribers"`
}

// Payload encodings of Retained and PublishRequest.
const (
	EncodingPlain  = "plain"
	EncodingBase64 = "base64"
)

// Retained is a retained message. Payload is the text itself when it is valid
// UTF-8 (PayloadEncoding "plain"), base64 otherwise.
type Retained struct {
	Topic           string      `json:"topic"`
	Payload         string      `json:"payload"`
	PayloadEncoding string      `json:"payload_encoding"`
	PayloadSize     int         `json:"payload_size"`
	QoS             int         `json:"qos"`
	From            string      `json:"from,omitempty"`
	ReceivedAt      *time.Time  `json:"received_at,omitempty"`
	ExpiresAt       *time.Time  `json:"expires_at,omitempty"`
	Properties      *Properties `json:"properties,omitempty"`
}

// Properties are the MQTT 5.0 properties of a message that a publisher sets and
// subscribers receive.
type Properties struct {
	PayloadFormatIndicator *int    `json:"payload_format_indicator,omitempty"`
	MessageExpiryInterval  *uint32 `json:"message_expiry_interval,omitempty"`
	ContentType            string  `json:"content_type,omitempty"`
	ResponseTopic          string  `json:"response_topic,omitempty"`
	// CorrelationData is taken as text.
	CorrelationData string            `json:"correlation_data,omitempty"`
	UserProperties  map[string]string `json:"user_properties,omitempty"`
}

// PublishRequest is the body of POST /api/v1/publish.
type PublishRequest struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	// PayloadEncoding is "plain" (the default) or "base64".
	PayloadEncoding string      `json:"payload_encoding,omitempty"`
	QoS             int         `json:"qos"`
	Retain          bool        `json:"retain"`
	Properties      *Properties `json:"properties,omitempty"`
}

// PublishResult answers a publish.
type PublishResult struct {
	Topic string `json:"topic"`
	// Subscribers counts the local sessions, and the other nodes, the message reached.
	Subscribers int `json:"subscribers"`
}

func (a *api) client(ci node.ClientInfo) Client {
	c := Client{
		ClientID:           ci.ClientID,
		Username:           ci.Username,
		Anonymous:          ci.Anonymous,
		Node:               a.name,
		Connected:          ci.Connected,
		RemoteAddr:         ci.RemoteAddr,
		KeepAlive:          int(ci.KeepAlive / time.Second),
		SessionExpiry:      ci.Expiry,
		SubscriptionsCount: ci.Subscriptions,
		Inflight:           ci.Inflight,
		Queued:             ci.Queued,
		Dropped:            ci.Dropped,
	}
	if ci.Connected {
		c.ProtocolVersion = ci.Version.String()
	}
	return c
}

func (a *api) subscription(clientID string, s session.Subscription) Subscription {
	return Subscription{
		ClientID:          clientID,
		Node:              a.name,
		Topic:             s.Filter,
		QoS:               int(s.QoS),
		NoLocal:           s.NoLocal,
		RetainAsPublished: s.RetainAsPublished,
		RetainHandling:    int(s.RetainHandling),
		SubscriptionID:    s.ID,
	}
}

func retained(m *session.Message) Retained {
	r := Retained{Topic: m.Topic, PayloadSize: len(m.Payload), QoS: int(m.QoS), From: m.From}
	if utf8.Valid(m.Payload) {
		r.Payload, r.PayloadEncoding = string(m.Payload), EncodingPlain
	} else {
		r.Payload, r.PayloadEncoding = base64.StdEncoding.EncodeToString(m.Payload), EncodingBase64
	}
	if m.Received != 0 {
		t := time.Unix(0, m.Received).UTC()
		r.ReceivedAt = &t
	}
	if !m.Expires.IsZero() {
		t := m.Expires.UTC()
		r.ExpiresAt = &t
	}
	r.Properties = propertiesOf(&m.Props)
	return r
}

// propertiesOf converts the forwarded properties of a message; nil when it has none.
func propertiesOf(p *proto.Properties) *Properties {
	var out Properties
	empty := true
	if p.Has(proto.PropPayloadFormat) {
		v := int(p.PayloadFormat)
		out.PayloadFormatIndicator, empty = &v, false
	}
	if p.Has(proto.PropContentType) {
		out.ContentType, empty = p.ContentType, false
	}
	if p.Has(proto.PropResponseTopic) {
		out.ResponseTopic, empty = p.ResponseTopic, false
	}
	if p.Has(proto.PropCorrelationData) {
		out.CorrelationData, empty = string(p.CorrelationData), false
	}
	if len(p.User) > 0 {
		out.UserProperties, empty = make(map[string]string, len(p.User)), false
		for _, u := range p.User {
			out.UserProperties[u.Key] = u.Value
		}
	}
	if empty {
		return nil
	}
	return &out
}

// packet turns a publish request into the PUBLISH the broker routes; the broker
// checks the topic and the rest.
func (req *PublishRequest) packet() (*proto.Publish, error) {
	p := &proto.Publish{Topic: req.Topic, Retain: req.Retain}
	if req.QoS < 0 || req.QoS > 2 {
		return nil, fmt.Errorf("%w: qos %d: must be 0, 1 or 2", node.ErrInvalid, req.QoS)
	}
	p.QoS = byte(req.QoS)
	switch req.PayloadEncoding {
	case "", EncodingPlain:
		p.Payload = []byte(req.Payload)
	case EncodingBase64:
		b, err := base64.StdEncoding.DecodeString(req.Payload)
		if err != nil {
			return nil, fmt.Errorf("%w: payload: %w", node.ErrInvalid, err)
		}
		p.Payload = b
	default:
		return nil, fmt.Errorf("%w: payload_encoding %q: must be plain or base64", node.ErrInvalid, req.PayloadEncoding)
	}
	if pr := req.Properties; pr != nil {
		props := &p.Props
		if v := pr.PayloadFormatIndicator; v != nil {
			if *v != 0 && *v != 1 {
				return nil, fmt.Errorf("%w: payload_format_indicator %d: must be 0 or 1", node.ErrInvalid, *v)
			}
			props.PayloadFormat = byte(*v)
			props.Set(proto.PropPayloadFormat)
		}
		if v := pr.MessageExpiryInterval; v != nil {
			props.MessageExpiry = *v
			props.Set(proto.PropMessageExpiry)
		}
		if pr.ContentType != "" {
			props.ContentType = pr.ContentType
			props.Set(proto.PropContentType)
		}
		if pr.ResponseTopic != "" {
			if err := proto.ValidTopicName(pr.ResponseTopic); err != nil { // [MQTT-3.3.2-13]
				return nil, fmt.Errorf("%w: response_topic: %w", node.ErrInvalid, err)
			}
			props.ResponseTopic = pr.ResponseTopic
			props.Set(proto.PropResponseTopic)
		}
		if pr.CorrelationData != "" {
			props.CorrelationData = []byte(pr.CorrelationData)
			props.Set(proto.PropCorrelationData)
		}
		// A JSON object has no order: user properties go out sorted by name, so the
		// same request always gives the same packet.
		for _, k := range slices.Sorted(maps.Keys(pr.UserProperties)) {
			props.User = append(props.User, proto.UserProperty{Key: k, Value: pr.UserProperties[k]})
		}
	}
	return p, nil
}
