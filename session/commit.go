package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// ErrStoreClosed is returned when waiting on a store that was closed.
var ErrStoreClosed = errors.New("session: store closed")

// committer is the group commit: writes from every connection queue up while a
// transaction commits, and the next transaction takes all of them at once, so the
// number of fsyncs follows the disk's speed, not the message rate. There is no
// artificial delay: at low load a write commits alone and at once.
//
// Each write gets a ticket, increasing in enqueue order. Writes commit in ticket
// order, so "ticket t is durable" means every write up to t is.
type committer struct {
	db  *bolt.DB
	log *slog.Logger

	// gate keeps a group of writes in one transaction: writers of a group hold it
	// shared while they enqueue, and the loop takes it exclusively to cut a batch.
	// Go's RWMutex lets a waiting Lock stop new RLocks, so groups cannot starve it.
	gate sync.RWMutex

	mu       sync.Mutex // guards everything below
	pending  []func(*bolt.Tx) error
	enqueued uint64        // ticket of the newest write
	durable  uint64        // every write up to this ticket is on disk
	changed  chan struct{} // closed and replaced whenever durable moves or the committer fails
	err      error         // a failed commit: the store stops promising durability
	closed   bool
	wake     chan struct{} // capacity 1: pending is non-empty or closed is set
	done     chan struct{}

	// Batches and Writes count commits and the writes they carried, for the
	// batch-size figures in metrics and BENCHMARKS.md.
	Batches, Writes atomic.Int64
}

func newCommitter(db *bolt.DB, log *slog.Logger) *committer {
	c := &committer{db: db, log: log, changed: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.loop()
	return c
}

// enqueue queues a write and returns its ticket. It never blocks on the disk: the
// caller may hold a session lock.
func (c *committer) enqueue(fn func(*bolt.Tx) error) uint64 {
	c.mu.Lock()
	c.pending = append(c.pending, fn)
	c.enqueued++
	t := c.enqueued
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return t
}

// wait blocks until ticket t is durable, the store fails or closes, or ctx ends.
func (c *committer) wait(ctx context.Context, t uint64) error {
	for {
		c.mu.Lock()
		durable, err, closed, ch := c.durable, c.err, c.closed, c.changed
		c.mu.Unlock()
		switch {
		case durable >= t:
			return nil
		case err != nil:
			return err
		case closed:
			return ErrStoreClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *committer) loop() {
	defer close(c.done)
	var batch []func(*bolt.Tx) error
	for {
		c.mu.Lock()
		for len(c.pending) == 0 && !c.closed {
			c.mu.Unlock()
			<-c.wake
			c.mu.Lock()
		}
		if len(c.pending) == 0 && c.closed {
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.gate.Lock() // no group is half enqueued
		c.mu.Lock()
		batch, c.pending = c.pending, batch[:0]
		c.mu.Unlock()
		c.gate.Unlock()

		err := c.db.Update(func(tx *bolt.Tx) error {
			for _, fn := range batch {
				if err := fn(tx); err != nil {
					// One bad record must not lose the others in the batch: the
					// write is logged and skipped.
					c.log.Error("store write failed", "err", err)
				}
			}
			return nil
		})
		c.Batches.Add(1)
		c.Writes.Add(int64(len(batch)))

		c.mu.Lock()
		switch {
		case err != nil:
			c.err = fmt.Errorf("session store commit: %w", err)
			c.log.Error("store commit failed: acknowledgements that wait for the disk will fail", "err", err)
		case c.err == nil:
			c.durable += uint64(len(batch))
			// After a failure durable stays where it was: counting later batches
			// would carry it past the failed batch's tickets, as if those had
			// reached the disk.
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		clear(batch)
	}
}

// close commits what is queued and stops.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}
