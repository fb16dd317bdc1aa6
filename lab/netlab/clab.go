//go:build linux

package netlab

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Clab is a containerlab topology file (*.clab.yml).
type Clab struct {
	Name     string       `yaml:"name"`
	Topology ClabTopology `yaml:"topology"`
}

// ClabTopology is the topology section: nodes by name, and links.
type ClabTopology struct {
	Nodes map[string]ClabNode `yaml:"nodes"`
	Links []ClabLink          `yaml:"links"`
}

// ClabNode is one container.
type ClabNode struct {
	Kind  string   `yaml:"kind"`
	Image string   `yaml:"image"`
	Binds []string `yaml:"binds,omitempty"`
	Exec  []string `yaml:"exec,omitempty"`
}

// ClabLink joins two interfaces, "node:ethN".
type ClabLink struct {
	Endpoints [2]string `yaml:"endpoints,flow"`
}

// ClabOptions add to what a Topology says: the image, files bound into
// nodes and commands run after the network is configured (the daemons).
type ClabOptions struct {
	Image string              // every node's image
	Binds map[string][]string // node → "host-path:container-path"
	Exec  map[string][]string // node → commands after the network's
}

// ClabIfaces names the data interfaces of every node as containerlab
// does: eth1, eth2, … in the order of the topology's links (eth0 is
// management). The key is "node:iface" of the Topology.
func ClabIfaces(topo Topology) map[string]string {
	next := map[string]int{}
	out := map[string]string{}
	for _, lk := range topo.Links {
		for _, e := range []Endpoint{lk.A, lk.B} {
			next[e.Node]++
			out[e.Node+":"+e.Iface] = fmt.Sprintf("eth%d", next[e.Node])
		}
	}
	return out
}

// Containerlab renders topo as a containerlab topology: one linux node per
// Node, one link per Link, and each node's sysctls, addresses, tunnel ends
// and routes as exec lines (ip and sysctl commands, with the lab's
// interface names replaced by eth1, eth2, …).
func Containerlab(topo Topology, o ClabOptions) ([]byte, error) {
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	if o.Image == "" {
		return nil, fmt.Errorf("netlab: containerlab: no image")
	}
	ifs := ClabIfaces(topo)
	c := Clab{Name: topo.Name, Topology: ClabTopology{Nodes: map[string]ClabNode{}}}
	for _, lk := range topo.Links {
		c.Topology.Links = append(c.Topology.Links, ClabLink{Endpoints: [2]string{
			lk.A.Node + ":" + ifs[lk.A.Node+":"+lk.A.Iface], lk.B.Node + ":" + ifs[lk.B.Node+":"+lk.B.Iface]}})
	}
	for _, n := range topo.Nodes {
		ex, err := clabExec(topo, n, ifs)
		if err != nil {
			return nil, err
		}
		c.Topology.Nodes[n.Name] = ClabNode{Kind: "linux", Image: o.Image, Binds: o.Binds[n.Name],
			Exec: append(ex, o.Exec[n.Name]...)}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("netlab: containerlab: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("netlab: containerlab: %w", err)
	}
	return b.Bytes(), nil
}

// clabExec is the commands that give node n its network.
func clabExec(topo Topology, n Node, ifs map[string]string) ([]string, error) {
	var ex []string
	sys := maps.Clone(n.Sysctl)
	if sys == nil {
		sys = map[string]string{}
	}
	if n.Forward {
		sys["net/ipv4/ip_forward"] = "1"
	}
	for _, k := range slices.Sorted(maps.Keys(sys)) {
		ex = append(ex, fmt.Sprintf("sysctl -w %s=%s", strings.ReplaceAll(k, "/", "."), sys[k]))
	}
	for _, p := range n.Loopback {
		ex = append(ex, fmt.Sprintf("ip addr add %v dev lo", p))
	}
	for _, lk := range topo.Links {
		for _, e := range []Endpoint{lk.A, lk.B} {
			if e.Node == n.Name && e.Addr.IsValid() {
				ex = append(ex, fmt.Sprintf("ip addr add %v dev %s", e.Addr, ifs[e.Node+":"+e.Iface]))
			}
		}
	}
	for _, tu := range topo.Tunnels {
		for _, e := range [][2]TunnelEnd{{tu.A, tu.B}, {tu.B, tu.A}} {
			if e[0].Node != n.Name || !tu.builds(e[0].Node) {
				continue
			}
			ex = append(ex, fmt.Sprintf("ip link add %s type vxlan id %d local %v remote %v dstport %d",
				tu.Name, tu.VNI, e[0].Local, e[1].Local, tu.port()),
				fmt.Sprintf("ip addr add %v dev %s", e[0].Addr, tu.Name),
				fmt.Sprintf("ip link set %s up", tu.Name))
		}
	}
	for _, r := range n.Routes {
		line := fmt.Sprintf("ip route replace %v", r.Dst)
		if r.Via.IsValid() {
			line += fmt.Sprintf(" via %v", r.Via)
		}
		if r.Dev != "" {
			dev, ok := ifs[n.Name+":"+r.Dev]
			if !ok && !topo.hasTunnel(r.Dev) {
				return nil, fmt.Errorf("netlab: containerlab: %s: route %v dev %s: no such interface", n.Name, r.Dst, r.Dev)
			}
			if !ok {
				dev = r.Dev
			}
			line += " dev " + dev
		}
		ex = append(ex, line)
	}
	return ex, nil
}

func (t Topology) hasTunnel(name string) bool {
	return slices.ContainsFunc(t.Tunnels, func(tu Tunnel) bool { return tu.Name == name })
}
