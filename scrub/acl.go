package scrub

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// ACL is one data-channel filter list (RFC 8783 §7.3, RFC 8519 matches)
// run on the node ahead of the mitigations: packets to Targets go through
// the Entries of every ACL of the same Group, in the order of Desired.ACLs
// and then of Entries; the first entry that matches decides. Drop drops,
// accept ends the group's filters and hands the packet on to the
// mitigations (and forwarding), rate-limit drops what is above its rate
// and hands on the rest as accept does. A packet no entry matches is
// handed on as well. Targets of ACLs may overlap each other and the
// mitigations' targets.
type ACL struct {
	// ID is stable across Sets, e.g. "<cuid>/acl/<name>"; counters are named from it.
	ID string `json:"id"`
	// Group is the client the ACL belongs to (its cuid): an accept ends
	// the evaluation of all the group's ACLs. Empty: the ACL is its own group.
	Group string `json:"group,omitempty"`
	// Targets are the destinations the ACL may filter; Set refuses an
	// entry with a destination outside them.
	Targets []netip.Prefix `json:"targets"`
	Entries []Entry        `json:"entries"`
}

// Entry is one access-control entry. Every non-empty field must match
// (AND); the values of a list are alternatives (OR).
type Entry struct {
	// Name is unique within the ACL and names the entry's counters.
	Name string `json:"name"`
	// Destinations lie inside the ACL's Targets; empty: all of them.
	Destinations []netip.Prefix `json:"destinations,omitempty"`
	Sources      []netip.Prefix `json:"sources,omitempty"`
	Protocols    []uint8        `json:"protocols,omitempty"`
	// SrcPorts and DstPorts as in Rule: TCP, UDP, UDP-Lite, SCTP and DCCP.
	SrcPorts []PortRange `json:"src-ports,omitempty"`
	DstPorts []PortRange `json:"dst-ports,omitempty"`
	// ICMPTypes and ICMPCodes match ICMP (IPv4) or ICMPv6 (IPv6).
	ICMPTypes []uint8 `json:"icmp-types,omitempty"`
	ICMPCodes []uint8 `json:"icmp-codes,omitempty"`
	// TCPFlags match the 12 flag bits of the TCP header (octets 12–13,
	// RFC 8783 flags-bitmask); a TCP-flags entry matches only TCP.
	TCPFlags []BitTerm `json:"tcp-flags,omitempty"`
	// Fragments match the fragment bits of IPv4 packets (FragDF, FragIsF,
	// FragFF, FragLF); such an entry matches no IPv6 packet.
	Fragments []BitTerm `json:"fragments,omitempty"`
	// MinLength and MaxLength bound the IP packet length (inclusive); 0: none.
	MinLength uint16 `json:"min-length,omitempty"`
	MaxLength uint16 `json:"max-length,omitempty"`
	// Action is "drop", "accept" or "rate-limit".
	Action string `json:"action"`
	// RateBytes is the rate of a rate-limit entry in bytes per second (L3).
	RateBytes uint64 `json:"rate-bytes,omitempty"`
}

// ActionRateLimit is the action of an Entry that drops what is above
// RateBytes and accepts the rest.
const ActionRateLimit = "rate-limit"

// BitTerm is one term of a bitmask match (RFC 8955 §4.2.1.2, RFC 8783
// operator): without Match it is true when any of Bits is set in the
// packet, with Match when all are; Not negates it. Terms are combined left
// to right, And by AND with the result so far, otherwise by OR.
type BitTerm struct {
	Bits  uint16 `json:"bits"`
	Not   bool   `json:"not,omitempty"`
	Match bool   `json:"match,omitempty"`
	And   bool   `json:"and,omitempty"`
}

// Fragment bits of Entry.Fragments (RFC 8955 §4.2.2.12).
const (
	FragDF  uint16 = 0x01
	FragIsF uint16 = 0x02
	FragFF  uint16 = 0x04
	FragLF  uint16 = 0x08
)

// DefaultMaxACLRules bounds the nftables rules of all ACL entries of a
// node (an entry is one rule, one more per fragment class it matches
// beyond the first). Each rule a packet passes costs about 10 ns, and only
// packets to the ACLs' targets pass them.
const DefaultMaxACLRules = 1024

// ACLCount is what one entry measured: Matched every packet it matched,
// Dropped those it dropped (drop: all of them; rate-limit: those above the
// rate; accept: none).
type ACLCount struct {
	Matched Count `json:"matched"`
	Dropped Count `json:"dropped"`
}

// aclPlan is a validated ACL.
type aclPlan struct {
	id                 string
	group              string
	targets4, targets6 []netip.Prefix
	entries            []entryPlan
}

// entryPlan is a validated Entry with its kernel names.
type entryPlan struct {
	Entry
	counter string // matched
	drops   string // rate-limit: dropped above the rate
	chain   string // rate-limit: the chain with the limit
	dst4    []netip.Prefix
	dst6    []netip.Prefix
	tcpMask uint16   // bits the TCP-flag terms look at; 0: none
	tcpVals []uint16 // values of flags&tcpMask that match
	frags   []fragClass
}

// fragClass is one IPv4 fragment class an entry matches, with the DF
// values it matches in it.
type fragClass struct {
	class int // fragNone, fragFirst, fragMiddle, fragLast
	df    []bool
}

const (
	fragNone = iota
	fragFirst
	fragMiddle
	fragLast
)

// classBits are the fragment bits of a packet of each class (without DF).
var classBits = [4]uint16{fragNone: 0, fragFirst: FragFF, fragMiddle: FragIsF, fragLast: FragIsF | FragLF}

// ACLCounterName and ACLDropCounterName name the counters of entry name of ACL id.
func ACLCounterName(id, name string) string     { return "a_" + hash(id, 16) + "_" + hash(name, 12) }
func ACLDropCounterName(id, name string) string { return "d_" + hash(id, 16) + "_" + hash(name, 12) }

func groupChains(group string) (string, string) {
	h := hash("group:"+group, 16)
	return "g4_" + h, "g6_" + h
}

func evalTerms(ts []BitTerm, v uint16) bool {
	res := false
	for i, t := range ts {
		r := v&t.Bits != 0
		if t.Match {
			r = v&t.Bits == t.Bits
		}
		if t.Not {
			r = !r
		}
		switch {
		case i == 0:
			res = r
		case t.And:
			res = res && r
		default:
			res = res || r
		}
	}
	return res
}

// tcpValues are the values of flags&mask for which ts holds.
func tcpValues(ts []BitTerm) (mask uint16, vals []uint16) {
	for _, t := range ts {
		mask |= t.Bits
	}
	for sub := uint32(mask); ; sub = (sub - 1) & uint32(mask) {
		if evalTerms(ts, uint16(sub)) {
			vals = append(vals, uint16(sub))
		}
		if sub == 0 {
			break
		}
	}
	slices.Sort(vals)
	return mask, vals
}

func fragClasses(ts []BitTerm) []fragClass {
	var out []fragClass
	for c, b := range classBits {
		var df []bool
		for _, d := range []bool{false, true} {
			v := b
			if d {
				v |= FragDF
			}
			if evalTerms(ts, v) {
				df = append(df, d)
			}
		}
		if len(df) > 0 {
			out = append(out, fragClass{c, df})
		}
	}
	return out
}

// rules is the number of nftables rules of the entry in one family.
func (e *entryPlan) rules() int { return max(1, len(e.frags)) }

func (c *compiler) acls(acls []ACL) ([]aclPlan, error) {
	limit := c.b.MaxACLRules
	if limit <= 0 {
		limit = DefaultMaxACLRules
	}
	ids, total := map[string]bool{}, 0
	var out []aclPlan
	for i, a := range acls {
		key := fmt.Sprintf("acls[%d]", i)
		if a.ID == "" || len(a.ID) > MaxIDBytes || ids[a.ID] {
			return nil, fieldErr(key+".id", "%q is empty, longer than %d bytes or used twice", a.ID, MaxIDBytes)
		}
		ids[a.ID] = true
		if len(a.Targets) == 0 {
			return nil, &FieldError{Path: key + ".targets", Mitigation: a.ID, Problem: "an ACL needs at least one target prefix"}
		}
		t4, t6, err := normPrefixes(key+".targets", a.Targets)
		if err != nil {
			err.Mitigation = a.ID
			return nil, err
		}
		ap := aclPlan{id: a.ID, group: a.Group, targets4: t4, targets6: t6}
		if ap.group == "" {
			ap.group = "acl:" + a.ID
		}
		names := map[string]bool{}
		for j, e := range a.Entries {
			ekey := fmt.Sprintf("%s.entries[%d]", key, j)
			ep, err := compileEntry(e, ap, c.b)
			if err != nil {
				fe := &FieldError{Path: ekey, Problem: err.Error()}
				if ferr, ok := err.(*FieldError); ok {
					fe.Path, fe.Problem = ekey+"."+ferr.Path, ferr.Problem
				}
				fe.Mitigation, fe.Rule = a.ID, e.Name
				return nil, fe
			}
			if names[e.Name] {
				return nil, &FieldError{Path: ekey + ".name", Mitigation: a.ID, Problem: fmt.Sprintf("%q is used twice in this ACL", e.Name)}
			}
			names[e.Name] = true
			ep.counter, ep.drops = ACLCounterName(a.ID, e.Name), ACLDropCounterName(a.ID, e.Name)
			ep.chain = "l_" + ep.drops[2:]
			for _, n := range []string{ep.counter, ep.drops} {
				if err := c.claim(n, a.ID+"/"+e.Name, ekey+".name", a.ID, e.Name); err != nil {
					return nil, err
				}
			}
			total += 2 * ep.rules() // both families
			if total > limit {
				return nil, &FieldError{Path: ekey, Mitigation: a.ID, Rule: e.Name,
					Problem: fmt.Sprintf("the ACLs need more than %d nftables rules, which is what this node accepts (max-acl-rules)", limit)}
			}
			ap.entries = append(ap.entries, ep)
		}
		out = append(out, ap)
	}
	return out, nil
}

// compileEntry checks e against its ACL and normalises it.
func compileEntry(e Entry, a aclPlan, b Bounds) (entryPlan, error) {
	if e.Name == "" {
		return entryPlan{}, fieldErr("name", "empty")
	}
	switch e.Action {
	case ActionDrop, ActionAccept:
		if e.RateBytes != 0 {
			return entryPlan{}, fieldErr("rate-bytes", "only with action %q", ActionRateLimit)
		}
	case ActionRateLimit:
		if e.RateBytes == 0 {
			return entryPlan{}, fieldErr("rate-bytes", "a rate-limit entry needs a rate above 0 bytes per second")
		}
	default:
		return entryPlan{}, fieldErr("action", "%q: use %q, %q or %q", e.Action, ActionDrop, ActionAccept, ActionRateLimit)
	}
	ep := entryPlan{Entry: e}
	d4, d6, ferr := normPrefixes("destinations", e.Destinations)
	if ferr != nil {
		return entryPlan{}, ferr
	}
	for _, d := range append(slices.Clone(d4), d6...) {
		if !slices.ContainsFunc(append(slices.Clone(a.targets4), a.targets6...), func(t netip.Prefix) bool {
			return t.Addr().Is4() == d.Addr().Is4() && t.Bits() <= d.Bits() && t.Contains(d.Addr())
		}) {
			return entryPlan{}, fieldErr("destinations", "%s is not inside the ACL's targets", d)
		}
	}
	if len(e.Destinations) == 0 {
		d4, d6 = a.targets4, a.targets6
	}
	ep.dst4, ep.dst6 = d4, d6
	if len(e.Sources) > b.MaxSources {
		return entryPlan{}, fieldErr("sources", "%d is more than this node accepts (%d)", len(e.Sources), b.MaxSources)
	}
	s4, s6, ferr := normPrefixes("sources", e.Sources)
	if ferr != nil {
		return entryPlan{}, ferr
	}
	ep.Sources = append(s4, s6...)
	if err := checkPorts(Rule{Protocols: e.Protocols, SrcPorts: e.SrcPorts, DstPorts: e.DstPorts, Fragment: len(e.Fragments) > 0}); err != nil {
		return entryPlan{}, err
	}
	if e.MinLength != 0 && e.MaxLength != 0 && e.MinLength > e.MaxLength {
		return entryPlan{}, fieldErr("min-length", "%d is above max-length %d", e.MinLength, e.MaxLength)
	}
	kinds := 0
	if len(e.SrcPorts)+len(e.DstPorts) > 0 {
		kinds++
	}
	if len(e.ICMPTypes)+len(e.ICMPCodes) > 0 {
		kinds++
		for k, p := range e.Protocols {
			if p != 1 && p != 58 {
				return entryPlan{}, fieldErr(fmt.Sprintf("protocols[%d]", k), "protocol %d with ICMP type or code never matches", p)
			}
		}
	}
	if len(e.TCPFlags) > 0 {
		kinds++
		if len(e.Protocols) > 0 && !slices.Contains(e.Protocols, 6) {
			return entryPlan{}, fieldErr("tcp-flags", "TCP flags with protocols that do not include TCP never match")
		}
		if err := checkTerms("tcp-flags", e.TCPFlags, 0x0fff); err != nil {
			return entryPlan{}, err
		}
		ep.tcpMask, ep.tcpVals = tcpValues(e.TCPFlags)
		if len(ep.tcpVals) == 0 {
			return entryPlan{}, fieldErr("tcp-flags", "no combination of flags matches")
		}
	}
	if kinds > 1 {
		return entryPlan{}, fieldErr("protocols", "ports, ICMP and TCP flags are of different protocols and cannot match together")
	}
	if len(e.Fragments) > 0 {
		if len(e.TCPFlags)+len(e.ICMPTypes)+len(e.ICMPCodes) > 0 {
			return entryPlan{}, fieldErr("fragments", "a fragment match with transport fields never matches a non-first fragment")
		}
		if err := checkTerms("fragments", e.Fragments, FragDF|FragIsF|FragFF|FragLF); err != nil {
			return entryPlan{}, err
		}
		ep.frags = fragClasses(e.Fragments)
		if len(ep.frags) == 0 {
			return entryPlan{}, fieldErr("fragments", "no fragment state matches")
		}
		if len(ep.frags) == 4 && len(ep.frags[0].df) == 2 {
			ep.frags = nil // every packet
			ep.Fragments = nil
		}
	}
	ep.Protocols = dedupe(e.Protocols)
	ep.SrcPorts, ep.DstPorts = mergePorts(e.SrcPorts), mergePorts(e.DstPorts)
	ep.ICMPTypes, ep.ICMPCodes = dedupe(e.ICMPTypes), dedupe(e.ICMPCodes)
	return ep, nil
}

func checkTerms(name string, ts []BitTerm, valid uint16) *FieldError {
	for i, t := range ts {
		if i == 0 && t.And {
			return fieldErr(fmt.Sprintf("%s[0]", name), "the first term cannot be ANDed")
		}
		if t.Bits == 0 || t.Bits&^valid != 0 {
			return fieldErr(fmt.Sprintf("%s[%d]", name, i), "bits %#x: want a non-empty subset of %#x", t.Bits, valid)
		}
	}
	if n := bits.OnesCount16(valid); n > 12 {
		return fieldErr(name, "too many bits")
	}
	return nil
}

// hasFamily reports whether the entry can match packets of the family.
func (e *entryPlan) hasFamily(v6 bool) bool {
	dst := e.dst4
	if v6 {
		dst = e.dst6
	}
	if len(dst) == 0 || (v6 && len(e.Fragments) > 0) {
		return false
	}
	if len(e.Sources) == 0 {
		return true
	}
	return slices.ContainsFunc(e.Sources, func(s netip.Prefix) bool { return s.Addr().Is6() == v6 })
}
