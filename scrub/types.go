package scrub

import (
	"context"
	"net/netip"
)

// Desired is the complete state dotsd wants on one node. It is declarative:
// Set(d) converges on exactly d, and setting the same d twice changes nothing.
type Desired struct {
	Mitigations []Mitigation `json:"mitigations"`
	// ACLs are data-channel filters, run ahead of the mitigations (see ACL).
	ACLs []ACL `json:"acls,omitempty"`
}

// Mitigation is one mitigation's filter: packets to Targets are counted and
// run through Rules in order.
type Mitigation struct {
	// ID is stable across Sets, e.g. "<cuid>/<mid>"; counters are named from it.
	ID string `json:"id"`
	// Targets are destination prefixes (IPv4 and IPv6). Targets of different
	// mitigations must not overlap.
	Targets []netip.Prefix `json:"targets"`
	// Rules are evaluated in order; the first that matches decides. A packet
	// to a target that matches no rule passes (accept).
	Rules []Rule `json:"rules"`
}

// Rule matches packets to its mitigation's targets. Every non-empty field
// must match (AND); the entries of one list are alternatives (OR).
type Rule struct {
	// Name is unique within the mitigation and names the rule's counter.
	Name string `json:"name"`
	// Sources are source prefixes; empty: any.
	Sources []netip.Prefix `json:"sources,omitempty"`
	// Protocols are IP protocol numbers (IPv6: the transport header's); empty: any.
	Protocols []uint8 `json:"protocols,omitempty"`
	// SrcPorts and DstPorts match TCP, UDP, UDP-Lite, SCTP and DCCP ports;
	// a rule with ports never matches other protocols.
	SrcPorts []PortRange `json:"src-ports,omitempty"`
	DstPorts []PortRange `json:"dst-ports,omitempty"`
	// Fragment matches IPv4 non-first fragments (fragment offset != 0).
	Fragment bool `json:"fragment,omitempty"`
	// MinLength and MaxLength bound the IP packet length (inclusive); 0: none.
	MinLength uint16 `json:"min-length,omitempty"`
	MaxLength uint16 `json:"max-length,omitempty"`
	// RatePPS 0 applies Action to every matching packet; otherwise only
	// packets above this rate (packets per second) are matched ("limit
	// rate over"), so drop-with-rate is a rate limit.
	RatePPS uint64 `json:"rate-pps,omitempty"`
	// Action is "drop" (default when empty) or "accept".
	Action string `json:"action"`
}

// Actions of a Rule.
const (
	ActionDrop   = "drop"
	ActionAccept = "accept"
)

// PortRange is an inclusive range of ports; Low == High is one port.
type PortRange struct {
	Low  uint16 `json:"low"`
	High uint16 `json:"high"`
}

// Counters are measured on the node, cumulative since the counter was
// created (the first Set that contained the mitigation or rule). A Set that
// keeps a mitigation or rule keeps its counter; a counter starts again at 0
// only when its mitigation or rule was removed and added again, or the table
// was removed (Close, reboot). Callers that need values monotonic across such
// restarts keep their own base.
type Counters struct {
	// Mitigations: per mitigation ID, every packet to the mitigation's
	// targets that the node saw (dropped or passed).
	Mitigations map[string]Count `json:"mitigations"`
	// Rules: per mitigation ID, per rule name, the packets the rule matched
	// (for drop rules: dropped).
	Rules map[string]map[string]Count `json:"rules"`
	// ACLs: per ACL ID, per entry name, what the entry matched and dropped.
	ACLs map[string]map[string]ACLCount `json:"acls,omitempty"`
}

// Count is a packet and byte counter; bytes are L3 (IP header and payload).
type Count struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Node is a scrubbing data plane: NFT (nftables), or Routed (NFT with the
// return path of the cleaned traffic beside it); XDP may sit beside it later.
type Node interface {
	// Set converges on exactly d, in one transaction.
	Set(ctx context.Context, d Desired) error
	// Counters reads the counters of the installed state.
	Counters(ctx context.Context) (Counters, error)
	// Close removes everything this node installed.
	Close() error
}
