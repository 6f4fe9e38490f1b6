package cluster

import (
	"context"
	"fmt"

	"github.com/skein-mq/skein/cluster/peerpb"
	"github.com/skein-mq/skein/route"
	"github.com/skein-mq/skein/session"
)

// Relay implements node.Cluster: it sends one delivery for clientID, whose session
// moved to node to, on the forward stream to that node, behind everything this
// node forwarded there before. d nil is the end marker.
func (c *Cluster) Relay(to, clientID string, d *session.Delivery) <-chan error {
	r := &peerpb.Relay{ClientId: clientID}
	var data []byte
	if d == nil {
		r.End = true
	} else {
		var err error
		if data, err = session.MarshalMessage(d.Msg); err != nil {
			return failed(fmt.Errorf("cluster: encode a relayed message: %w", err))
		}
		r.Qos, r.Retain, r.Shared = uint32(d.QoS), d.Retain, d.Shared
		for _, id := range d.SubIDs {
			r.SubIds = append(r.SubIds, int64(id))
		}
	}
	var done func(error)
	var ch chan error
	if d != nil && d.QoS > 0 {
		ch = make(chan error, 1)
		done = func(err error) { ch <- err }
	}
	c.enqueueTo(to, &peerpb.Delivery{Message: data, Relay: r}, done)
	if ch == nil {
		return nil
	}
	return ch
}

func failed(err error) <-chan error {
	ch := make(chan error, 1)
	ch <- err
	return ch
}

// receiveRelay hands a relayed delivery (or the end marker) to the local node; see
// Local.DeliverRelayed for what it returns.
func (c *Cluster) receiveRelay(ctx context.Context, r *peerpb.Relay, data []byte) (uint64, <-chan error, error) {
	if r.End {
		c.local.HandoverEnded(r.ClientId)
		return 0, nil, nil
	}
	m, err := session.UnmarshalMessage(data)
	if err != nil {
		return 0, nil, fmt.Errorf("corrupt relayed message: %w", err)
	}
	d := session.Delivery{Msg: m, QoS: byte(min(r.Qos, 2)), Retain: r.Retain, Shared: r.Shared}
	for _, id := range r.SubIds {
		d.SubIDs = append(d.SubIDs, int(id))
	}
	t, relayed := c.local.DeliverRelayed(ctx, r.ClientId, d)
	return t, relayed, nil
}

// HasRoute implements node.Cluster.
func (c *Cluster) HasRoute(node, filter, group string) bool {
	return c.table.Has(filter, route.Key{Node: node, Group: group})
}
