package cluster

import "time"

// tombstoneLoop forgets the retained tombstones older than cfg.TombstoneRetention,
// looking every eighth of it: a tombstone lives between the retention and an eighth
// more. Its stamp is a wall-clock time (a hybrid clock), so age is measured with this
// node's clock; a tombstone from a node whose clock runs ahead lives that much longer,
// which only makes it safer.
func (c *Cluster) tombstoneLoop() {
	every := c.cfg.TombstoneRetention / 8
	for {
		if n := c.local.ExpireTombstones(time.Now().Add(-c.cfg.TombstoneRetention).UnixNano()); n > 0 {
			c.log.Debug("forgot expired retained tombstones", "tombstones", n)
		}
		if !c.sleep(every) {
			return
		}
	}
}
