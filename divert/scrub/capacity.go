package scrub

import (
	"fmt"
	"strings"

	"github.com/levee-dots/levee/divert"
)

// Capacity hysteresis: a node over capacity is back under it once the
// offered load has been below calmFraction of every configured capacity
// for calmPolls polls in a row.
const (
	calmFraction = 0.9
	calmPolls    = 2
)

// load is what a node was offered and whether that exceeds its capacity;
// part of nodeState, guarded by Backend.mu.
type load struct {
	bps, pps uint64 // offered at the last read: sum of the mitigations' seen rates
	over     bool
	calm     int // consecutive polls below calmFraction while over
}

// loadLocked sums what node n was offered at its last read and updates
// whether it is over its capacity.
func (b *Backend) loadLocked(n *nodeState) {
	l := &n.load
	l.bps, l.pps = 0, 0
	for k := range b.active {
		if m := b.meters[k][n.cfg.Name]; m != nil {
			bps, pps := m.offered()
			l.bps, l.pps = l.bps+bps, l.pps+pps
		}
	}
	cb, cp := n.cfg.CapacityBPS, n.cfg.CapacityPPS
	if cb == 0 && cp == 0 {
		return
	}
	exceeds := (cb > 0 && l.bps > cb) || (cp > 0 && l.pps > cp)
	calm := (cb == 0 || float64(l.bps) < calmFraction*float64(cb)) && (cp == 0 || float64(l.pps) < calmFraction*float64(cp))
	switch {
	case exceeds:
		if !l.over {
			b.log.Warn("node over capacity", "node", n.cfg.Name, "bps", l.bps, "pps", l.pps, "capacity-bps", cb, "capacity-pps", cp)
		}
		l.over, l.calm = true, 0
	case l.over && calm:
		l.calm++
		if l.calm >= calmPolls {
			l.over, l.calm = false, 0
			b.log.Info("node under capacity again", "node", n.cfg.Name, "bps", l.bps, "pps", l.pps)
		}
	case l.over:
		l.calm = 0
	}
}

// overLocked says why k exceeds capability ("" it does not): each node
// that is over its capacity and was offered traffic to k's targets, with
// the offered load in the dimension nearest its capacity; and those nodes.
func (b *Backend) overLocked(k divert.Key) (string, []string) {
	var why, at []string
	for _, n := range b.nodes {
		m := b.meters[k][n.cfg.Name]
		if !n.load.over || n.err != nil || m == nil {
			continue
		}
		if bps, pps := m.offered(); bps == 0 && pps == 0 {
			continue
		}
		l, c := n.load, n.cfg
		at = append(at, c.Name)
		rb, rp := 0.0, 0.0
		if c.CapacityBPS > 0 {
			rb = float64(l.bps) / float64(c.CapacityBPS)
		}
		if c.CapacityPPS > 0 {
			rp = float64(l.pps) / float64(c.CapacityPPS)
		}
		if rb >= rp {
			why = append(why, fmt.Sprintf("%s: %s offered, capacity %s", c.Name, formatRate(l.bps, "bps"), formatRate(c.CapacityBPS, "bps")))
		} else {
			why = append(why, fmt.Sprintf("%s: %s offered, capacity %s", c.Name, formatRate(l.pps, "pps"), formatRate(c.CapacityPPS, "pps")))
		}
	}
	return strings.Join(why, "; "), at
}

// ratesLocked is the note of k's drop rates summed over the nodes ("" not
// measured yet): "dropping 800 kpps (6.4 Gbps) now, 650 kpps (5.2 Gbps)
// 5-min avg".
func (b *Backend) ratesLocked(k divert.Key) string {
	var bps, pps, abps, apps uint64
	rated, averaged := false, false
	for _, m := range b.meters[k] {
		if m.drop.rated {
			bps, pps, rated = bps+m.drop.bps, pps+m.drop.pps, true
		}
		if ab, ap, ok := m.drop.avg.rate(); ok {
			abps, apps, averaged = abps+ab, apps+ap, true
		}
	}
	if !rated && !averaged {
		return ""
	}
	return fmt.Sprintf("dropping %s (%s) now, %s (%s) 5-min avg",
		formatRate(pps, "pps"), formatRate(bps, "bps"), formatRate(apps, "pps"), formatRate(abps, "bps"))
}
