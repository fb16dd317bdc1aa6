//go:build linux

// Package netlab builds a lab of Linux network namespaces from one
// declarative Topology: nodes (namespaces) with forwarding, loopback
// addresses and routes, veth links created directly inside the two
// namespaces they join, and VXLAN tunnels. Everything is removed at the end
// of the test. The Topology is plain data, so a containerlab file can be
// generated from it later.
//
// Only documentation addresses (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24, 2001:db8::/32) are accepted.
package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
)

// Topology is a lab: nodes and the links and tunnels between them.
type Topology struct {
	// Name prefixes the namespaces' names (with the process id), so that
	// labs of concurrent tests do not clash.
	Name    string
	Nodes   []Node
	Links   []Link
	Tunnels []Tunnel // created by Build; Lab.AddTunnel creates more later
}

// Node is one network namespace.
type Node struct {
	Name string
	// Forward enables IPv4 forwarding (a fresh namespace has it off).
	Forward bool
	// Loopback addresses are added to lo (which is always brought up).
	Loopback []netip.Prefix
	// Routes are installed after every link and tunnel is up.
	Routes []Route
	// Sysctl values, keyed by path under /proc/sys, e.g.
	// "net/ipv4/conf/all/rp_filter".
	Sysctl map[string]string
}

// Link is a veth pair between two nodes.
type Link struct {
	A, B Endpoint
}

// Endpoint is one end of a link: its interface in a node and its address.
type Endpoint struct {
	Node  string
	Iface string
	Addr  netip.Prefix
}

// Route is a route in a node's main table: to Dst via a gateway, or
// through a device (or both).
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
	Dev string
}

// Tunnel is a point-to-point VXLAN tunnel between two nodes.
type Tunnel struct {
	Name string // the interface name at both ends
	VNI  int
	Port int // UDP port; 0: 4789
	A, B TunnelEnd
	// Only, if set, is the one node whose end the lab builds; the other
	// end is someone else's (a daemon that builds its own, like scrubd's
	// return path).
	Only string
}

// builds reports whether the lab builds node's end of the tunnel.
func (tu Tunnel) builds(node string) bool { return tu.Only == "" || tu.Only == node }

func (tu Tunnel) port() int {
	if tu.Port == 0 {
		return 4789
	}
	return tu.Port
}

// TunnelEnd is one end of a tunnel: the underlay address it sends from
// (the other end's Local is its remote) and the address on the tunnel.
type TunnelEnd struct {
	Node  string
	Local netip.Addr
	Addr  netip.Prefix
}

var docPrefixes = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// Documentation reports whether a is in a documentation prefix.
func Documentation(a netip.Addr) bool {
	for _, p := range docPrefixes {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func docPrefix(p netip.Prefix) bool {
	return Documentation(p.Addr()) && p.Bits() >= 24
}

// Validate checks names, references and that every address is a
// documentation address.
func (t Topology) Validate() error {
	nodes := map[string]bool{}
	for _, n := range t.Nodes {
		if n.Name == "" || nodes[n.Name] {
			return fmt.Errorf("netlab: node name %q empty or repeated", n.Name)
		}
		nodes[n.Name] = true
		for _, p := range n.Loopback {
			if !docPrefix(p) {
				return fmt.Errorf("netlab: %s: %v is not a documentation address", n.Name, p)
			}
		}
		for _, r := range n.Routes {
			if err := r.validate(); err != nil {
				return fmt.Errorf("netlab: %s: %w", n.Name, err)
			}
		}
	}
	for _, l := range t.Links {
		for _, e := range []Endpoint{l.A, l.B} {
			if !nodes[e.Node] || e.Iface == "" || len(e.Iface) > 15 {
				return fmt.Errorf("netlab: link end %+v: unknown node or bad interface name", e)
			}
			if e.Addr.IsValid() && !docPrefix(e.Addr) {
				return fmt.Errorf("netlab: link end %+v: not a documentation address", e)
			}
		}
	}
	for _, tu := range t.Tunnels {
		if err := tu.validate(nodes); err != nil {
			return err
		}
	}
	return nil
}

func (r Route) validate() error {
	if !docPrefix(r.Dst) && r.Dst.Bits() != 0 {
		return fmt.Errorf("route %v: not a documentation prefix", r.Dst)
	}
	if r.Via.IsValid() && !Documentation(r.Via) {
		return fmt.Errorf("route %v: gateway %v is not a documentation address", r.Dst, r.Via)
	}
	if !r.Via.IsValid() && r.Dev == "" {
		return fmt.Errorf("route %v: neither gateway nor device", r.Dst)
	}
	return nil
}

func (tu Tunnel) validate(nodes map[string]bool) error {
	if tu.Name == "" || len(tu.Name) > 15 || tu.VNI <= 0 {
		return fmt.Errorf("netlab: tunnel %q: bad name or VNI", tu.Name)
	}
	for _, e := range []TunnelEnd{tu.A, tu.B} {
		if !nodes[e.Node] || !Documentation(e.Local) || !docPrefix(e.Addr) {
			return fmt.Errorf("netlab: tunnel %s end %+v: unknown node or not documentation addresses", tu.Name, e)
		}
	}
	if tu.Only != "" && tu.Only != tu.A.Node && tu.Only != tu.B.Node {
		return fmt.Errorf("netlab: tunnel %s: only %q is neither end", tu.Name, tu.Only)
	}
	return nil
}

var seq atomic.Int32

// ErrNotRoot is returned by New when the process is not root: network
// namespaces, veths and tunnels need CAP_NET_ADMIN and CAP_SYS_ADMIN.
var ErrNotRoot = errors.New("netlab: network namespaces need root")

// New creates the namespaces, links, tunnels, sysctls and routes of topo.
// The caller owns the Lab and must Close it, which removes the namespaces
// and with them everything in them; on an error nothing is left behind.
func New(topo Topology) (*Lab, error) {
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	l := &Lab{topo: topo, nodes: map[string]*nsNode{}}
	prefix := fmt.Sprintf("%s-%d-%d", topo.Name, os.Getpid(), seq.Add(1))
	for _, n := range topo.Nodes {
		nn, err := newNode(prefix+"-"+n.Name, n)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("netlab: node %s: %w", n.Name, err), l.Close())
		}
		l.nodes[n.Name] = nn
		l.order = append(l.order, n.Name)
	}
	if err := l.build(); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// Build is New for a test: an invalid topology fails it, a non-root
// process skips it, and the lab is closed at the end of the test, also
// when it fails.
func Build(t testing.TB, topo Topology) *Lab {
	t.Helper()
	if err := topo.Validate(); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: netlab creates network namespaces, which needs root (CI runs as root)")
	}
	l, err := New(topo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab: teardown: %v", err)
		}
	})
	return l
}

// Topology is the topology the lab was built from.
func (l *Lab) Topology() Topology { return l.topo }

func (l *Lab) build() error {
	for _, n := range l.topo.Nodes {
		if err := l.nodes[n.Name].setup(n); err != nil {
			return fmt.Errorf("netlab: node %s: %w", n.Name, err)
		}
	}
	for _, lk := range l.topo.Links {
		if err := l.addLink(lk); err != nil {
			return fmt.Errorf("netlab: link %s:%s-%s:%s: %w", lk.A.Node, lk.A.Iface, lk.B.Node, lk.B.Iface, err)
		}
	}
	for _, tu := range l.topo.Tunnels {
		if err := l.AddTunnel(tu); err != nil {
			return err
		}
	}
	for _, n := range l.topo.Nodes {
		for _, r := range n.Routes {
			if err := l.AddRoute(n.Name, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close removes every namespace of the lab. It is idempotent.
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.order) - 1; i >= 0; i-- {
		if n := l.nodes[l.order[i]]; n != nil {
			errs = append(errs, n.close())
		}
	}
	l.order = nil
	return errors.Join(errs...)
}
