package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/skein-mq/skein/cluster/peerpb"
)

// TakeOver implements node.Cluster: every other live node closes clientID's
// connection and hands over the session it held (resume) or discards it.
func (c *Cluster) TakeOver(ctx context.Context, clientID string, resume bool) ([]byte, error) {
	others := c.members.aliveOthers()
	if len(others) == 0 {
		return nil, nil
	}
	type result struct {
		state []byte
		err   error
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
			results <- result{state: res.Session}
		}()
	}
	var state []byte
	var errs []error
	for range others {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
		}
		if len(r.state) > 0 && state == nil {
			state = r.state
		}
	}
	return state, errors.Join(errs...)
}
