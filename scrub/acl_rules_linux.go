package scrub

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// group is the ACLs of one Group in order: one chain per family, jumped
// to from the ingress chain for the union of their targets, ahead of the
// mitigations' maps.
type group struct {
	chain4, chain6     string
	targets4, targets6 []netip.Prefix
	entries            []*entryPlan
}

func groups(p *plan) []*group {
	var out []*group
	byName := map[string]*group{}
	for i := range p.acls {
		a := &p.acls[i]
		g := byName[a.group]
		if g == nil {
			g = &group{}
			g.chain4, g.chain6 = groupChains(a.group)
			byName[a.group] = g
			out = append(out, g)
		}
		g.targets4 = append(g.targets4, a.targets4...)
		g.targets6 = append(g.targets6, a.targets6...)
		for j := range a.entries {
			g.entries = append(g.entries, &a.entries[j])
		}
	}
	for _, g := range out {
		g.targets4, g.targets6 = merge(g.targets4), merge(g.targets6)
	}
	return out
}

// aclObjects adds the chains and counters the ACLs of p need to want.
func aclObjects(p *plan, chains, counters map[string]bool) {
	for _, g := range groups(p) {
		chains[g.chain4], chains[g.chain6] = true, true
		for _, e := range g.entries {
			counters[e.counter] = true
			if e.Action == ActionRateLimit {
				counters[e.drops] = true
				chains[e.chain] = true
			}
		}
	}
}

// aclBatch queues the ACL chains' rules and the ingress chain's jumps to
// them; it runs before the mitigations' dispatch rules are added.
func (n *NFT) aclBatch(c *nftables.Conn, b *builder, in installed, base *nftables.Chain, p *plan) (int, error) {
	t, ops := n.table, 0
	add := func(name string) *nftables.Chain {
		ch := &nftables.Chain{Name: name, Table: t}
		if !in.chains[name] {
			c.AddChain(ch)
			ops++
		}
		return ch
	}
	for _, g := range groups(p) {
		for _, e := range g.entries { // before the rules that goto them
			if e.Action != ActionRateLimit {
				continue
			}
			ch := add(e.chain)
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: limitExprs(e)})
			ops++
		}
		for _, fam := range []struct {
			chain   string
			targets []netip.Prefix
			v6      bool
		}{{g.chain4, g.targets4, false}, {g.chain6, g.targets6, true}} {
			ch := add(fam.chain)
			for _, e := range g.entries {
				if !e.hasFamily(fam.v6) {
					continue
				}
				for _, rs := range b.entryRules(e, fam.v6) {
					for _, s := range rs.sets {
						if err := c.AddSet(s.set, s.elems); err != nil {
							return 0, fmt.Errorf("scrub: ACL entry %q: %w", e.Name, err)
						}
						ops++
					}
					c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rs.exprs})
					ops++
				}
			}
			if len(fam.targets) == 0 {
				continue
			}
			var rs ruleSpec
			rs.exprs = append(rs.exprs, dispatch(&nftables.Set{}, fam.v6)[:2]...)
			b.matchAddrAt(&rs, fam.targets, fam.v6, true)
			rs.exprs = append(rs.exprs, &expr.Verdict{Kind: expr.VerdictJump, Chain: fam.chain})
			for _, s := range rs.sets {
				if err := c.AddSet(s.set, s.elems); err != nil {
					return 0, fmt.Errorf("scrub: ACL targets: %w", err)
				}
				ops++
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: base, Exprs: rs.exprs})
			ops++
		}
	}
	return ops, nil
}

// limitExprs is the rule of a rate-limit entry's chain: what is above the
// rate is counted and dropped; the rest reaches the end of the chain,
// which (entered by goto) returns to the ingress chain: accepted.
func limitExprs(e *entryPlan) []expr.Any {
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePktBytes, Rate: e.RateBytes, Over: true, Unit: expr.LimitTimeSecond},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: e.drops},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// entryRules translates e for one family: one rule per fragment class it
// matches (one when it matches no fragment bits), each ending in the
// entry's counter and its verdict.
func (b *builder) entryRules(e *entryPlan, v6 bool) []ruleSpec {
	var common ruleSpec
	dst := e.dst4
	if v6 {
		dst = e.dst6
	}
	b.matchAddrAt(&common, dst, v6, true)
	var src []netip.Prefix
	for _, s := range e.Sources {
		if s.Addr().Is6() == v6 {
			src = append(src, s)
		}
	}
	if len(src) > 0 {
		b.matchAddrAt(&common, src, v6, false)
	}
	protos := e.Protocols
	switch {
	case len(e.TCPFlags) > 0:
		protos = []uint8{6}
	case len(e.ICMPTypes)+len(e.ICMPCodes) > 0 && v6:
		protos = []uint8{58}
	case len(e.ICMPTypes)+len(e.ICMPCodes) > 0:
		protos = []uint8{1}
	case len(protos) == 0 && len(e.SrcPorts)+len(e.DstPorts) > 0:
		protos = portProtocols
	}
	if len(protos) > 0 {
		b.matchProto(&common, protos)
	}
	if len(e.SrcPorts) > 0 {
		b.matchPorts(&common, 0, e.SrcPorts)
	}
	if len(e.DstPorts) > 0 {
		b.matchPorts(&common, 2, e.DstPorts)
	}
	if len(e.ICMPTypes) > 0 {
		b.matchBytes(&common, 0, e.ICMPTypes)
	}
	if len(e.ICMPCodes) > 0 {
		b.matchBytes(&common, 1, e.ICMPCodes)
	}
	if e.tcpMask != 0 {
		b.matchTCPFlags(&common, e.tcpMask, e.tcpVals)
	}
	if e.MinLength != 0 || e.MaxLength != 0 {
		common.exprs = append(common.exprs, &expr.Meta{Key: expr.MetaKeyLEN, Register: 1},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4})
		if e.MinLength != 0 {
			common.exprs = append(common.exprs, &expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: be32(uint32(e.MinLength))})
		}
		if e.MaxLength != 0 {
			common.exprs = append(common.exprs, &expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: be32(uint32(e.MaxLength))})
		}
	}
	end := []expr.Any{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: e.counter}}
	switch e.Action {
	case ActionDrop:
		end = append(end, &expr.Verdict{Kind: expr.VerdictDrop})
	case ActionAccept:
		end = append(end, &expr.Verdict{Kind: expr.VerdictReturn})
	case ActionRateLimit:
		end = append(end, &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.chain})
	}
	if len(e.frags) == 0 {
		common.exprs = append(common.exprs, end...)
		return []ruleSpec{common}
	}
	var out []ruleSpec
	for _, fc := range e.frags {
		rs := ruleSpec{exprs: slices.Clone(common.exprs), sets: common.sets}
		rs.exprs = append(rs.exprs, fragExprs(fc)...)
		rs.exprs = append(rs.exprs, end...)
		out = append(out, rs)
	}
	return out
}

// fragExprs tests ip frag-off for one fragment class and its DF values.
func fragExprs(fc fragClass) []expr.Any {
	test := func(mask, val uint16, eq bool) []expr.Any {
		op := expr.CmpOpEq
		if !eq {
			op = expr.CmpOpNeq
		}
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: be16(mask), Xor: []byte{0, 0}},
			&expr.Cmp{Op: op, Register: 1, Data: be16(val)},
		}
	}
	var out []expr.Any
	switch fc.class {
	case fragNone:
		out = test(0x3fff, 0, true)
	case fragFirst:
		out = test(0x3fff, 0x2000, true)
	case fragMiddle:
		out = append(test(0x2000, 0x2000, true), test(0x1fff, 0, false)...)
	case fragLast:
		out = append(test(0x2000, 0, true), test(0x1fff, 0, false)...)
	}
	if len(fc.df) == 1 {
		v := uint16(0)
		if fc.df[0] {
			v = 0x4000
		}
		out = append(out, test(0x4000, v, true)...)
	}
	return out
}

// matchBytes matches one transport-header octet against values.
func (b *builder) matchBytes(rs *ruleSpec, off uint32, vals []uint8) {
	rs.exprs = append(rs.exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 1})
	b.matchOctet(rs, nftables.TypeICMPType, vals)
}

// matchTCPFlags matches th[12:14] & mask against vals (or, when fewer,
// the values of mask that are not in vals, inverted).
func (b *builder) matchTCPFlags(rs *ruleSpec, mask uint16, vals []uint16) {
	var all []uint16
	for sub := uint32(mask); ; sub = (sub - 1) & uint32(mask) {
		all = append(all, uint16(sub))
		if sub == 0 {
			break
		}
	}
	if len(vals) == len(all) {
		return // any flags
	}
	rs.exprs = append(rs.exprs,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 12, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: be16(mask), Xor: []byte{0, 0}})
	set, invert := vals, false
	if len(all)-len(vals) < len(vals) {
		set, invert = nil, true
		for _, v := range all {
			if !slices.Contains(vals, v) {
				set = append(set, v)
			}
		}
	}
	if len(set) == 1 {
		op := expr.CmpOpEq
		if invert {
			op = expr.CmpOpNeq
		}
		rs.exprs = append(rs.exprs, &expr.Cmp{Op: op, Register: 1, Data: be16(set[0])})
		return
	}
	var el []nftables.SetElement
	for _, v := range set {
		el = append(el, nftables.SetElement{Key: be16(v)})
	}
	s := b.anon(nftables.TypeInetService, false, el)
	rs.sets = append(rs.sets, s)
	rs.exprs = append(rs.exprs, &expr.Lookup{SourceRegister: 1, SetID: s.set.ID, SetName: s.set.Name, Invert: invert})
}

// aclCounters reports the entries' counters of the last Set from vals.
func aclCounters(p *plan, vals map[string]Count) map[string]map[string]ACLCount {
	out := map[string]map[string]ACLCount{}
	for _, a := range p.acls {
		m := map[string]ACLCount{}
		for _, e := range a.entries {
			c := ACLCount{Matched: vals[e.counter]}
			switch e.Action {
			case ActionDrop:
				c.Dropped = c.Matched
			case ActionRateLimit:
				c.Dropped = vals[e.drops]
			}
			m[e.Name] = c
		}
		out[a.id] = m
	}
	return out
}
