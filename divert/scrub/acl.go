package scrub

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/flowspec"
	node "github.com/levee-dots/levee/scrub"
	"github.com/levee-dots/levee/scrub/agent"
)

// isACL reports whether d is a data-channel filter.
func isACL(d divert.Diversion) bool { return d.Key.ACL != "" || len(d.Filters) > 0 }

// EntryName is the node entry name of filter i of d: a digest of the
// filter, so that its counter follows the filter when others are
// inserted or removed ("-2", "-3" for repeats of the same filter).
func EntryName(d divert.Diversion, i int) string {
	name := func(f divert.Filter) string {
		h := sha256.Sum256(fmt.Appendf(nil, "%+v", f))
		return "f" + hex.EncodeToString(h[:6])
	}
	n, dup := name(d.Filters[i]), 1
	for j := range i {
		if name(d.Filters[j]) == n {
			dup++
		}
	}
	if dup > 1 {
		n += fmt.Sprintf("-%d", dup)
	}
	return n
}

// ACL maps a data-channel filter to the node's ACL: ID "<cuid>/acl/<name>",
// group the cuid (an accept ends the client's filters), targets the
// diversion's prefixes, one entry per Filter in order: Discard drops,
// RateLimit rate-limits, Accept accepts. A filter the node cannot run (a
// destination outside the prefixes, another action, a component it does
// not match: port of either direction, DSCP, flow label, ranges of ICMP
// values or protocols wider than 256) refuses the whole ACL with the reason.
func ACL(d divert.Diversion) (node.ACL, error) {
	a := node.ACL{ID: ID(d.Key), Group: d.Key.CUID}
	for _, p := range d.Prefixes {
		a.Targets = append(a.Targets, p.Masked())
	}
	for i, f := range d.Filters {
		e, err := entry(d, f)
		if err != nil {
			return node.ACL{}, fmt.Errorf("filter %d: %w", i, err)
		}
		e.Name = EntryName(d, i)
		a.Entries = append(a.Entries, e)
	}
	return a, nil
}

func entry(d divert.Diversion, f divert.Filter) (node.Entry, error) {
	m := f.Match
	var e node.Entry
	switch {
	case f.Action.Kind == flowspec.RateLimit:
		r := float64(f.Action.RateBytes)
		if !(r > 0) || math.IsInf(r, 0) {
			return e, fmt.Errorf("rate-limit %v: want a rate above 0 bytes per second", f.Action.RateBytes)
		}
		e.Action, e.RateBytes = node.ActionRateLimit, uint64(math.Ceil(r))
	case f.Accept:
		e.Action = node.ActionAccept
	case f.Action.Kind == flowspec.Discard:
		e.Action = node.ActionDrop
	default:
		return e, fmt.Errorf("action %s is not run on scrubbing nodes", f.Action.Kind)
	}
	if !m.Destination.IsValid() || !slices.ContainsFunc(d.Prefixes, func(p netip.Prefix) bool {
		return p.Addr().Is4() == m.Destination.Addr().Is4() && p.Bits() <= m.Destination.Bits() && p.Contains(m.Destination.Addr())
	}) {
		return e, fmt.Errorf("destination %s is not one of the ACL's destinations", m.Destination)
	}
	e.Destinations = []netip.Prefix{m.Destination.Masked()}
	if m.Source.IsValid() {
		e.Sources = []netip.Prefix{m.Source.Masked()}
	}
	var unsupported []string
	if len(m.Ports) > 0 {
		unsupported = append(unsupported, "port (either direction)")
	}
	if len(m.DSCP) > 0 {
		unsupported = append(unsupported, "dscp")
	}
	if len(m.FlowLabels) > 0 {
		unsupported = append(unsupported, "flow-label")
	}
	if len(m.Fragments) > 0 && m.Family() == flowspec.IPv6 {
		unsupported = append(unsupported, "IPv6 fragment")
	}
	if len(m.PacketLengths) > 1 {
		unsupported = append(unsupported, "more than one packet-length range")
	}
	if len(unsupported) > 0 {
		return e, fmt.Errorf("the nodes do not match %s", strings.Join(unsupported, ", "))
	}
	e.Protocols = bytesOf(m.Protocols)
	e.ICMPTypes, e.ICMPCodes = bytesOf(m.ICMPTypes), bytesOf(m.ICMPCodes)
	for _, r := range m.SrcPorts {
		e.SrcPorts = append(e.SrcPorts, node.PortRange{Low: uint16(r.Lo), High: uint16(r.Hi)})
	}
	for _, r := range m.DstPorts {
		e.DstPorts = append(e.DstPorts, node.PortRange{Low: uint16(r.Lo), High: uint16(r.Hi)})
	}
	if len(m.PacketLengths) == 1 {
		e.MinLength, e.MaxLength = uint16(m.PacketLengths[0].Lo), uint16(m.PacketLengths[0].Hi)
	}
	e.TCPFlags, e.Fragments = terms(m.TCPFlags), terms(m.Fragments)
	return e, nil
}

// bytesOf lists the values of ranges of 8-bit fields.
func bytesOf(rs []flowspec.Range) []uint8 {
	var out []uint8
	for _, r := range rs {
		for v := r.Lo; v <= r.Hi && v <= 0xff; v++ {
			out = append(out, uint8(v))
		}
	}
	return out
}

func terms(ts []flowspec.BitTerm) []node.BitTerm {
	var out []node.BitTerm
	for _, t := range ts {
		out = append(out, node.BitTerm{Bits: t.Bits, Not: t.Not, Match: t.Match, And: t.And})
	}
	return out
}

// measureACLLocked takes one node's counters of the ACL d: per filter what
// its entry matched, and what the entries dropped.
func (b *Backend) measureACLLocked(nodeName string, d divert.Diversion, c agent.CountersResponse, at time.Time) {
	entries, ok := c.ACLs[ID(d.Key)]
	if !ok {
		return // not installed there (yet)
	}
	var drop countPair
	matched := make([]countPair, len(d.Filters))
	for i := range d.Filters {
		e := entries[EntryName(d, i)]
		matched[i] = countPair{e.Matched.Packets, e.Matched.Bytes}
		drop.pkts += e.Dropped.Packets
		drop.bytes += e.Dropped.Bytes
	}
	byNode := b.meters[d.Key]
	if byNode == nil {
		byNode = map[string]*meter{}
		b.meters[d.Key] = byNode
	}
	m := byNode[nodeName]
	if m == nil || len(m.matched) != len(matched) {
		m = &meter{drop: rateMeter{last: drop, total: drop}, at: at, matched: make([]rateMeter, len(matched))}
		for i, v := range matched {
			m.matched[i] = rateMeter{last: v, total: v}
		}
		byNode[nodeName] = m
		return
	}
	dt := at.Sub(m.at)
	m.drop.advance(drop, at, dt)
	for i, v := range matched {
		m.matched[i].advance(v, at, dt)
	}
	m.at = at
}
