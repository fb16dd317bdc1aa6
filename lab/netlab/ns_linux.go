//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Lab is a built Topology.
type Lab struct {
	topo  Topology
	nodes map[string]*nsNode
	order []string
}

// nsNode is one named namespace and a netlink handle in it.
type nsNode struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

// InNS runs fn on a locked OS thread whose network namespace is ns, then
// puts the thread back. Sockets made by fn stay in ns.
func InNS(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		panic(fmt.Sprintf("netlab: thread left in another namespace: %v", err))
	}
	return ferr
}

func newNode(name string, _ Node) (*nsNode, error) {
	n := &nsNode{name: name, ns: -1}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		panic(fmt.Sprintf("netlab: thread left in another namespace: %v", serr))
	}
	if err != nil {
		return nil, err
	}
	n.ns = ns
	if n.h, err = netlink.NewHandleAt(ns); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func (n *nsNode) close() error {
	if n.h != nil {
		n.h.Close()
		n.h = nil
	}
	if n.ns >= 0 {
		n.ns.Close()
		n.ns = -1
		return netns.DeleteNamed(n.name)
	}
	return nil
}

func (n *nsNode) setup(spec Node) error {
	lo, err := n.h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := n.h.LinkSetUp(lo); err != nil {
		return err
	}
	for _, p := range spec.Loopback {
		if err := n.h.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
			return fmt.Errorf("lo %v: %w", p, err)
		}
	}
	sys := map[string]string{}
	if spec.Forward {
		sys["net/ipv4/ip_forward"] = "1"
	}
	for k, v := range spec.Sysctl {
		sys[k] = v
	}
	return n.sysctl(sys)
}

// sysctl writes values under /proc/sys from inside the namespace.
func (n *nsNode) sysctl(kv map[string]string) error {
	if len(kv) == 0 {
		return nil
	}
	return InNS(n.ns, func() error {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}

func (l *Lab) node(name string) (*nsNode, error) {
	n := l.nodes[name]
	if n == nil {
		return nil, fmt.Errorf("netlab: no node %q", name)
	}
	return n, nil
}

// Namespace returns the name of node's namespace (as in /run/netns, so
// `ip netns exec` and netns.GetFromName find it).
func (l *Lab) Namespace(node string) string {
	if n := l.nodes[node]; n != nil {
		return n.name
	}
	return ""
}

// Handle returns a netlink handle inside node's namespace (owned by the lab).
func (l *Lab) Handle(node string) *netlink.Handle {
	if n := l.nodes[node]; n != nil {
		return n.h
	}
	return nil
}

// NS returns node's namespace handle (owned by the lab).
func (l *Lab) NS(node string) netns.NsHandle {
	if n := l.nodes[node]; n != nil {
		return n.ns
	}
	return -1
}

// Do runs fn on a locked OS thread inside node's namespace.
func (l *Lab) Do(node string, fn func() error) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	return InNS(n.ns, fn)
}

// Sysctl sets values under /proc/sys inside node's namespace.
func (l *Lab) Sysctl(node string, kv map[string]string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	return n.sysctl(kv)
}

// addLink creates the veth pair inside A's namespace with its peer
// directly in B's, so the names never exist in the caller's namespace.
func (l *Lab) addLink(lk Link) error {
	a, err := l.node(lk.A.Node)
	if err != nil {
		return err
	}
	b, err := l.node(lk.B.Node)
	if err != nil {
		return err
	}
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: lk.A.Iface}, PeerName: lk.B.Iface, PeerNamespace: netlink.NsFd(b.ns)}
	if err := a.h.LinkAdd(v); err != nil {
		return err
	}
	for _, e := range []struct {
		n *nsNode
		e Endpoint
	}{{a, lk.A}, {b, lk.B}} {
		if err := e.n.linkUp(e.e.Iface, e.e.Addr); err != nil {
			return err
		}
	}
	return nil
}

func (n *nsNode) linkUp(iface string, addr netip.Prefix) error {
	link, err := n.h.LinkByName(iface)
	if err != nil {
		return err
	}
	if addr.IsValid() {
		if err := n.h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
			return fmt.Errorf("%s %v: %w", iface, addr, err)
		}
	}
	return n.h.LinkSetUp(link)
}

// AddTunnel creates both ends of a VXLAN tunnel (or the Only one) and
// brings them up.
func (l *Lab) AddTunnel(tu Tunnel) error {
	nodes := map[string]bool{}
	for k := range l.nodes {
		nodes[k] = true
	}
	if err := tu.validate(nodes); err != nil {
		return err
	}
	port := tu.port()
	for _, e := range [][2]TunnelEnd{{tu.A, tu.B}, {tu.B, tu.A}} {
		if !tu.builds(e[0].Node) {
			continue
		}
		n := l.nodes[e[0].Node]
		vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: tu.Name}, VxlanId: tu.VNI,
			SrcAddr: net.IP(e[0].Local.AsSlice()), Group: net.IP(e[1].Local.AsSlice()), Port: port}
		if err := n.h.LinkAdd(vx); err != nil {
			return fmt.Errorf("netlab: tunnel %s in %s: %w", tu.Name, e[0].Node, err)
		}
		if err := n.linkUp(tu.Name, e[0].Addr); err != nil {
			return fmt.Errorf("netlab: tunnel %s in %s: %w", tu.Name, e[0].Node, err)
		}
	}
	return nil
}

// DelTunnel removes both ends of a tunnel (or the Only one; a missing end
// is not an error).
func (l *Lab) DelTunnel(tu Tunnel) error {
	var errs []error
	for _, e := range []TunnelEnd{tu.A, tu.B} {
		if !tu.builds(e.Node) {
			continue
		}
		n, err := l.node(e.Node)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		link, err := n.h.LinkByName(tu.Name)
		if err != nil {
			continue
		}
		errs = append(errs, n.h.LinkDel(link))
	}
	return errors.Join(errs...)
}

func (l *Lab) route(node string, r Route) (*nsNode, *netlink.Route, error) {
	n, err := l.node(node)
	if err != nil {
		return nil, nil, err
	}
	if err := r.validate(); err != nil {
		return nil, nil, fmt.Errorf("netlab: %s: %w", node, err)
	}
	nr := &netlink.Route{Dst: ipNet(r.Dst.Masked())}
	if r.Via.IsValid() {
		nr.Gw = net.IP(r.Via.AsSlice())
	}
	if r.Dev != "" {
		link, err := n.h.LinkByName(r.Dev)
		if err != nil {
			return nil, nil, fmt.Errorf("netlab: %s: route %v dev %s: %w", node, r.Dst, r.Dev, err)
		}
		nr.LinkIndex = link.Attrs().Index
	}
	return n, nr, nil
}

// AddRoute adds (or replaces) a route in node's main table.
func (l *Lab) AddRoute(node string, r Route) error {
	n, nr, err := l.route(node, r)
	if err != nil {
		return err
	}
	if err := n.h.RouteReplace(nr); err != nil {
		return fmt.Errorf("netlab: %s: route %v: %w", node, r.Dst, err)
	}
	return nil
}

// DelRoute removes a route from node's main table.
func (l *Lab) DelRoute(node string, r Route) error {
	n, nr, err := l.route(node, r)
	if err != nil {
		return err
	}
	if err := n.h.RouteDel(nr); err != nil {
		return fmt.Errorf("netlab: %s: delete route %v: %w", node, r.Dst, err)
	}
	return nil
}

// Routes lists the IPv4 routes of node's main table to exactly dst.
func (l *Lab) Routes(node string, dst netip.Prefix) ([]netlink.Route, error) {
	n, err := l.node(node)
	if err != nil {
		return nil, err
	}
	return n.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(dst.Masked()), Table: 254}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
