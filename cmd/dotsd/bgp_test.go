package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// edges are the three real routers a BGP test peers with.
type edges struct {
	frr  *lab.FRR
	bird *lab.BIRD
	exa  *lab.ExaBGP
}

func startEdges(t *testing.T) *edges {
	t.Helper()
	return &edges{frr: lab.StartFRR(t, lab.Options{}), bird: lab.StartBIRD(t, lab.Options{}), exa: lab.StartExaBGP(t, lab.Options{})}
}

// routes returns each router's routes by router name.
func (e *edges) routes(t *testing.T) map[string][]lab.Route {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]lab.Route{"exabgp": e.exa.Routes()}
	var err error
	if out["frr"], err = e.frr.Routes(ctx); err != nil {
		t.Logf("frr routes: %v", err)
	}
	if out["bird"], err = e.bird.Routes(ctx); err != nil {
		t.Logf("bird routes: %v", err)
	}
	return out
}

// neighborLine is a divert.bgp.neighbors entry (YAML, in a list at
// indentation 6) for a router of package lab.
func neighborLine(name string, a interface{ Addr() netip.AddrPort }) string {
	return fmt.Sprintf("      - {name: %s, address: %q, port: %d, peer-as: 65000, local-address: 127.0.0.1}\n", name, a.Addr().Addr(), a.Addr().Port())
}

func bgpDotsdConfig(t *testing.T, dir string, port int, e *edges, minV4 int) string {
	t.Helper()
	if _, err := pki.Dev(dir, []string{"alpha", "beta"}); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
policy: {active-but-terminating: 1s}
log: {level: debug}
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25", "2001:db8:6401::/48"]
    match: {common-names: [alpha]}
  - name: beta
    prefixes: ["203.0.113.128/25", "2001:db8:6402::/48"]
    match: {common-names: [beta]}
divert:
  bgp:
    local-as: 65001
    router-id: 192.0.2.254
    min-prefix-length-v4: %d
    graceful-restart: {enabled: true, restart-time: 120}
    scrubbing: {next-hop-v4: 198.51.100.1, next-hop-v6: "2001:db8:ffff::1"}
    domains:
      alpha: {rtbh: true, countermeasure: rtbh}
      beta: {countermeasure: flowspec}
    neighbors:
%s%s%s`, port, minV4, neighborLine("frr", e.frr), neighborLine("bird", e.bird), neighborLine("exabgp", e.exa))
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func dialAs(t testing.TB, dir, name, addr string) *dotsclient.Client {
	t.Helper()
	cert, _, err := pki.LoadKeyPair(filepath.Join(dir, "clients", name, "cert.pem"), filepath.Join(dir, "clients", name, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := dotsclient.Dial(reqCtx(t), dotsclient.Config{Servers: []string{addr}, Certificate: cert, RootCAs: roots})
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// want describes a route a router must hold.
type want struct {
	family, prefix, nexthop string
	communities             []string
	flow                    map[string]string
	actions                 []string
}

func (w want) match(r lab.Route) bool {
	if r.Family != w.family {
		return false
	}
	if w.prefix != "" && r.Prefix != w.prefix {
		return false
	}
	if w.nexthop != "" && r.NextHop != w.nexthop {
		return false
	}
	for _, c := range w.communities {
		if !slices.Contains(r.Communities, c) {
			return false
		}
	}
	for k, v := range w.flow {
		if r.FlowSpec[k] != v {
			return false
		}
	}
	for _, a := range w.actions {
		if !slices.Contains(r.Actions, a) {
			return false
		}
	}
	return true
}

// holds waits until every router in names holds exactly the wanted routes.
func (e *edges) holds(t *testing.T, what string, names []string, wants ...want) {
	t.Helper()
	err := lab.WaitFor(context.Background(), 20*time.Second, func() (bool, string) {
		all := e.routes(t)
		for _, n := range names {
			rs := all[n]
			if len(rs) != len(wants) {
				return false, fmt.Sprintf("%s holds %d routes, want %d: %+v", n, len(rs), len(wants), rs)
			}
			for _, w := range wants {
				if !slices.ContainsFunc(rs, w.match) {
					return false, fmt.Sprintf("%s lacks %+v; holds %+v", n, w, rs)
				}
			}
		}
		return true, ""
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

var allEdges = []string{"frr", "bird", "exabgp"}

var (
	rtbh4 = want{family: "ipv4-unicast", prefix: "203.0.113.10/32", nexthop: "192.0.2.1", communities: []string{"65535:666", "65535:65281"}}
	rtbh6 = want{family: "ipv6-unicast", prefix: "2001:db8:6401::10/128", nexthop: "100::1", communities: []string{"65535:666", "65535:65281"}}
	flow4 = want{family: "ipv4-flowspec", flow: map[string]string{"destination": "203.0.113.130/32", "protocol": "=6", "destination-port": "=443 =8080"}, actions: []string{"discard"}}
	flow6 = want{family: "ipv6-flowspec", flow: map[string]string{"destination": "2001:db8:6402::1/128", "protocol": "=17"}, actions: []string{"discard"}}
)

// TestBGPDiversion: DOTS requests end as RTBH routes and FlowSpec rules at
// real FRR, BIRD and ExaBGP routers, IPv4 and IPv6, and are gone after
// DELETE and after lifetime expiry.
func TestBGPDiversion(t *testing.T) {
	bin := buildDotsd(t)
	e := startEdges(t)
	dir, port := t.TempDir(), freePort(t)
	cfg := bgpDotsdConfig(t, dir, port, e, 24)
	startDotsd(t, bin, "--config", cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	alpha, beta := dialAs(t, dir, "alpha", addr), dialAs(t, dir, "beta", addr)

	expectCode(t, "alpha rtbh", dots.Created)(alpha.Mitigate(reqCtx(t), 1, dots.Scope{
		TargetPrefix: []string{"203.0.113.10/32", "2001:db8:6401::10/128"}, Lifetime: dots.Ptr[int64](3600)}))
	e.holds(t, "RTBH announced", allEdges, rtbh4, rtbh6)
	waitUntil(t, "alpha mitigated", func() (bool, string) {
		st, note := statusNote(t, alpha, 1)
		return st == dots.StatusMitigated && strings.Contains(note, "frr") && strings.Contains(note, "exabgp"), fmt.Sprintf("%s %q", st, note)
	})

	// The running server's neighbors, through the admin socket.
	out, err := exec.Command(bin, "bgp", "neighbors", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("dotsd bgp neighbors: %v\n%s", err, out)
	}
	for _, want := range []string{"frr", "bird", "exabgp", "established", "ipv4-flowspec"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("dotsd bgp neighbors does not show %q:\n%s", want, out)
		}
	}

	expectCode(t, "beta flowspec v4", dots.Created)(beta.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.130/32"},
		TargetPortRange: []dots.PortRange{{LowerPort: 443}, {LowerPort: 8080}}, TargetProtocol: []uint32{6}, Lifetime: dots.Ptr[int64](3600)}))
	expectCode(t, "beta flowspec v6", dots.Created)(beta.Mitigate(reqCtx(t), 2, dots.Scope{TargetPrefix: []string{"2001:db8:6402::1/128"},
		TargetProtocol: []uint32{17}, Lifetime: dots.Ptr[int64](5)}))
	e.holds(t, "FlowSpec announced", allEdges, rtbh4, rtbh6, flow4, flow6)

	// A Levee client may ask for the scrubbing on-ramp instead of its domain's default.
	expectCode(t, "alpha scrubbing", dots.Created)(alpha.Mitigate(reqCtx(t), 2, dots.Scope{TargetPrefix: []string{"203.0.113.20/32"},
		Lifetime: dots.Ptr[int64](3600), Countermeasure: "scrubbing"}))
	onramp := want{family: "ipv4-unicast", prefix: "203.0.113.20/32", nexthop: "198.51.100.1", communities: []string{"65535:65281"}}
	e.holds(t, "scrubbing on-ramp announced", allEdges, rtbh4, rtbh6, flow4, flow6, onramp)
	for name, rs := range e.routes(t) {
		for _, r := range rs {
			if r.Prefix == "203.0.113.20/32" && slices.Contains(r.Communities, "65535:666") {
				t.Fatalf("%s: the on-ramp route carries BLACKHOLE: %+v", name, r)
			}
		}
	}
	expectCode(t, "alpha withdraw scrubbing", dots.Deleted)(alpha.Withdraw(reqCtx(t), 2))
	expectCode(t, "alpha withdraw", dots.Deleted)(alpha.Withdraw(reqCtx(t), 1))
	e.holds(t, "RTBH withdrawn after DELETE and active-but-terminating", allEdges, flow4, flow6)
	// beta's mid 2 has a 5 s lifetime: it expires.
	e.holds(t, "FlowSpec v6 withdrawn at expiry", allEdges, flow4)
	expectCode(t, "beta withdraw", dots.Deleted)(beta.Withdraw(reqCtx(t), 1))
	e.holds(t, "all withdrawn", allEdges)
}

// TestBGPRefusals: a target shorter than the minimum and RTBH for a domain
// without RTBH rights are refused with a diagnostic; no route reaches a router.
func TestBGPRefusals(t *testing.T) {
	bin := buildDotsd(t)
	e := startEdges(t)
	dir, port := t.TempDir(), freePort(t)
	startDotsd(t, bin, "--config", bgpDotsdConfig(t, dir, port, e, 28))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	alpha, beta := dialAs(t, dir, "alpha", addr), dialAs(t, dir, "beta", addr)
	r := expectCode(t, "/25 shorter than the configured /28", dots.Forbidden)(alpha.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.0/25"}, Lifetime: dots.Ptr[int64](60)}))
	if !strings.Contains(r.Diag, "shorter than /28") {
		t.Fatalf("diagnostic %q", r.Diag)
	}
	r = expectCode(t, "beta asks rtbh", dots.Forbidden)(beta.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.130/32"},
		Lifetime: dots.Ptr[int64](60), Countermeasure: "rtbh"}))
	if !strings.Contains(r.Diag, "may not request RTBH") {
		t.Fatalf("diagnostic %q", r.Diag)
	}
	// Give an announcement time to arrive if one had been made.
	waitUntil(t, "routers established", func() (bool, string) { return e.exa.Established(), "exabgp not established" })
	time.Sleep(time.Second)
	e.holds(t, "nothing announced", allEdges)
}

// TestBGPCrashRestart: kill -9 dotsd with active mitigations, withdraw one
// while it is down (by expiry), restart: the routers end with exactly the
// active set.
func TestBGPCrashRestart(t *testing.T) {
	bin := buildDotsd(t)
	e := startEdges(t)
	dir, port := t.TempDir(), freePort(t)
	cfg := bgpDotsdConfig(t, dir, port, e, 24)
	d := startDotsd(t, bin, "--config", cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	alpha, beta := dialAs(t, dir, "alpha", addr), dialAs(t, dir, "beta", addr)
	expectCode(t, "alpha rtbh", dots.Created)(alpha.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.10/32", "2001:db8:6401::10/128"}, Lifetime: dots.Ptr[int64](3600)}))
	expectCode(t, "beta v4", dots.Created)(beta.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.130/32"},
		TargetPortRange: []dots.PortRange{{LowerPort: 443}, {LowerPort: 8080}}, TargetProtocol: []uint32{6}, Lifetime: dots.Ptr[int64](3600)}))
	expectCode(t, "beta v6 short", dots.Created)(beta.Mitigate(reqCtx(t), 2, dots.Scope{TargetPrefix: []string{"2001:db8:6402::1/128"},
		TargetProtocol: []uint32{17}, Lifetime: dots.Ptr[int64](4)}))
	e.holds(t, "announced", allEdges, rtbh4, rtbh6, flow4, flow6)
	d.kill(t)
	time.Sleep(5 * time.Second) // beta's mid 2 expires while dotsd is down
	startDotsd(t, bin, "--config", cfg)
	e.holds(t, "exactly the active set after restart", allEdges, rtbh4, rtbh6, flow4)
	for _, r := range e.routes(t)["frr"] {
		if r.Stale {
			t.Errorf("frr still holds a stale route after the restart: %+v", r)
		}
	}
}
