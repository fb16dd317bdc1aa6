//go:build linux

package netlab

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestContainerlabRoundTrip exports the scrubbing lab and reads the file
// back as YAML: every node of the Topology is a linux node with the
// image, every link is there in order, each node's data interfaces are
// eth1, eth2, … without a gap or a repeat, every address, tunnel end,
// route and sysctl of the Topology is an exec line, and every device an
// exec line names is one of the node's interfaces.
func TestContainerlabRoundTrip(t *testing.T) {
	topo := ScrubbingClabTopology()
	dir := t.TempDir()
	file := filepath.Join(dir, "scrubbing.clab.yml")
	if err := ExportScrubbing(file, ""); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c Clab
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("the export is not YAML: %v\n%s", err, raw)
	}
	if c.Name != topo.Name || len(c.Topology.Nodes) != len(topo.Nodes) {
		t.Fatalf("name %q, %d nodes; want %q, %d", c.Name, len(c.Topology.Nodes), topo.Name, len(topo.Nodes))
	}
	ifaces := map[string][]string{} // node → its interfaces, in link order
	if len(c.Topology.Links) != len(topo.Links) {
		t.Fatalf("%d links, want %d", len(c.Topology.Links), len(topo.Links))
	}
	for i, lk := range topo.Links {
		for j, e := range []Endpoint{lk.A, lk.B} {
			node, iface, ok := strings.Cut(c.Topology.Links[i].Endpoints[j], ":")
			if !ok || node != e.Node {
				t.Errorf("link %d end %d: %q, want node %s", i, j, c.Topology.Links[i].Endpoints[j], e.Node)
			}
			ifaces[node] = append(ifaces[node], iface)
		}
	}
	for node, got := range ifaces {
		for k, iface := range got {
			if want := fmt.Sprintf("eth%d", k+1); iface != want {
				t.Errorf("%s: interfaces %v, want eth1.. in link order", node, got)
				break
			}
		}
	}
	for _, n := range topo.Nodes {
		cn, ok := c.Topology.Nodes[n.Name]
		if !ok || cn.Kind != "linux" || cn.Image != ClabImage {
			t.Errorf("node %s: %+v", n.Name, cn)
			continue
		}
		for _, want := range wantExec(topo, n) {
			if !slices.Contains(cn.Exec, want) {
				t.Errorf("%s: no exec line %q in %q", n.Name, want, cn.Exec)
			}
		}
		if n.Name == Scrubber && slices.ContainsFunc(cn.Exec, func(l string) bool { return strings.Contains(l, ReturnTunnel) }) {
			t.Errorf("scrubber: exec lines for %s, which scrubd builds: %q", ReturnTunnel, cn.Exec)
		}
		for _, line := range cn.Exec {
			for _, m := range devRE.FindAllStringSubmatch(line, -1) {
				if dev := m[1]; dev != "lo" && dev != ReturnTunnel && !slices.Contains(ifaces[n.Name], dev) {
					t.Errorf("%s: %q names %s, not one of its interfaces %v", n.Name, line, dev, ifaces[n.Name])
				}
			}
		}
	}
	for _, name := range []string{"bird.conf", "dotsd.yaml", "scrubd.yaml", "dotsctl.yaml", "ca.pem", "server/cert.pem"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("beside the export: %v", err)
			continue
		}
		var v any
		if strings.HasSuffix(name, ".yaml") && yaml.Unmarshal(b, &v) != nil {
			t.Errorf("%s is not YAML:\n%s", name, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "scrubd.yaml")); !strings.Contains(string(b), "interface: "+ifaces[Scrubber][0]+"\n") {
		t.Errorf("scrubd.yaml does not filter on the scrubber's %s:\n%s", ifaces[Scrubber][0], b)
	}
}

var devRE = regexp.MustCompile(`\bdev (\S+)`)

// wantExec is what the Topology says about n, as exec lines with the
// interface names left out (they are checked on their own).
func wantExec(topo Topology, n Node) []string {
	var want []string
	if n.Forward {
		want = append(want, "sysctl -w net.ipv4.ip_forward=1")
	}
	for k, v := range n.Sysctl {
		want = append(want, "sysctl -w "+strings.ReplaceAll(k, "/", ".")+"="+v)
	}
	for _, p := range n.Loopback {
		want = append(want, fmt.Sprintf("ip addr add %v dev lo", p))
	}
	ifs := ClabIfaces(topo)
	for _, lk := range topo.Links {
		for _, e := range []Endpoint{lk.A, lk.B} {
			if e.Node == n.Name {
				want = append(want, fmt.Sprintf("ip addr add %v dev %s", e.Addr, ifs[e.Node+":"+e.Iface]))
			}
		}
	}
	for _, tu := range topo.Tunnels {
		for _, e := range []TunnelEnd{tu.A, tu.B} {
			if e.Node == n.Name && tu.builds(n.Name) {
				want = append(want, fmt.Sprintf("ip addr add %v dev %s", e.Addr, tu.Name))
			}
		}
	}
	for _, r := range n.Routes {
		want = append(want, fmt.Sprintf("ip route replace %v via %v", r.Dst, r.Via))
	}
	return want
}
