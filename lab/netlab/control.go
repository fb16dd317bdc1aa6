//go:build linux

package netlab

import "net/netip"

// Control is the node of ScrubbingWithControl where dotsd, scrubd and
// dotsctl run; dotsd's BGP session to the edge runs over its link.
const Control = "dots"

var (
	ControlAddr   = netip.MustParseAddr("192.0.2.6") // dotsd's BGP address
	EdgeBGPAddr   = netip.MustParseAddr("192.0.2.5") // the edge router's BGP address
	ControlPrefix = netip.MustParsePrefix("192.0.2.4/30")
)

// ScrubbingWithControl is Scrubbing plus the control node, linked to the
// edge (d-edge 192.0.2.6/30 ↔ e-dots 192.0.2.5/30).
func ScrubbingWithControl() Topology {
	t := Scrubbing()
	t.Name = "nlc"
	t.Nodes = append(t.Nodes, Node{Name: Control})
	t.Links = append(t.Links, Link{
		A: Endpoint{Edge, "e-dots", netip.PrefixFrom(EdgeBGPAddr, 30)},
		B: Endpoint{Control, "d-edge", netip.PrefixFrom(ControlAddr, 30)},
	})
	return t
}
