//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net/netip"
)

// Names and addresses of the Scrubbing topology.
const (
	Attacker = "attacker"
	Edge     = "edge"
	Scrubber = "scrubber"
	Target   = "target"

	// ScrubberIface is the scrubber's interface toward the edge, where
	// diverted traffic arrives (scrubd's ingress device).
	ScrubberIface = "s-edge"
	// ReturnTunnel is the VXLAN tunnel that carries cleaned traffic from
	// the scrubber to the target.
	ReturnTunnel = "vx-clean"
)

var (
	AttackerAddr = netip.MustParseAddr("198.51.100.2")
	TargetAddr   = netip.MustParseAddr("203.0.113.10")
	ScrubberAddr = netip.MustParseAddr("192.0.2.2")  // on ScrubberIface
	TargetVTEP   = netip.MustParseAddr("192.0.2.9")  // the target's tunnel endpoint (lo)
	TunnelTarget = netip.MustParseAddr("192.0.2.14") // the target's address on the tunnel
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// Scrubbing is the scrubbing-centre lab:
//
//	attacker 198.51.100.2 ── a-edge [edge] e-tgt 203.0.113.1 ── t-edge 203.0.113.10 target (lo 192.0.2.9)
//	                                  │ e-scr 192.0.2.1/30
//	                         s-edge 192.0.2.2 [scrubber] ══ vx-clean (Diversion) ══▶ target
//
// Normally the edge reaches the target over its connected /24. Diversion
// adds the return tunnel (underlay 192.0.2.2 → 192.0.2.9 through the edge,
// which is never diverted), the scrubber's route to the target through it,
// and the edge's more-specific /32 toward the scrubber.
func Scrubbing() Topology {
	return Topology{
		Name: "nl",
		Nodes: []Node{
			{Name: Attacker, Routes: []Route{{Dst: pfx("0.0.0.0/0"), Via: netip.MustParseAddr("198.51.100.1")}}},
			{Name: Edge, Forward: true, Routes: []Route{{Dst: pfx("192.0.2.9/32"), Via: TargetAddr}}},
			{Name: Scrubber, Forward: true, Routes: []Route{{Dst: pfx("0.0.0.0/0"), Via: netip.MustParseAddr("192.0.2.1")}}},
			{Name: Target, Loopback: []netip.Prefix{pfx("192.0.2.9/32")},
				Routes: []Route{{Dst: pfx("0.0.0.0/0"), Via: netip.MustParseAddr("203.0.113.1")}},
				Sysctl: map[string]string{"net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/default/rp_filter": "0"}},
		},
		Links: []Link{
			{A: Endpoint{Attacker, "a-edge", pfx("198.51.100.2/24")}, B: Endpoint{Edge, "e-atk", pfx("198.51.100.1/24")}},
			{A: Endpoint{Edge, "e-tgt", pfx("203.0.113.1/24")}, B: Endpoint{Target, "t-edge", pfx("203.0.113.10/24")}},
			{A: Endpoint{Edge, "e-scr", pfx("192.0.2.1/30")}, B: Endpoint{Scrubber, ScrubberIface, pfx("192.0.2.2/30")}},
		},
	}
}

// Diversion is what steering one target through the scrubber adds to the
// Scrubbing lab.
type Diversion struct {
	Tunnel     Tunnel
	ScrubRoute Route // in the scrubber: the target through the tunnel
	EdgeRoute  Route // in the edge: the target's /32 toward the scrubber
}

// ScrubbingDiversion is the diversion of TargetAddr.
func ScrubbingDiversion() Diversion {
	return Diversion{
		Tunnel: Tunnel{Name: ReturnTunnel, VNI: 100,
			A: TunnelEnd{Node: Scrubber, Local: ScrubberAddr, Addr: pfx("192.0.2.13/30")},
			B: TunnelEnd{Node: Target, Local: TargetVTEP, Addr: pfx("192.0.2.14/30")}},
		ScrubRoute: Route{Dst: netip.PrefixFrom(TargetAddr, 32), Via: TunnelTarget, Dev: ReturnTunnel},
		EdgeRoute:  Route{Dst: netip.PrefixFrom(TargetAddr, 32), Via: ScrubberAddr},
	}
}

// The return path scrubd builds itself (its return: section): the
// routes of the targets in ReturnTable, used by what arrives on
// ScrubberIface through a rule at ReturnPriority.
const (
	ReturnTable    = 4680
	ReturnPriority = 4680
)

// ScrubdDiversion is the diversion of TargetAddr with the scrubber's side
// of the return path left to scrubd: the lab builds only the target's end
// of the tunnel.
func ScrubdDiversion() Diversion {
	d := ScrubbingDiversion()
	d.Tunnel.Only = d.Tunnel.B.Node
	d.ScrubRoute = Route{}
	return d
}

// ScrubdForwards turns the scrubber's forwarding off in t, for scrubd's
// return path to turn on (and restore at its stop).
func ScrubdForwards(t *Topology) {
	for i := range t.Nodes {
		if t.Nodes[i].Name == Scrubber {
			t.Nodes[i].Forward = false
		}
	}
}

// ReturnSection is scrubd's return: section (YAML flow style) for the
// scrubber's end of d's tunnel.
func ReturnSection(d Diversion) string {
	tu := d.Tunnel
	gw := tu.B.Addr.Addr()
	return fmt.Sprintf("{tunnel: auto, name: %s, local: %v, remote: %v, vni: %d, port: %d, address: %v, gateway: %v, table: %d, rule-priority: %d}",
		tu.Name, tu.A.Local, tu.B.Local, tu.VNI, tu.port(), tu.A.Addr, gw, ReturnTable, ReturnPriority)
}

// Divert builds the return path, then moves the edge's route (in that
// order, so no diverted packet finds the scrubber without a way back).
// includeEdge false leaves the edge's route to someone else (a routing
// daemon that learns it over BGP).
func (l *Lab) Divert(d Diversion, includeEdge bool) error {
	if err := l.AddTunnel(d.Tunnel); err != nil {
		return err
	}
	if err := l.Sysctl(d.Tunnel.B.Node, map[string]string{"net/ipv4/conf/" + d.Tunnel.Name + "/rp_filter": "0"}); err != nil {
		return err
	}
	if d.ScrubRoute.Dst.IsValid() {
		if err := l.AddRoute(d.Tunnel.A.Node, d.ScrubRoute); err != nil {
			return err
		}
	}
	if includeEdge {
		return l.AddRoute(Edge, d.EdgeRoute)
	}
	return nil
}

// Undivert removes what Divert added, the edge's route first.
func (l *Lab) Undivert(d Diversion, includeEdge bool) error {
	var errs []error
	if includeEdge {
		errs = append(errs, l.DelRoute(Edge, d.EdgeRoute))
	}
	errs = append(errs, l.DelTunnel(d.Tunnel)) // takes the scrubber's route with it
	return errors.Join(errs...)
}
