package session

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Spool layout, beside the session buckets (see store.go):
//
//	spool/<peer>/<seq>  -> one record, in seq order; the bucket goes when it empties
//	meta/spool-id       -> this file's spool identity, random, made once
//	meta/spool-seq      -> the newest seq ever appended (8 bytes), so seqs never go
//	                       back, even once every record was deleted
//
// Seqs are one counter for every peer of the file: a peer's records have increasing,
// not consecutive, seqs.
var (
	bucketSpool = []byte("spool")
	keySpoolID  = []byte("spool-id")
	keySpoolSeq = []byte("spool-seq")
)

// SpoolConfig bounds what a Spool holds for one peer. Past a bound the oldest records
// are dropped, and counted.
type SpoolConfig struct {
	// MaxMessages is the most records held per peer (default 100000).
	MaxMessages int
	// MaxBytes is the most record bytes held per peer (default 256 MiB); 0 means no
	// bound beyond MaxMessages.
	MaxBytes int64
}

// DefaultSpoolConfig returns the documented defaults.
func DefaultSpoolConfig() SpoolConfig {
	return SpoolConfig{MaxMessages: 100_000, MaxBytes: 256 << 20}
}

// Validate checks the bounds.
func (c SpoolConfig) Validate() error {
	var errs []error
	if c.MaxMessages < 1 {
		errs = append(errs, fmt.Errorf("max messages %d: must be at least 1", c.MaxMessages))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max bytes %d: must not be negative", c.MaxBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool config: %w", err)
	}
	return nil
}

// SpoolRecord is one record read back from a Spool.
type SpoolRecord struct {
	Seq  uint64
	Data []byte
}

// SpoolStats are one peer's figures.
type SpoolStats struct {
	// Depth and Bytes are what is held now.
	Depth int
	Bytes int64
	// Spooled and Dropped count records appended, and records dropped by the
	// bounds, since the spool was opened.
	Spooled, Dropped uint64
}

// Spool keeps ordered records per peer in the Store's file: what a cluster node
// holds for another node it cannot reach, so a restart does not lose it. The
// records are opaque bytes (this package must not know the cluster's wire format).
//
// Writes go through the Store's group commit: Append, Delete and Drop return at
// once with a ticket for Store.Wait. An in-memory index (seq and size of every
// record) keeps the bounds and the figures without reading the file. Safe for
// concurrent use.
type Spool struct {
	store *Store
	cfg   SpoolConfig
	id    string

	mu    sync.Mutex // guards last and peers
	last  uint64     // newest seq handed out
	peers map[string]*spoolPeer
}

// spoolPeer is the index of one peer's records. Records leave from the front only
// (acknowledged, or dropped as the oldest), so the index is a queue.
type spoolPeer struct {
	recs  []spoolRec // oldest first, from head on
	head  int
	bytes int64
	// ticket is the newest write of this peer's records: a Read waits for it, so it
	// sees every append and no record already deleted.
	ticket            uint64
	appended, dropped uint64
}

type spoolRec struct {
	seq  uint64
	size int64
}

func (p *spoolPeer) depth() int { return len(p.recs) - p.head }

// popFront removes the oldest record from the index.
func (p *spoolPeer) popFront() spoolRec {
	r := p.recs[p.head]
	p.head++
	p.bytes -= r.size
	if p.head == len(p.recs) {
		p.recs, p.head = p.recs[:0], 0
	} else if p.head > 1024 && p.head*2 > len(p.recs) {
		p.recs = append(p.recs[:0], p.recs[p.head:]...) // compact what was popped
		p.head = 0
	}
	return r
}

// OpenSpool loads the spool index of st, creating the spool's identity on first
// use. Records beyond cfg's bounds (lowered since they were written) are dropped
// and counted. A record key that cannot be read fails the open: the broker must not
// start with messages it answered for silently gone.
func OpenSpool(st *Store, cfg SpoolConfig) (sp *Spool, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a damaged file faults: see openBolt
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("session store %s is corrupt (%v): restore it from a backup or move it away", st.path, r)
		}
	}()
	sp = &Spool{store: st, cfg: cfg, peers: map[string]*spoolPeer{}}
	err = st.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySpoolID); v != nil {
			sp.id = string(v)
		} else {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("spool id: %w", err)
			}
			sp.id = hex.EncodeToString(b[:])
			if err := meta.Put(keySpoolID, []byte(sp.id)); err != nil {
				return err
			}
		}
		if v := meta.Get(keySpoolSeq); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("%w: spool seq %x", errRecord, v)
			}
			sp.last = binary.BigEndian.Uint64(v)
		}
		root, err := tx.CreateBucketIfNotExists(bucketSpool)
		if err != nil {
			return err
		}
		return root.ForEachBucket(func(name []byte) error {
			p := &spoolPeer{}
			err := root.Bucket(name).ForEach(func(k, v []byte) error {
				if len(k) != 8 {
					return fmt.Errorf("%w: spool record key %x", errRecord, k)
				}
				seq := binary.BigEndian.Uint64(k)
				sp.last = max(sp.last, seq)
				p.recs = append(p.recs, spoolRec{seq: seq, size: int64(len(v))})
				p.bytes += int64(len(v))
				return nil
			})
			if err != nil {
				return fmt.Errorf("spool of %q: %w", name, err)
			}
			sp.peers[string(name)] = p
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("session store %s: %w", st.path, err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for name, p := range sp.peers {
		if gone := sp.trimLocked(p); len(gone) > 0 {
			p.ticket = st.c.enqueue(deleteSpoolRecs(name, gone))
		}
	}
	return sp, nil
}

// ID returns the spool's identity: it outlives restarts of the node, and changes
// only with a new data file, when seqs start again from 1.
func (s *Spool) ID() string { return s.id }

// Append adds data as peer's newest record and returns its seq and the ticket of
// its write. Past the bounds the oldest records are dropped (the newest is always
// kept). data must not be modified afterwards.
func (s *Spool) Append(peer string, data []byte) (seq, ticket uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[peer]
	if p == nil {
		p = &spoolPeer{}
		s.peers[peer] = p
	}
	s.last++
	seq = s.last
	size := int64(len(data))
	p.recs = append(p.recs, spoolRec{seq: seq, size: size})
	p.bytes += size
	p.appended++
	gone := s.trimLocked(p)
	key, name := seqKey(seq), []byte(peer)
	p.ticket = s.store.c.enqueue(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketSpool).CreateBucketIfNotExists(name)
		if err != nil {
			return fmt.Errorf("spool for %q: %w", name, err)
		}
		if err := b.Put(key, data); err != nil {
			return fmt.Errorf("spool for %q: %w", name, err)
		}
		for _, g := range gone {
			if err := b.Delete(seqKey(g)); err != nil {
				return fmt.Errorf("spool for %q: %w", name, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keySpoolSeq, key)
	})
	return seq, p.ticket
}

// trimLocked drops the oldest records while p is past a bound, keeping at least
// one, and returns their seqs. s.mu is held.
func (s *Spool) trimLocked(p *spoolPeer) []uint64 {
	var gone []uint64
	for p.depth() > 1 && (p.depth() > s.cfg.MaxMessages || (s.cfg.MaxBytes > 0 && p.bytes > s.cfg.MaxBytes)) {
		gone = append(gone, p.popFront().seq)
		p.dropped++
	}
	return gone
}

// deleteSpoolRecs deletes records of one peer, and its bucket once empty.
func deleteSpoolRecs(peer string, seqs []uint64) func(*bolt.Tx) error {
	name := []byte(peer)
	return func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSpool)
		b := root.Bucket(name)
		if b == nil {
			return nil
		}
		for _, seq := range seqs {
			if err := b.Delete(seqKey(seq)); err != nil {
				return fmt.Errorf("spool for %q: %w", name, err)
			}
		}
		if k, _ := b.Cursor().First(); k == nil {
			return root.DeleteBucket(name)
		}
		return nil
	}
}

// Read returns up to maxN of peer's records with a seq above after, oldest first,
// stopping early once they pass maxBytes (the first one is always returned). It
// waits until the peer's writes so far are on disk, so it sees every record
// appended before the call.
func (s *Spool) Read(ctx context.Context, peer string, after uint64, maxN int, maxBytes int64) ([]SpoolRecord, error) {
	s.mu.Lock()
	p := s.peers[peer]
	var ticket uint64
	if p != nil {
		ticket = p.ticket
	}
	s.mu.Unlock()
	if p == nil {
		return nil, nil
	}
	if err := s.store.Wait(ctx, ticket); err != nil {
		return nil, fmt.Errorf("read the spool of %q: %w", peer, err)
	}
	var out []SpoolRecord
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSpool).Bucket([]byte(peer))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var size int64
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < maxN; k, v = c.Next() {
			if len(out) > 0 && size+int64(len(v)) > maxBytes {
				break
			}
			size += int64(len(v))
			// Values point into the file's memory map, valid only in this transaction.
			out = append(out, SpoolRecord{Seq: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the spool of %q: %w", peer, err)
	}
	return out, nil
}

// view runs a read transaction, turning a fault on a damaged file into an error.
func (s *Spool) view(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // see openBolt
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("session store %s is corrupt (%v)", s.store.path, r)
		}
	}()
	return s.store.db.View(fn)
}

// Delete removes peer's records up to seq upTo (acknowledged by the peer) and
// returns the write's ticket (0 when nothing was held up to there).
func (s *Spool) Delete(peer string, upTo uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[peer]
	if p == nil {
		return 0
	}
	var gone []uint64
	for p.depth() > 0 && p.recs[p.head].seq <= upTo {
		gone = append(gone, p.popFront().seq)
	}
	if len(gone) == 0 {
		return 0
	}
	p.ticket = s.store.c.enqueue(deleteSpoolRecs(peer, gone))
	return p.ticket
}

// Drop deletes everything held for peer (its routes were purged: it is not coming
// back as the same member) and returns the write's ticket. Its counters stay.
func (s *Spool) Drop(peer string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[peer]
	if p == nil {
		return 0
	}
	p.recs, p.head, p.bytes = nil, 0, 0
	name := []byte(peer)
	p.ticket = s.store.c.enqueue(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketSpool).DeleteBucket(name)
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	return p.ticket
}

// Depth returns how many records are held for peer.
func (s *Spool) Depth(peer string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[peer]; p != nil {
		return p.depth()
	}
	return 0
}

// Last returns the seq of peer's newest record, 0 when none is held.
func (s *Spool) Last(peer string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[peer]; p != nil && p.depth() > 0 {
		return p.recs[len(p.recs)-1].seq
	}
	return 0
}

// Peers returns the peers with records held, sorted.
func (s *Spool) Peers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, p := range s.peers {
		if p.depth() > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Stats returns the figures of every peer that has had records since the spool
// was opened, or has some now.
func (s *Spool) Stats() map[string]SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]SpoolStats, len(s.peers))
	for name, p := range s.peers {
		out[name] = SpoolStats{Depth: p.depth(), Bytes: p.bytes, Spooled: p.appended, Dropped: p.dropped}
	}
	return out
}
