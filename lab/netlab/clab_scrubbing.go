//go:build linux

package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/levee-dots/levee/pki"
)

// ClabImage is the default image of an exported lab's nodes: one with
// iproute2, nftables, bird2 and dotsd, scrubd and dotsctl in the PATH.
const ClabImage = "levee-lab:dev"

// ScrubbingClabTopology is the topology of the scrubbing lab as
// containers: ScrubbingWithControl, the target's end of the return tunnel
// (scrubd builds the scrubber's), and a route from the control node to
// the scrubber, since scrubd runs in the scrubber's container there and
// dotsd reaches its API through the edge.
func ScrubbingClabTopology() Topology {
	t := ScrubbingWithControl()
	t.Name = "levee-scrubbing"
	ScrubdForwards(&t)
	d := ScrubdDiversion()
	t.Tunnels = append(t.Tunnels, d.Tunnel)
	for i := range t.Nodes {
		if t.Nodes[i].Name == Control {
			t.Nodes[i].Routes = append(t.Nodes[i].Routes, Route{Dst: netip.PrefixFrom(ScrubberAddr, 30).Masked(), Via: EdgeBGPAddr})
		}
	}
	return t
}

// ExportScrubbing writes the scrubbing lab as a containerlab topology to
// file, with the daemons' configurations (bird.conf, dotsd.yaml,
// scrubd.yaml, dotsctl.yaml) and a development PKI beside it, bound into
// the containers under /etc/levee (BIRD's under /etc/bird).
func ExportScrubbing(file, image string) error {
	if image == "" {
		image = ClabImage
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netlab: export: %w", err)
	}
	topo := ScrubbingClabTopology()
	ifs := ClabIfaces(topo)
	cfg := DaemonConfig{NodeAddr: netip.AddrPortFrom(ScrubberAddr, 8443).String(), SignalAddr: "127.0.0.1:4646",
		Interface: ifs[Scrubber+":"+ScrubberIface], BGP: true, Return: ReturnSection(ScrubdDiversion())}
	if _, err := pki.Dev(dir, []string{"alpha", "dotsd"}, ScrubberAddr.String()); err != nil {
		return fmt.Errorf("netlab: export: pki: %w", err)
	}
	files := map[string]string{"bird.conf": EdgeBIRD(), "dotsd.yaml": cfg.Dotsd(), "scrubd.yaml": cfg.Scrubd(), "dotsctl.yaml": cfg.Dotsctl()}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("netlab: export: %w", err)
		}
	}
	out, err := Containerlab(topo, scrubbingClabOptions(image))
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		return fmt.Errorf("netlab: export: %w", err)
	}
	return nil
}

func scrubbingClabOptions(image string) ClabOptions {
	pkiBinds := []string{"ca.pem:/etc/levee/ca.pem:ro", "server:/etc/levee/server:ro"}
	background := func(bin string) string {
		return fmt.Sprintf("sh -c '%s --config /etc/levee/%s.yaml >/var/log/%s.log 2>&1 &'", bin, bin, bin)
	}
	return ClabOptions{
		Image: image,
		Binds: map[string][]string{
			Edge:     {"bird.conf:/etc/bird/bird.conf:ro"},
			Scrubber: append([]string{"scrubd.yaml:/etc/levee/scrubd.yaml:ro"}, pkiBinds...),
			Control: append([]string{"dotsd.yaml:/etc/levee/dotsd.yaml:ro", "dotsctl.yaml:/etc/levee/dotsctl.yaml:ro",
				"clients:/etc/levee/clients:ro"}, pkiBinds...),
		},
		Exec: map[string][]string{
			Edge:     {"bird -c /etc/bird/bird.conf -s /run/bird.ctl"},
			Scrubber: {background("scrubd")},
			Control:  {background("dotsd")},
		},
	}
}
