//go:build linux

package netlab

import (
	"fmt"
	"strings"

	"github.com/levee-dots/levee/escalate"
)

// LabTable is the nftables table scrubd installs in the scrubber.
const LabTable = "levee_lab"

// Daemon names and the lab's AS numbers.
const (
	EdgeAS  = 65000
	DotsdAS = 65001
)

// DaemonConfig describes where the scrubbing scenario's daemons listen and
// what they program, and renders their configuration files. The same
// values serve the namespace lab and a containerlab export.
type DaemonConfig struct {
	NodeAddr   string // scrubd's API (host:port)
	SignalAddr string // dotsd's signal channel (host:port)
	// Interface is scrubd's ingress device; NetNS its namespace ("":
	// scrubd runs in the scrubber itself).
	Interface string
	NetNS     string
	// BGP: dotsd announces the on-ramp to the edge's BIRD.
	BGP bool
	// Return, if set, is scrubd's return: section (scrubd builds its end
	// of the clean-traffic tunnel).
	Return string
	// Escalation, if set, is client alpha's escalation ladder; with BGP
	// the edge then also receives FlowSpec (ipv4-flowspec), which its
	// BIRD keeps in FlowTable.
	Escalation *escalate.Ladder
	// Dashboard, if set, is where dotsd serves its dashboard (host:port),
	// with the bearer token in DashboardToken beside dotsd.yaml.
	Dashboard string
}

// DashboardToken is the file of the dashboard's token, in the lab's
// directory (mode 0600, as dotsd requires).
const DashboardToken = "dashboard.token"

// Scrubd is scrubd.yaml; paths are relative to the file (the PKI of
// pki.Dev in the same directory).
func (c DaemonConfig) Scrubd() string {
	var b strings.Builder
	fmt.Fprintf(&b, `listen: %q
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem], client-names: [dotsd]}
interface: %s
table: %s
`, c.NodeAddr, c.Interface, LabTable)
	if c.NetNS != "" {
		fmt.Fprintf(&b, "netns: %s\n", c.NetNS)
	}
	if c.Return != "" {
		fmt.Fprintf(&b, "return: %s\n", c.Return)
	}
	return b.String()
}

// Dotsd is dotsd.yaml: client alpha may ask for 203.0.113.0/25; its
// mitigations go to scrubd (polled every 200 ms) and, with BGP, the
// on-ramp is announced to the edge with the scrubber as next hop. With an
// escalation ladder the ladder picks the countermeasure, and the edge
// receives FlowSpec rules too. With Dashboard, dotsd serves its dashboard
// there.
func (c DaemonConfig) Dotsd() string {
	var b strings.Builder
	fmt.Fprintf(&b, `signal: {listen: [%q]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
policy: {active-but-terminating: 1s, max-active-but-terminating: 2s}
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25"]
    match: {common-names: [alpha]}
divert:
`, c.SignalAddr)
	if c.BGP {
		families, receives, domains := "ipv4-unicast", "scrubbing", "\n    domains: {alpha: {countermeasure: scrubbing}}"
		if c.Escalation != nil {
			families, receives, domains = "ipv4-unicast, ipv4-flowspec", "flowspec, scrubbing", "" // the ladder picks
		}
		fmt.Fprintf(&b, `  bgp:
    local-as: %d
    router-id: %s
    neighbors:
      - {name: edge, address: %s, peer-as: %d, local-address: %s, families: [%s], receives: [%s]}
    scrubbing: {next-hop-v4: %s}%s
`, DotsdAS, ControlAddr, EdgeBGPAddr, EdgeAS, ControlAddr, families, receives, ScrubberAddr, domains)
	}
	fmt.Fprintf(&b, `  scrub:
    domains: [alpha]
    certificate: clients/dotsd/cert.pem
    key: clients/dotsd/key.pem
    poll-interval: 200ms
    nodes: [{name: scrubber, url: "https://%s", ca: ca.pem}]
`, c.NodeAddr)
	if l := c.Escalation; l != nil {
		fmt.Fprintf(&b, "escalation:\n  alpha: {steps: [%s], up-after: %v, down-after: %v}\n", strings.Join(l.Steps, ", "), l.Up, l.Down)
	}
	if c.Dashboard != "" {
		fmt.Fprintf(&b, "dashboard: {listen: %q, token-file: %s}\n", c.Dashboard, DashboardToken)
	}
	return b.String()
}

// Dotsctl is dotsctl.yaml for client alpha.
func (c DaemonConfig) Dotsctl() string {
	return fmt.Sprintf(`servers: [%q]
certificate: clients/alpha/cert.pem
key: clients/alpha/key.pem
ca: ca.pem
state: alpha-state.json
`, c.SignalAddr)
}

// FlowTable is the edge BIRD's table of FlowSpec rules (BIRD keeps them;
// it does not install them into the kernel).
const FlowTable = "flowtab4"

// EdgeBIRD is the edge router's bird.conf: one eBGP session to dotsd, and
// the kernel protocol exporting what it learns into the edge's FIB.
func EdgeBIRD() string { return DaemonConfig{BGP: true}.BIRD() }

// BIRD is the edge router's bird.conf for c: EdgeBIRD, and with an
// escalation ladder a flow4 channel that accepts dotsd's FlowSpec rules
// into FlowTable.
func (c DaemonConfig) BIRD() string {
	table, channel := "", ""
	if c.Escalation != nil {
		table = fmt.Sprintf("flow4 table %s;\n", FlowTable)
		channel = fmt.Sprintf("  flow4 { table %s; import all; export none; };\n", FlowTable)
	}
	return fmt.Sprintf(`router id %s;
log stderr all;
%sprotocol device { }
protocol kernel { ipv4 { export where proto = "dotsd"; }; }
protocol bgp dotsd {
  local %s as %d;
  neighbor %s as %d;
  ipv4 { import all; export none; };
%s}
`, EdgeBGPAddr, table, EdgeBGPAddr, EdgeAS, ControlAddr, DotsdAS, channel)
}
