package bgp

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/flowspec"
)

// Data-channel ACLs (RFC 8783 §7.3). An active ACL reaches the backend as a
// diversion whose Key names the ACL and whose Filters hold its entries in
// order. Each drop or rate-limit entry becomes one FlowSpec rule (RFC 8955
// for IPv4, RFC 8956 for IPv6, by the family of its destination) with
// traffic-rate-bytes 0 (discard) or traffic-rate-bytes N (rate-limit, RFC
// 8955 §7.3), announced like the rules of a mitigation: only to the
// neighbors that receive flowspec, counted against their flowspec-budget,
// shared with any mitigation or ACL that asks for the same rule, replaced
// make-before-break when the ACL changes.
//
// An ACL is evaluated entry by entry, the first match deciding (RFC 8519
// §4, RFC 8783 §7.3); FlowSpec rules are not: a router orders them by
// their components (RFC 8955 §5.1), whatever order they were sent in. So
// an accept entry, which only means something before the entries it
// exempts traffic from, cannot be expressed as FlowSpec rules. Accept
// entries announce nothing, and the outcome's detail says so: where an
// accept entry overlaps a later drop or rate-limit entry, the routers
// apply that rule to the accepted traffic too. An ACL of accept entries
// only is not handled by this backend (Status 0). For the same reason the
// detail names the pairs of overlapping drop and rate-limit entries that
// routers apply in the other order than the ACL (see acl_order.go), and
// an entry with the same match as an earlier one announces nothing: in the
// ACL it never matches, and as the same NLRI its rule would replace the
// earlier entry's at the routers.
//
// Safety: every entry's destination must lie inside the diversion's
// Prefixes (the destinations the client owns) and be no shorter than
// min-prefix-length-v4/-v6; an ACL with an entry that is not is refused
// whole, by Check and by Apply, and nothing of it is announced.

// isACL reports whether d is a data-channel filter rather than a mitigation.
func isACL(d divert.Diversion) bool { return d.Key.ACL != "" || len(d.Filters) > 0 }

// aclPlan builds the FlowSpec rules of an ACL diversion, one per entry that
// is not an accept (more when a long port list is split, see fitMatch). An
// entry with the same match as an earlier one never matches in the ACL,
// whose first matching entry decides, and announces nothing: as the same
// NLRI, its rule would replace the earlier one's at the routers.
func (b *Backend) aclPlan(d divert.Diversion) (*plan, error) {
	pl := &plan{kind: KindFlowSpec}
	var accepts, shadowed []string
	var kept []int // the entries announced
	first := map[string]int{}
	for i, f := range d.Filters {
		if err := b.checkFilter(d, f); err != nil {
			return nil, fmt.Errorf("acl %q entry %d {%s}: %w", d.Key.ACL, i+1, f.Match, err)
		}
		j, dup := first[f.Match.String()]
		if !dup {
			first[f.Match.String()] = i + 1
		}
		switch {
		case f.Accept:
			if !dup {
				accepts = append(accepts, fmt.Sprintf("%d {%s}", i+1, f.Match))
			}
			continue
		case dup:
			shadowed = append(shadowed, fmt.Sprintf("%d (the match of entry %d)", i+1, j))
			continue
		}
		comm, err := actionCommunity(f.Action)
		if err != nil {
			return nil, fmt.Errorf("acl %q entry %d: %w", d.Key.ACL, i+1, err)
		}
		for _, m := range fitMatch(f.Match) {
			r, err := flowRoute(KindFlowSpec, m, f.Action, comm)
			if err != nil {
				return nil, fmt.Errorf("acl %q entry %d: %w", d.Key.ACL, i+1, err)
			}
			pl.routes = append(pl.routes, r)
		}
		kept = append(kept, i)
	}
	var notes []string
	if len(accepts) > 0 {
		notes = append(notes, fmt.Sprintf("accept entries %s not enforced by FlowSpec: routers order FlowSpec rules by their components "+
			"(RFC 8955 §5.1), not by the ACL's order, so an accept-list cannot be expressed as FlowSpec rules; "+
			"where an accept entry overlaps a drop or rate-limit rule, that rule applies to the accepted traffic too",
			strings.Join(accepts, ", ")))
	}
	if len(shadowed) > 0 {
		notes = append(notes, fmt.Sprintf("entries %s announce nothing: an earlier entry has the same match and decides first", strings.Join(shadowed, ", ")))
	}
	if r := reordered(d.Filters, kept); len(r) > 0 {
		notes = append(notes, fmt.Sprintf("where entries overlap, routers apply their rules in RFC 8955 §5.1 order, not the ACL's: %s", strings.Join(r, ", ")))
	}
	pl.note = strings.Join(notes, "; ")
	return pl, nil
}

// reordered names each pair of announced entries with different actions
// that may match the same packets and that routers apply in the other
// order than the ACL ("entry 3 before entry 2").
func reordered(filters []divert.Filter, kept []int) []string {
	var out []string
	for x, i := range kept {
		for _, j := range kept[x+1:] {
			a, b := filters[i], filters[j]
			if a.Action.String() == b.Action.String() || !mayOverlap(a.Match, b.Match) {
				continue
			}
			if flowCompare(b.Match, a.Match) < 0 {
				out = append(out, fmt.Sprintf("entry %d before entry %d", j+1, i+1))
			}
		}
	}
	return out
}

// checkFilter refuses an entry that cannot be announced, or that would
// filter traffic to a destination the diversion does not carry.
func (b *Backend) checkFilter(d divert.Diversion, f divert.Filter) error {
	m := f.Match
	if err := m.Validate(); err != nil {
		return err
	}
	dst := m.Destination.Masked()
	if !covered(d.Prefixes, dst) {
		return fmt.Errorf("destination %s is not inside the diversion's prefixes [%s]: no rule is announced for a destination it does not carry",
			dst, joinPrefixes(d.Prefixes))
	}
	min := b.cfg.MinPrefixV4
	if m.Family() == flowspec.IPv6 {
		min = b.cfg.MinPrefixV6
	}
	if dst.Bits() < min {
		return fmt.Errorf("destination %s is shorter than /%d, the shortest prefix this server diverts", dst, min)
	}
	if f.Accept {
		return nil
	}
	switch f.Action.Kind {
	case flowspec.Discard, flowspec.RateLimit:
		return nil
	case 0:
		return fmt.Errorf("no action: want drop or rate-limit")
	}
	return fmt.Errorf("action %s: an ACL entry drops or rate-limits (RFC 8783 §7.3)", f.Action)
}

// covered reports whether p lies inside one of prefixes (of its own IP
// version: an IPv4-mapped IPv6 prefix is IPv6).
func covered(prefixes []netip.Prefix, p netip.Prefix) bool {
	for _, o := range prefixes {
		o = o.Masked()
		if o.Addr().Is4() == p.Addr().Is4() && o.Bits() <= p.Bits() && o.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
