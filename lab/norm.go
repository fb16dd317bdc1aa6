package lab

import (
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// This file turns each daemon's spelling of communities, FlowSpec components
// and extended communities into the forms documented on Route.

// fsItem is one FlowSpec operator/value pair.
type fsItem struct {
	and bool   // ANDed with the previous item
	op  string // numeric: = > >= < <= != true false; bitmask: "" = ! !=
	val string // decimal, or the daemon's text when it could not be read
}

// bitmaskComponents use the bitmask operator (RFC 8955 4.2.1.2).
var bitmaskComponents = map[string]bool{"tcp-flags": true, "fragment": true}

// numericOp returns the canonical numeric operator for lt/gt/eq bits.
func numericOp(lt, gt, eq bool) string {
	return [8]string{"false", "=", ">", ">=", "<", "<=", "!=", "true"}[b2i(lt)<<2|b2i(gt)<<1|b2i(eq)]
}

// bitmaskOp returns the canonical bitmask operator for the not/match bits.
func bitmaskOp(not, match bool) string {
	return [4]string{"", "=", "!", "!="}[b2i(not)<<1|b2i(match)]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// symbolsOp reads an operator written with <, >, = and ! ("<>" and "!="
// both mean not equal; "" means false).
func symbolsOp(s string) (string, bool) {
	switch s {
	case "true", "false":
		return s, true
	case "!=":
		return "!=", true
	}
	var lt, gt, eq bool
	for _, c := range s {
		switch c {
		case '<':
			lt = true
		case '>':
			gt = true
		case '=':
			eq = true
		default:
			return "", false
		}
	}
	return numericOp(lt, gt, eq), true
}

// formatItems renders items in the canonical text.
func formatItems(comp string, items []fsItem) string {
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			if it.and {
				b.WriteByte('&')
			} else {
				b.WriteByte(' ')
			}
		}
		op := it.op
		if bitmaskComponents[comp] {
			if v, err := strconv.ParseUint(it.val, 10, 64); err == nil && bits.OnesCount64(v) == 1 {
				switch op { // for one bit, "any of" and "all of" are the same test
				case "":
					op = "="
				case "!=":
					op = "!"
				}
			}
		} else if op == "true" || op == "false" {
			b.WriteString(op)
			continue
		}
		b.WriteString(op)
		b.WriteString(it.val)
	}
	return b.String()
}

// fsPrefix normalises a FlowSpec prefix with an optional IPv6 offset.
func fsPrefix(p string, offset int) string {
	if pf, err := netip.ParsePrefix(strings.TrimSpace(p)); err == nil {
		p = pf.String()
	}
	if offset != 0 {
		return fmt.Sprintf("%s offset %d", p, offset)
	}
	return p
}

// Value names ExaBGP prints, per component.
var fsNames = map[string]map[string]uint64{
	"protocol": {"icmp": 1, "igmp": 2, "tcp": 6, "egp": 8, "udp": 17, "rsvp": 46, "gre": 47, "esp": 50,
		"ah": 51, "ospf": 89, "ipip": 94, "pim": 103, "sctp": 132, "icmpv6": 58, "ipv6-icmp": 58},
	"icmp-type": {"echo-reply": 0, "unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
		"router-advertisement": 9, "router-solicit": 10, "time-exceeded": 11, "parameter-problem": 12,
		"timestamp": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16, "mask-request": 17,
		"mask-reply": 18, "traceroute": 30, "experimental-mobility": 41, "extended-echo-request": 42,
		"extended-echo-reply": 43, "experimental-one": 253, "experimental-two": 254},
	"icmp-code": {"network-unreachable": 0, "redirect-for-network": 0, "ttl-eq-zero-during-transit": 0,
		"host-unreachable": 1, "redirect-for-host": 1, "ttl-eq-zero-during-reassembly": 1,
		"required-option-missing": 1, "protocol-unreachable": 2, "redirect-for-tos-and-net": 2,
		"ip-header-bad": 2, "port-unreachable": 3, "redirect-for-tos-and-host": 3, "fragmentation-needed": 4,
		"source-route-failed": 5, "destination-network-unknown": 6, "destination-host-unknown": 7,
		"source-host-isolated": 8, "destination-network-prohibited": 9, "destination-host-prohibited": 10,
		"network-unreachable-for-tos": 11, "host-unreachable-for-tos": 12,
		"communication-prohibited-by-filtering": 13, "host-precedence-violation": 14,
		"precedence-cutoff-in-effect": 15},
	"tcp-flags": {"fin": 1, "syn": 2, "rst": 4, "push": 8, "ack": 16, "urg": 32, "urgent": 32, "ece": 64,
		"cwr": 128, "ns": 256},
	"fragment": {"not-a-fragment": 0, "dont-fragment": 1, "is-fragment": 2, "first-fragment": 4,
		"last-fragment": 8},
}

// namedValue reads a decimal number or a (possibly "+"-joined) name.
func namedValue(comp, s string) string {
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return s
	}
	var v uint64
	for _, part := range strings.Split(s, "+") {
		n, ok := fsNames[comp][strings.ToLower(part)]
		if !ok {
			return s
		}
		v |= n
	}
	return strconv.FormatUint(v, 10)
}

// hexOrDec reads "0x1f" or "31" as decimal text.
func hexOrDec(s string) string {
	if v, err := strconv.ParseUint(s, 0, 64); err == nil {
		return strconv.FormatUint(v, 10)
	}
	return s
}

// Well-known communities (RFC 1997, 7999, 8326, 8642, 9494) as FRR names them.
var wellKnownCommunities = map[string]uint32{
	"internet": 0, "gshut": 0xFFFF0000, "accept-own": 0xFFFF0001,
	"route-filter-translated-v4": 0xFFFF0002, "route-filter-v4": 0xFFFF0003,
	"route-filter-translated-v6": 0xFFFF0004, "route-filter-v6": 0xFFFF0005,
	"llgr-stale": 0xFFFF0006, "no-llgr": 0xFFFF0007, "accept-own-nexthop": 0xFFFF0008,
	"blackhole": 0xFFFF029A, "no-export": 0xFFFFFF01, "no-advertise": 0xFFFFFF02,
	"local-as": 0xFFFFFF03, "no-peer": 0xFFFFFF04,
}

// community reads "65535:666", a well-known name, or a 32-bit number.
func community(s string) (uint32, bool) {
	if v, ok := wellKnownCommunities[strings.ToLower(s)]; ok {
		return v, true
	}
	if hi, lo, ok := strings.Cut(s, ":"); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		return uint32(h)<<16 | uint32(l), err1 == nil && err2 == nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

// communityStrings renders sorted "high:low" strings, or nil.
func communityStrings(cs []uint32) []string {
	if len(cs) == 0 {
		return nil
	}
	slices.Sort(cs)
	cs = slices.Compact(cs)
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%d:%d", c>>16, c&0xFFFF)
	}
	return out
}

// sortedOrNil sorts and de-duplicates a string list; empty becomes nil.
func sortedOrNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// rateText renders a traffic-rate in bytes/s.
func rateText(r float64) string {
	if r == 0 {
		return "discard"
	}
	if r == math.Trunc(r) && r < 1e15 {
		return fmt.Sprintf("rate-limit %d", int64(r))
	}
	return "rate-limit " + strconv.FormatFloat(r, 'f', -1, 32)
}

func ip4(v uint32) string {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

func actionText(sample, terminal bool) string {
	s := "action"
	if sample {
		s += " sample"
	}
	if terminal {
		s += " terminal"
	}
	return s
}

// extCommunity decodes a raw 8-byte extended community (BIRD and ExaBGP
// give the value).
func extCommunity(v uint64) string {
	typ := uint16(v >> 48)
	as2, local32 := uint32(v>>32)&0xFFFF, uint32(v)
	high32, local16 := uint32(v>>16), uint16(v)
	copyText := ""
	if v&1 == 1 {
		copyText = " copy"
	}
	switch typ {
	case 0x8006:
		return rateText(float64(math.Float32frombits(uint32(v))))
	case 0x8007:
		return actionText(v&2 != 0, v&1 != 0)
	case 0x8008:
		return fmt.Sprintf("redirect %d:%d", as2, local32)
	case 0x8108:
		return fmt.Sprintf("redirect %s:%d", ip4(high32), local16)
	case 0x8208:
		return fmt.Sprintf("redirect %d:%d", high32, local16)
	case 0x8009:
		return fmt.Sprintf("mark %d", v&0x3F)
	case 0x010c:
		return "redirect-ip " + ip4(high32) + copyText
	case 0x0800:
		return "redirect-nexthop" + copyText
	case 0x0002:
		return fmt.Sprintf("rt %d:%d", as2, local32)
	case 0x0102:
		return fmt.Sprintf("rt %s:%d", ip4(high32), local16)
	case 0x0202:
		return fmt.Sprintf("rt %d:%d", high32, local16)
	case 0x0003:
		return fmt.Sprintf("soo %d:%d", as2, local32)
	case 0x0103:
		return fmt.Sprintf("soo %s:%d", ip4(high32), local16)
	case 0x0203:
		return fmt.Sprintf("soo %d:%d", high32, local16)
	}
	return fmt.Sprintf("ext-0x%04x", typ)
}

// fsCanonicalName maps each daemon's component names to ours.
var fsCanonicalName = map[string]string{
	// ExaBGP
	"destination-ipv4": "destination", "destination-ipv6": "destination",
	"source-ipv4": "source", "source-ipv6": "source", "next-header": "protocol",
	"traffic-class": "dscp",
	// FRR
	"to": "destination", "from": "source", "proto": "protocol", "dstp": "destination-port",
	"srcp": "source-port", "type": "icmp-type", "code": "icmp-code", "tcp": "tcp-flags",
	"flags": "tcp-flags", "pktlen": "packet-length", "pktfrag": "fragment", "flwlbl": "flow-label",
	// BIRD
	"dst": "destination", "src": "source", "dport": "destination-port", "sport": "source-port",
	"icmp type": "icmp-type", "icmp code": "icmp-code", "tcp flags": "tcp-flags",
	"length": "packet-length", "label": "flow-label", "next header": "protocol",
}

func canonicalComponent(name string) string {
	if c, ok := fsCanonicalName[name]; ok {
		return c
	}
	return name
}
