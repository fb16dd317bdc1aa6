package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// grEdges are the routers of the graceful-restart tests: the two that act
// as graceful-restart helpers (ExaBGP does not advertise the capability).
type grEdges struct {
	frr  *lab.FRR
	bird *lab.BIRD
}

func (e grEdges) routes(t *testing.T) map[string][]lab.Route {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]lab.Route{}
	var err error
	if out["frr"], err = e.frr.Routes(ctx); err != nil {
		t.Logf("frr routes: %v", err)
	}
	if out["bird"], err = e.bird.Routes(ctx); err != nil {
		t.Logf("bird routes: %v", err)
	}
	return out
}

// holds waits until the router holds exactly the wanted routes, each with
// the wanted staleness (FRR marks stale paths; BIRD does not show it).
func (e grEdges) holds(t *testing.T, what, name string, stale bool, wants ...want) {
	t.Helper()
	err := lab.WaitFor(context.Background(), 30*time.Second, func() (bool, string) {
		rs := e.routes(t)[name]
		if len(rs) != len(wants) {
			return false, fmt.Sprintf("%s holds %d routes, want %d:\n%s", name, len(rs), len(wants), lab.FormatRoutes(rs))
		}
		for _, w := range wants {
			if !slices.ContainsFunc(rs, func(r lab.Route) bool { return w.match(r) && (name != "frr" || r.Stale == stale) }) {
				return false, fmt.Sprintf("%s lacks %+v (stale %v); holds:\n%s", name, w, stale, lab.FormatRoutes(rs))
			}
		}
		return true, ""
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sessionDown waits until the router no longer has a session with dotsd.
func (e grEdges) sessionDown(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	err := lab.WaitFor(ctx, 15*time.Second, func() (bool, string) {
		f, err1 := e.frr.Established(ctx)
		b, err2 := e.bird.Established(ctx)
		return err1 == nil && err2 == nil && !f && !b, fmt.Sprintf("frr established %v (%v), bird established %v (%v)", f, err1, b, err2)
	})
	if err != nil {
		t.Fatalf("sessions still up after dotsd stopped: %v", err)
	}
	// How each router saw the end of the session: a Cease, or a closed
	// connection (graceful restart).
	if out, err := e.frr.Vtysh(ctx, "show bgp neighbors 127.0.0.1 json"); err == nil {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "lastReset") || strings.Contains(l, "lastNotification") || strings.Contains(l, "gracefulRestart") {
				t.Logf("frr: %s", strings.TrimSpace(l))
			}
		}
	}
	for _, l := range strings.Split(e.birdGR(t), "\n") {
		if strings.Contains(l, "Last error") || strings.Contains(l, "graceful") {
			t.Logf("bird: %s", strings.TrimSpace(l))
		}
	}
}

// birdGR is BIRD's view of graceful restart on the session with dotsd.
func (e grEdges) birdGR(t *testing.T) string {
	t.Helper()
	out, err := e.bird.Birdc(context.Background(), "show", "protocols", "all", "speaker")
	if err != nil {
		t.Fatalf("birdc: %v", err)
	}
	return out
}

func grDotsdConfig(t *testing.T, dir string, port int, e grEdges, withdraw bool) string {
	t.Helper()
	if _, err := pki.Dev(dir, []string{"alpha", "beta"}); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
log: {level: info}
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
    graceful-restart: {enabled: true, restart-time: 120, withdraw-on-shutdown: %v}
    domains:
      alpha: {rtbh: true, countermeasure: rtbh}
      beta: {countermeasure: flowspec}
    neighbors:
%s%s`, port, withdraw, neighborLine("frr", e.frr), neighborLine("bird", e.bird))
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// terminate sends SIGTERM and checks that dotsd exits cleanly without an
// ERROR line (its own or GoBGP's, which logs through the same logger).
func (d *daemon) terminate(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("dotsd (pid %d) still running 20 s after SIGTERM\n%s", d.cmd.Process.Pid, d.stderr)
	}
	if d.err != nil {
		t.Fatalf("dotsd exited with %v after SIGTERM\n%s", d.err, d.stderr)
	}
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("ERROR logged by a clean stop: %s", line)
		}
		if strings.Contains(line, "level=WARN") {
			t.Logf("dotsd warned: %s", line)
		}
	}
}

// announceGR starts dotsd and has alpha blackhole 203.0.113.10/32 and
// 2001:db8:6401::10/128 and beta filter TCP 443 and 8080 to 203.0.113.130.
func announceGR(t *testing.T, bin, cfg, dir string, port int, e grEdges) *daemon {
	t.Helper()
	d := startDotsd(t, bin, "--config", cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	alpha, beta := dialAs(t, dir, "alpha", addr), dialAs(t, dir, "beta", addr)
	expectCode(t, "alpha rtbh", dots.Created)(alpha.Mitigate(reqCtx(t), 1, dots.Scope{
		TargetPrefix: []string{"203.0.113.10/32", "2001:db8:6401::10/128"}, Lifetime: dots.Ptr[int64](3600)}))
	expectCode(t, "beta flowspec", dots.Created)(beta.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.130/32"},
		TargetPortRange: []dots.PortRange{{LowerPort: 443}, {LowerPort: 8080}}, TargetProtocol: []uint32{6}, Lifetime: dots.Ptr[int64](3600)}))
	for _, name := range []string{"frr", "bird"} {
		e.holds(t, "announced", name, false, rtbh4, rtbh6, flow4)
	}
	alpha.Close()
	beta.Close()
	return d
}

// TestGracefulRestartKeepsRoutes: with graceful restart, a clean stop of
// dotsd (SIGTERM) leaves the routes at the routers as stale while dotsd is
// down, and the next start on the same store refreshes them.
func TestGracefulRestartKeepsRoutes(t *testing.T) {
	bin := buildDotsd(t)
	e := grEdges{frr: lab.StartFRR(t, lab.Options{}), bird: lab.StartBIRD(t, lab.Options{})}
	dir, port := t.TempDir(), freePort(t)
	cfg := grDotsdConfig(t, dir, port, e, false)
	d := announceGR(t, bin, cfg, dir, port, e)

	d.terminate(t)
	e.sessionDown(t)
	// FRR keeps the RTBH routes as stale but flushes FlowSpec at once: FRR
	// 8.4 does not preserve FlowSpec across a peer's graceful restart.
	e.holds(t, "frr while dotsd is down", "frr", true, rtbh4, rtbh6)
	// BIRD keeps all of them, FlowSpec included, as stale.
	e.holds(t, "bird while dotsd is down", "bird", false, rtbh4, rtbh6, flow4)
	if out := e.birdGR(t); !strings.Contains(out, "graceful restart active") {
		t.Fatalf("bird does not show graceful restart while dotsd is down:\n%s", out)
	}
	time.Sleep(3 * time.Second) // still there a while later: kept, not slow to go
	e.holds(t, "frr 3 s later", "frr", true, rtbh4, rtbh6)
	e.holds(t, "bird 3 s later", "bird", false, rtbh4, rtbh6, flow4)

	startDotsd(t, bin, "--config", cfg)
	e.holds(t, "frr after dotsd is back", "frr", false, rtbh4, rtbh6, flow4)
	e.holds(t, "bird after dotsd is back", "bird", false, rtbh4, rtbh6, flow4)
	// BIRD ends graceful restart at our End-of-RIB and flushes what is
	// still stale: the routes it still holds then were refreshed.
	err := lab.WaitFor(context.Background(), 20*time.Second, func() (bool, string) {
		out := e.birdGR(t)
		return !strings.Contains(out, "graceful restart active"), out
	})
	if err != nil {
		t.Fatalf("bird still in graceful restart after dotsd is back: %v", err)
	}
	e.holds(t, "bird after graceful restart ended", "bird", false, rtbh4, rtbh6, flow4)
}

// TestGracefulRestartWithdrawOnShutdown: with withdraw-on-shutdown, a clean
// stop ends the sessions with a Cease and the routers drop every route.
func TestGracefulRestartWithdrawOnShutdown(t *testing.T) {
	bin := buildDotsd(t)
	e := grEdges{frr: lab.StartFRR(t, lab.Options{}), bird: lab.StartBIRD(t, lab.Options{})}
	dir, port := t.TempDir(), freePort(t)
	cfg := grDotsdConfig(t, dir, port, e, true)
	d := announceGR(t, bin, cfg, dir, port, e)
	d.terminate(t)
	e.sessionDown(t)
	e.holds(t, "frr after the stop", "frr", false)
	e.holds(t, "bird after the stop", "bird", false)
}
