package main

import (
	"fmt"
	"net/netip"

	"github.com/levee-dots/levee/scrub"
)

// Traffic of every case: UDP from port 123 of the sender to port 5000.
var (
	srcAddr    = netip.MustParseAddrPort("198.51.100.2:123")
	floorDst   = netip.MustParseAddr("203.0.113.10") // the floor's one rule, and levee's last target
	dstPort    = uint16(5000)
	ruleName   = "ntp"
	payloadLen = 64
)

// benchCase is one row of the report.
type benchCase struct {
	name  string
	floor bool // the hand-written nft table instead of scrub.NFT
	rules int  // scrub.NFT: mitigations, each with one target and one rule
}

// cases in the order they take turns and are printed.
var cases = []benchCase{
	{name: "floor: hand-written nft 1 rule", floor: true, rules: 1},
	{name: "levee 1 rule", rules: 1},
	{name: "levee 100 rules", rules: 100},
	{name: "levee 10,000 rules", rules: 10_000},
}

// desired is the state of n mitigations, each with one /32 target and one
// rule dropping UDP from port 123, and the destinations the packets go to:
// the targets of the last min(n, spread) mitigations, 203.0.113.10 (the
// last mitigation's) first and then up through 203.0.113.0/24. The other
// targets are dummies from the benchmarking range 198.18.0.0/15, which no
// packet is sent to (the generator sends to documentation addresses only).
func desired(n, spread int) (scrub.Desired, []netip.AddrPort) {
	k := min(n, spread, maxSpread)
	var d scrub.Desired
	add := func(id string, a netip.Addr) {
		d.Mitigations = append(d.Mitigations, scrub.Mitigation{
			ID:      id,
			Targets: []netip.Prefix{netip.PrefixFrom(a, 32)},
			Rules: []scrub.Rule{{Name: ruleName, Protocols: []uint8{17},
				SrcPorts: []scrub.PortRange{{Low: srcAddr.Port(), High: srcAddr.Port()}}, Action: scrub.ActionDrop}},
		})
	}
	for i := range n - k {
		add(fmt.Sprintf("bench/dummy/%d", i), netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}))
	}
	dsts := make([]netip.AddrPort, k)
	base := floorDst.As4()
	for j := k - 1; j >= 0; j-- {
		a := netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + byte(j)})
		dsts[j] = netip.AddrPortFrom(a, dstPort)
		add(fmt.Sprintf("bench/hit/%d", j), a)
	}
	return d, dsts
}

// dropped sums the packets the bench rule of every mitigation counted.
func dropped(c scrub.Counters) uint64 {
	var n uint64
	for _, rs := range c.Rules {
		n += rs[ruleName].Packets
	}
	return n
}
