package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/skein-mq/skein/cluster/peerpb"
)

// TakeOver implements node.Cluster: every other live node closes clientID's
// connection and hands over the session it held (resume) or discards it.
func (c *Cluster) TakeOver(ctx context.Context, clientID string, resume bool) (state []byte, contended bool, err error) {
	others := c.members.aliveOthers()
	if len(others) == 0 {
		return nil, false, nil
	}
	type result struct {
		state     []byte
		contended bool
		err       error
	}
	results := make(chan result, len(others))
	for _, n := range others {
		go func() {
			p, err := c.peer(n)
			if err != nil {
				results <- result{err: err}
				return
			}
			res, err := p.client.TakeOver(ctx, &peerpb.TakeOverRequest{ClientId: clientID, Requester: c.name, Resume: resume})
			if err != nil {
				results <- result{err: fmt.Errorf("take over %q from %s: %w", clientID, n, err)}
				return
			}
			results <- result{state: res.Session, contended: res.Contended}
		}()
	}
	var errs []error
	for range others {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
		}
		contended = contended || r.contended
		if len(r.state) > 0 && state == nil {
			state = r.state
		}
	}
	return state, contended, errors.Join(errs...)
}
