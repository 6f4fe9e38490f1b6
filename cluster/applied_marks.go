package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// What a node applied of each sender's forwarded batches is written to its store
// (session.Store.PutApplied) after the batch's deliveries, so that after a restart
// it still skips a batch applied before the crash whose acknowledgement never
// reached the sender: the sender sends it again (from memory, with the same
// incarnation and batch id, or from its spool with the same seqs), and a QoS 2
// message must not be delivered twice. Only batches that wrote something durable
// need it: the rest only reached sessions that a restart ends anyway.

// appliedRecord is one sender's mark on disk.
type appliedRecord struct {
	from     string // the sender's incarnation
	batch    uint64 // the last batch of it applied
	spoolID  string // the sender's spool, and the last record of it applied
	spoolSeq uint64
}

const appliedRecordV1 = 1

var errAppliedRecord = errors.New("cluster: corrupt applied mark")

func (r appliedRecord) encode() []byte {
	b := []byte{appliedRecordV1}
	b = binary.AppendUvarint(b, uint64(len(r.from)))
	b = append(b, r.from...)
	b = binary.BigEndian.AppendUint64(b, r.batch)
	b = binary.AppendUvarint(b, uint64(len(r.spoolID)))
	b = append(b, r.spoolID...)
	return binary.BigEndian.AppendUint64(b, r.spoolSeq)
}

func decodeAppliedRecord(b []byte) (appliedRecord, error) {
	var r appliedRecord
	if len(b) == 0 || b[0] != appliedRecordV1 {
		return r, errAppliedRecord
	}
	b = b[1:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	u64 := func() (uint64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, true
	}
	var ok [4]bool
	r.from, ok[0] = str()
	r.batch, ok[1] = u64()
	r.spoolID, ok[2] = str()
	r.spoolSeq, ok[3] = u64()
	if ok != [4]bool{true, true, true, true} || len(b) != 0 {
		return appliedRecord{}, errAppliedRecord
	}
	return r, nil
}

// persistMark writes what this node applied of sender's batches, after the batch
// id of run from and, when not 0, spool record spoolTo of spool spoolID, and
// returns the write's ticket (0 without a store).
func (c *Cluster) persistMark(sender, from string, batch uint64, spoolID string, spoolTo uint64) uint64 {
	if c.cfg.Store == nil {
		return 0
	}
	rec := appliedRecord{from: from, batch: batch}
	c.applied.mu.Lock()
	if m, ok := c.applied.spool[sender]; ok {
		rec.spoolID, rec.spoolSeq = m.id, m.seq
	}
	c.applied.mu.Unlock()
	if spoolTo != 0 && (spoolID != rec.spoolID || spoolTo > rec.spoolSeq) {
		rec.spoolID, rec.spoolSeq = spoolID, spoolTo
	}
	return c.cfg.Store.PutApplied(sender, rec.encode())
}

// loadMarks fills a with the marks in the store, as of the last run.
func (a *appliedBatches) loadMarks(marks map[string][]byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for sender, b := range marks {
		r, err := decodeAppliedRecord(b)
		if err != nil {
			return fmt.Errorf("applied mark of %s: %w", sender, err)
		}
		if r.from != "" {
			a.last[r.from] = appliedMark{id: r.batch}
		}
		if r.spoolID != "" {
			a.spool[sender] = spoolMark{id: r.spoolID, seq: r.spoolSeq}
		}
	}
	return nil
}
