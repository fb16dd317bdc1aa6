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

// NamesID is the ID of the scrub.Mitigation that holds the addresses of a
// diversion's names that are steered and counted but not dropped:
// "<cuid>/<mid>/names".
func NamesID(k divert.Key) string { return k.String() + "/names" }

// Mitigations maps one diversion to the node's filters. The targets are
// the diversion's prefixes; the scope becomes one drop rule named "scope":
//
//   - no ports and no protocols: drop everything to the targets;
//   - protocols only: drop those protocols;
//   - ports (with or without protocols): drop those destination ports of
//     the protocols (of TCP, UDP, UDP-Lite, SCTP and DCCP when none is
//     named; a rule with ports matches no other protocol), as FlowSpec
//     does with the same scope (package flowspec).
//
// With names NamesScrubOnlyNamedPorts (the default), the addresses that
// came from names (Diversion.FromNames) of a scope with no ports and no
// protocols are not dropped: they go into a second mitigation, NamesID,
// with no rule, whose counter still counts the traffic steered to them. A
// name's address inside a prefix the client named directly stays with
// that prefix.
//
// Traffic to the targets that the rule does not match passes. The
// counters of the drop rule are the mitigation's dropped packets and bytes.
func Mitigations(d divert.Diversion, names string) []node.Mitigation {
	kept, spared := splitNamed(d, names)
	var out []node.Mitigation
	if len(kept) > 0 {
		m := node.Mitigation{ID: ID(d.Key), Targets: kept}
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
		out = append(out, m)
	}
	if len(spared) > 0 {
		out = append(out, node.Mitigation{ID: NamesID(d.Key), Targets: spared, Rules: []node.Rule{}})
	}
	return out
}

// splitNamed separates d's masked targets into those the drop rule covers
// and the addresses of names it spares (see Mitigations).
func splitNamed(d divert.Diversion, names string) (kept, spared []netip.Prefix) {
	spare := names != NamesDropAll && len(d.Ports) == 0 && len(d.Protocols) == 0
	var named []netip.Prefix
	for _, p := range d.Prefixes {
		if spare && slices.Contains(d.FromNames, p) {
			named = append(named, p.Masked())
		} else {
			kept = append(kept, p.Masked())
		}
	}
	for _, p := range named {
		if slices.ContainsFunc(kept, p.Overlaps) {
			kept = append(kept, p)
		} else {
			spared = append(spared, p)
		}
	}
	return kept, spared
}

// Desired builds the node state of the diversions, ordered by key; a
// data-channel filter becomes a node ACL (see ACL), which may overlap
// anything, or is skipped with the reason the node cannot run it. A
// diversion whose targets overlap one earlier in that order is left out
// (the node refuses overlapping mitigations; the earlier one already
// filters those addresses) and returned in skipped with the reason.
func Desired(all []divert.Diversion, names string) (d node.Desired, skipped map[divert.Key]string) {
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b divert.Diversion) int {
		return cmp.Or(cmp.Compare(a.Key.CUID, b.Key.CUID), cmp.Compare(a.Key.MID, b.Key.MID), cmp.Compare(a.Key.ACL, b.Key.ACL))
	})
	d.Mitigations = []node.Mitigation{}
	exact := map[netip.Prefix]divert.Key{}  // included targets
	inside := map[netip.Prefix]divert.Key{} // every supernet of an included target
	for _, dv := range sorted {
		if isACL(dv) {
			a, err := ACL(dv)
			if err != nil {
				if skipped == nil {
					skipped = map[divert.Key]string{}
				}
				skipped[dv.Key] = err.Error()
				continue
			}
			d.ACLs = append(d.ACLs, a)
			continue
		}
		ms := Mitigations(dv, names)
		var targets []netip.Prefix
		for _, m := range ms {
			targets = append(targets, m.Targets...)
		}
		if len(targets) == 0 {
			continue
		}
		if why := overlap(targets, exact, inside); why != "" {
			if skipped == nil {
				skipped = map[divert.Key]string{}
			}
			skipped[dv.Key] = why
			continue
		}
		for _, p := range targets {
			exact[p] = dv.Key
			for b := p.Bits(); b >= 0; b-- {
				q, _ := p.Addr().Prefix(b)
				if _, ok := inside[q]; !ok {
					inside[q] = dv.Key
				}
			}
		}
		d.Mitigations = append(d.Mitigations, ms...)
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
