package scrub

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// anonSet is an anonymous constant set a rule looks up.
type anonSet struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// ruleSpec is one nftables rule with the anonymous sets it needs.
type ruleSpec struct {
	exprs []expr.Any
	sets  []anonSet
}

// builder allocates set IDs, unique within one batch.
type builder struct {
	table  *nftables.Table
	nextID uint32
}

func (b *builder) id() uint32 { b.nextID++; return b.nextID }

func (b *builder) anon(key nftables.SetDatatype, interval bool, elems []nftables.SetElement) anonSet {
	return anonSet{set: &nftables.Set{Table: b.table, ID: b.id(), Name: "__set%d", Anonymous: true,
		Constant: true, Interval: interval, KeyType: key}, elems: elems}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// prefixElems are the interval-set elements of ps (sorted, disjoint).
func prefixElems(ps []netip.Prefix) []nftables.SetElement {
	var out []nftables.SetElement
	for _, p := range ps {
		out = append(out, nftables.SetElement{Key: p.Addr().AsSlice()})
		if end := lastAddr(p).Next(); end.IsValid() && end.Is4() == p.Addr().Is4() {
			out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func portElems(rs []PortRange) []nftables.SetElement {
	var out []nftables.SetElement
	for _, r := range rs {
		out = append(out, nftables.SetElement{Key: be16(r.Low)})
		if r.High != 0xffff {
			out = append(out, nftables.SetElement{Key: be16(r.High + 1), IntervalEnd: true})
		}
	}
	return out
}

func prefixMask(p netip.Prefix) []byte {
	n := 4
	if p.Addr().Is6() {
		n = 16
	}
	m := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// matchAddr loads the source (or destination) address and matches it
// against ps: one prefix by mask and compare, several by an interval set.
func (b *builder) matchAddr(rs *ruleSpec, ps []netip.Prefix, v6 bool) {
	b.matchAddrAt(rs, ps, v6, false)
}

// matchAddrAt matches the destination (dst) or source address against ps.
func (b *builder) matchAddrAt(rs *ruleSpec, ps []netip.Prefix, v6, dst bool) {
	off, n := uint32(12), uint32(4)
	key := nftables.TypeIPAddr
	if v6 {
		off, n, key = 8, 16, nftables.TypeIP6Addr
	}
	if dst {
		off += n
	}
	rs.exprs = append(rs.exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
	if len(ps) == 1 {
		p := ps[0]
		if p.Bits() != int(n)*8 {
			rs.exprs = append(rs.exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n,
				Mask: prefixMask(p), Xor: make([]byte, n)})
		}
		rs.exprs = append(rs.exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()})
		return
	}
	s := b.anon(key, true, prefixElems(ps))
	rs.sets = append(rs.sets, s)
	rs.exprs = append(rs.exprs, &expr.Lookup{SourceRegister: 1, SetID: s.set.ID, SetName: s.set.Name})
}

func (b *builder) matchProto(rs *ruleSpec, protos []uint8) {
	rs.exprs = append(rs.exprs, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1})
	b.matchOctet(rs, nftables.TypeInetProto, protos)
}

// matchOctet compares the octet loaded in register 1 with vals: one
// comparison for a single value, else a lookup in an anonymous set of typ.
func (b *builder) matchOctet(rs *ruleSpec, typ nftables.SetDatatype, vals []uint8) {
	if len(vals) == 1 {
		rs.exprs = append(rs.exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{vals[0]}})
		return
	}
	var el []nftables.SetElement
	for _, v := range vals {
		el = append(el, nftables.SetElement{Key: []byte{v}})
	}
	s := b.anon(typ, false, el)
	rs.sets = append(rs.sets, s)
	rs.exprs = append(rs.exprs, &expr.Lookup{SourceRegister: 1, SetID: s.set.ID, SetName: s.set.Name})
}

func (b *builder) matchPorts(rs *ruleSpec, off uint32, prs []PortRange) {
	rs.exprs = append(rs.exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2})
	if len(prs) == 1 {
		if r := prs[0]; r.Low == r.High {
			rs.exprs = append(rs.exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(r.Low)})
		} else {
			rs.exprs = append(rs.exprs, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(r.Low), ToData: be16(r.High)})
		}
		return
	}
	s := b.anon(nftables.TypeInetService, true, portElems(prs))
	rs.sets = append(rs.sets, s)
	rs.exprs = append(rs.exprs, &expr.Lookup{SourceRegister: 1, SetID: s.set.ID, SetName: s.set.Name})
}

// rule translates r for one family (packets reach the mitigation's chain
// only when their destination is one of its targets).
func (b *builder) rule(r *rulePlan, counter string, v6 bool) ruleSpec {
	var rs ruleSpec
	if src := r.sources(v6); len(src) > 0 {
		b.matchAddr(&rs, src, v6)
	}
	protos := r.Protocols
	if len(protos) == 0 && len(r.SrcPorts)+len(r.DstPorts) > 0 {
		protos = portProtocols
	}
	if len(protos) > 0 {
		b.matchProto(&rs, protos)
	}
	if len(r.SrcPorts) > 0 {
		b.matchPorts(&rs, 0, r.SrcPorts)
	}
	if len(r.DstPorts) > 0 {
		b.matchPorts(&rs, 2, r.DstPorts)
	}
	if r.Fragment && !v6 { // ip frag-off & 0x1fff != 0
		rs.exprs = append(rs.exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0x1f, 0xff}, Xor: []byte{0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0}})
	}
	if r.MinLength != 0 || r.MaxLength != 0 {
		// meta length is host order; Cmp gt/lt compares big-endian bytes.
		rs.exprs = append(rs.exprs, &expr.Meta{Key: expr.MetaKeyLEN, Register: 1},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4})
		if r.MinLength != 0 {
			rs.exprs = append(rs.exprs, &expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: be32(uint32(r.MinLength))})
		}
		if r.MaxLength != 0 {
			rs.exprs = append(rs.exprs, &expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: be32(uint32(r.MaxLength))})
		}
	}
	if r.RatePPS != 0 {
		rs.exprs = append(rs.exprs, &expr.Limit{Type: expr.LimitTypePkts, Rate: r.RatePPS, Over: true,
			Unit: expr.LimitTimeSecond, Burst: uint32(min(r.RatePPS, 1<<20))})
	}
	v := expr.VerdictDrop
	if r.Action == ActionAccept {
		v = expr.VerdictAccept
	}
	rs.exprs = append(rs.exprs, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counter}, &expr.Verdict{Kind: v})
	return rs
}

// dispatch is the ingress-chain rule: meta protocol, daddr, vmap lookup.
func dispatch(set *nftables.Set, v6 bool) []expr.Any {
	proto, off, n := []byte{0x08, 0x00}, uint32(16), uint32(4)
	if v6 {
		proto, off, n = []byte{0x86, 0xdd}, 24, 16
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: proto},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetID: set.ID, SetName: set.Name},
	}
}

// render prints rs in a compact, readable form for tests and logs.
func render(rs ruleSpec) string {
	var parts []string
	sets := map[uint32]anonSet{}
	for _, s := range rs.sets {
		sets[s.set.ID] = s
	}
	for _, e := range rs.exprs {
		parts = append(parts, renderExpr(e, sets))
	}
	return strings.Join(parts, " ")
}

func renderExpr(e expr.Any, sets map[uint32]anonSet) string {
	switch e := e.(type) {
	case *expr.Meta:
		return fmt.Sprintf("meta(%d)", e.Key)
	case *expr.Payload:
		base := map[expr.PayloadBase]string{expr.PayloadBaseNetworkHeader: "nh", expr.PayloadBaseTransportHeader: "th"}[e.Base]
		return fmt.Sprintf("%s[%d:%d]", base, e.Offset, e.Offset+e.Len)
	case *expr.Bitwise:
		return fmt.Sprintf("&%x", e.Mask)
	case *expr.Byteorder:
		return "hton"
	case *expr.Cmp:
		op := map[expr.CmpOp]string{expr.CmpOpEq: "==", expr.CmpOpNeq: "!=", expr.CmpOpGte: ">=", expr.CmpOpLte: "<=",
			expr.CmpOpLt: "<", expr.CmpOpGt: ">"}[e.Op]
		return fmt.Sprintf("%s%x", op, e.Data)
	case *expr.Range:
		return fmt.Sprintf("in[%x-%x]", e.FromData, e.ToData)
	case *expr.Lookup:
		s, ok := sets[e.SetID]
		if !ok {
			return "@" + e.SetName
		}
		var el []string
		for _, x := range s.elems {
			if x.IntervalEnd {
				el = append(el, fmt.Sprintf("<%x", x.Key))
			} else {
				el = append(el, fmt.Sprintf("%x", x.Key))
			}
		}
		return "in{" + strings.Join(el, ",") + "}"
	case *expr.Limit:
		return fmt.Sprintf("limit-over(%d/s,burst %d)", e.Rate, e.Burst)
	case *expr.Objref:
		return "counter(" + e.Name + ")"
	case *expr.Verdict:
		switch e.Kind {
		case expr.VerdictDrop:
			return "drop"
		case expr.VerdictAccept:
			return "accept"
		}
		return fmt.Sprintf("verdict(%d) %s", e.Kind, e.Chain)
	}
	return fmt.Sprintf("%T", e)
}
