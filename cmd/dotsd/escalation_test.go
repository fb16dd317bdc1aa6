package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/pki"
)

// TestEscalationAtRouters: a client that keeps reporting under-attack is
// moved up its domain's ladder (FlowSpec, the scrubbing on-ramp, RTBH) at
// real FRR, BIRD and ExaBGP routers, each step in its status note, and
// back down when it reports the attack mitigated; the withdrawal leaves no
// route behind.
func TestEscalationAtRouters(t *testing.T) {
	bin := buildDotsd(t)
	e := startEdges(t)
	dir, port := t.TempDir(), freePort(t)
	if _, err := pki.Dev(dir, []string{"alpha"}); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
policy: {active-but-terminating: 1s}
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25"]
    match: {common-names: [alpha]}
divert:
  bgp:
    local-as: 65001
    router-id: 192.0.2.254
    scrubbing: {next-hop-v4: 198.51.100.1}
    domains: {alpha: {rtbh: true}}
    neighbors:
%s%s%sescalation:
  alpha: {steps: [flowspec, scrubbing, rtbh], up-after: 1s, down-after: 1s}
`, port, neighborLine("frr", e.frr), neighborLine("bird", e.bird), neighborLine("exabgp", e.exa))
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startDotsd(t, bin, "--config", path)
	alpha := dialAs(t, dir, "alpha", fmt.Sprintf("127.0.0.1:%d", port))

	scope := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600)}
	flow := want{family: "ipv4-flowspec", flow: map[string]string{"destination": "203.0.113.10/32"}, actions: []string{"discard"}}
	onramp := want{family: "ipv4-unicast", prefix: "203.0.113.10/32", nexthop: "198.51.100.1"}
	at := func(what string, route want, kind, why string) {
		t.Helper()
		e.holds(t, what, allEdges, route)
		waitUntil(t, what+": status note", func() (bool, string) {
			st, note := statusNote(t, alpha, 1)
			return st == dots.StatusMitigated && strings.HasPrefix(note, "escalation: "+kind) && strings.Contains(note, why), fmt.Sprintf("%s %q", st, note)
		})
		_, note := statusNote(t, alpha, 1)
		t.Logf("%s: %s", what, note)
	}
	report := func(a dots.AttackStatus) {
		t.Helper()
		expectCode(t, "efficacy "+a.String(), dots.Changed)(alpha.Efficacy(reqCtx(t), 1, scope, a))
	}

	expectCode(t, "mitigate", dots.Created)(alpha.Mitigate(reqCtx(t), 1, scope))
	at("first step", flow, "flowspec", "(step 1 of 3)")
	report(dots.AttackUnderAttack)
	at("still under attack", onramp, "scrubbing", "flowspec left after the client reported under-attack")
	for name, rs := range e.routes(t) {
		for _, r := range rs {
			if strings.Contains(strings.Join(r.Communities, " "), "65535:666") {
				t.Fatalf("%s: the on-ramp carries BLACKHOLE: %+v", name, r)
			}
		}
	}
	report(dots.AttackUnderAttack)
	at("under attack at scrubbing", rtbh4, "rtbh", "scrubbing left after the client reported under-attack")
	report(dots.AttackMitigated)
	at("mitigated", onramp, "scrubbing", "rtbh left after the client reported attack-successfully-mitigated")
	report(dots.AttackMitigated)
	at("mitigated again", flow, "flowspec", "scrubbing left after the client reported attack-successfully-mitigated")

	expectCode(t, "withdraw", dots.Deleted)(alpha.Withdraw(reqCtx(t), 1))
	e.holds(t, "nothing left after the withdrawal", allEdges)
}
