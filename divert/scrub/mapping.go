package scrub

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/levee-dots/levee/divert"
	node "github.com/levee-dots/levee/scrub"
)

// RuleName is the name of the one rule a diversion becomes.
const RuleName = "scope"

// ID is the scrub.Mitigation ID of a diversion: "<cuid>/<mid>".
func ID(k divert.Key) string { return k.String() }

// Mitigation maps one diversion to the node's filter. The targets are the
// diversion's prefixes; the scope becomes one drop rule named "scope":
//
//   - no ports and no protocols: drop everything to the targets;
//   - protocols only: drop those protocols;
//   - ports (with or without protocols): drop those destination ports of
//     the protocols (of TCP, UDP, UDP-Lite, SCTP and DCCP when none is
//     named; a rule with ports matches no other protocol), as FlowSpec
//     does with the same scope (package flowspec).
//
// Traffic to the targets that the rule does not match passes. The
// counters of the drop rule are the mitigation's dropped packets and bytes.
func Mitigation(d divert.Diversion) node.Mitigation {
	m := node.Mitigation{ID: ID(d.Key)}
	for _, p := range d.Prefixes {
		m.Targets = append(m.Targets, p.Masked())
	}
	r := node.Rule{Name: RuleName, Action: node.ActionDrop}
	r.Protocols = slices.Clone(d.Protocols)
	for _, pr := range d.Ports {
		hi := pr.LowerPort
		if pr.UpperPort != nil {
			hi = *pr.UpperPort
		}
		r.DstPorts = append(r.DstPorts, node.PortRange{Low: pr.LowerPort, High: hi})
	}
	m.Rules = []node.Rule{r}
	return m
}

// Desired builds the node state of the diversions, ordered by key. A
// diversion whose targets overlap one earlier in that order is left out
// (the node refuses overlapping mitigations; the earlier one already
// filters those addresses) and returned in skipped with the reason.
func Desired(all []divert.Diversion) (d node.Desired, skipped map[divert.Key]string) {
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b divert.Diversion) int {
		return cmp.Or(cmp.Compare(a.Key.CUID, b.Key.CUID), cmp.Compare(a.Key.MID, b.Key.MID))
	})
	d.Mitigations = []node.Mitigation{}
	exact := map[netip.Prefix]divert.Key{}  // included targets
	inside := map[netip.Prefix]divert.Key{} // every supernet of an included target
	for _, dv := range sorted {
		m := Mitigation(dv)
		if len(m.Targets) == 0 {
			continue
		}
		if why := overlap(m.Targets, exact, inside); why != "" {
			if skipped == nil {
				skipped = map[divert.Key]string{}
			}
			skipped[dv.Key] = why
			continue
		}
		for _, p := range m.Targets {
			exact[p] = dv.Key
			for b := p.Bits(); b >= 0; b-- {
				q, _ := p.Addr().Prefix(b)
				if _, ok := inside[q]; !ok {
					inside[q] = dv.Key
				}
			}
		}
		d.Mitigations = append(d.Mitigations, m)
	}
	return d, skipped
}

// overlap says which included target one of targets overlaps ("" none):
// an included prefix containing it is one of its supernets in exact, one
// inside it has it as a supernet (inside).
func overlap(targets []netip.Prefix, exact, inside map[netip.Prefix]divert.Key) string {
	for _, p := range targets {
		for b := p.Bits(); b >= 0; b-- {
			q, _ := p.Addr().Prefix(b)
			if k, ok := exact[q]; ok {
				return fmt.Sprintf("target %s overlaps %s of mitigation %s, which the node filters", p, q, k)
			}
		}
		if k, ok := inside[p]; ok {
			return fmt.Sprintf("target %s overlaps a target of mitigation %s, which the node filters", p, k)
		}
	}
	return ""
}
