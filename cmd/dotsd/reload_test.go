package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// reloadClients are client domains of the reload test, in YAML.
var reloadClients = map[string]string{
	"alpha": `  - name: alpha
    prefixes: ["203.0.113.0/25"]
    match: {common-names: [alpha]}
`,
	"beta": `  - name: beta
    prefixes: ["203.0.113.128/26"]
    match: {common-names: [beta]}
`,
	"gamma": `  - name: gamma
    prefixes: ["203.0.113.192/26"]
    match: {common-names: [gamma]}
`,
}

// reloadConfig is the test's dotsd.yaml with the named clients and
// neighbors, and extra lines at the top level.
func reloadConfig(port int, level string, clients []string, neighbors []*lab.ExaBGP, extra string) string {
	var cl, nb strings.Builder
	for _, c := range clients {
		cl.WriteString(reloadClients[c])
	}
	for i, e := range neighbors {
		nb.WriteString(neighborLine(fmt.Sprintf("exa%d", i+1), e))
	}
	return fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
log: {level: %s}
%sclients:
%sdivert:
  bgp:
    local-as: 65001
    router-id: 192.0.2.254
    default-policy: {rtbh: true, countermeasure: rtbh}
    neighbors:
%s`, port, level, extra, cl.String(), nb.String())
}

// hup writes text to path, sends SIGHUP and waits for the n-th reload
// to end (applied or refused); it returns the log lines of that reload.
func (d *daemon) hup(t *testing.T, path, text string, n int) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(d.stderr.String())
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	var out string
	err := lab.WaitFor(t.Context(), 20*time.Second, func() (bool, string) {
		out = d.stderr.String()[before:]
		done := strings.Count(d.stderr.String(), "msg=\"configuration reloaded\"") + strings.Count(d.stderr.String(), "configuration reload refused")
		return done >= n, out
	})
	if err != nil {
		t.Fatalf("reload %d did not end: %v", n, err)
	}
	return out
}

// neighborSessions returns, by name, how often each BGP neighbor's session
// was established (dotsd bgp neighbors -o json).
func neighborSessions(t *testing.T, bin, cfg string) map[string]int {
	t.Helper()
	out, err := exec.Command(bin, "bgp", "neighbors", "--config", cfg, "-o", "json").Output()
	if err != nil {
		t.Fatalf("dotsd bgp neighbors: %v\n%s", err, out)
	}
	var ns []bgp.NeighborStatus
	if err := json.Unmarshal(out, &ns); err != nil {
		t.Fatalf("dotsd bgp neighbors -o json: %v\n%s", err, out)
	}
	m := map[string]int{}
	for _, n := range ns {
		m[n.Name] = n.Sessions
	}
	return m
}

func dialFails(t *testing.T, dir, name, addr string) {
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
		return
	}
	// A TLS 1.3 client finishes its handshake before the server checked
	// its certificate: the refusal comes with the first exchange.
	defer c.Close()
	if r, err := c.Heartbeat(reqCtx(t), true); err == nil {
		t.Fatalf("%s has a session over %s (heartbeat answered %s), want its handshake refused", name, c.Transport(), r.Code)
	}
}

// TestReloadSIGHUP: a SIGHUP makes a real dotsd read its file again. A
// client added can connect; a removed one's session is closed; alpha's
// session (unchanged client) keeps its heartbeats and its mitigation, and
// its route stays at the router it was announced to, whose BGP session is
// not reset, while a neighbor added gets the route. A key that needs a
// restart is reported as such. A file that does not validate, or names a
// file that does not load, is refused with an ERROR naming the key, and
// the configuration in force keeps serving.
func TestReloadSIGHUP(t *testing.T) {
	bin := buildDotsd(t)
	exa1 := lab.StartExaBGP(t, lab.Options{})
	exa2 := lab.StartExaBGP(t, lab.Options{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.5"), 0)})
	dir, port := t.TempDir(), freePort(t)
	if _, err := pki.Dev(dir, []string{"alpha", "beta", "gamma"}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "dotsd.yaml")
	first := reloadConfig(port, "debug", []string{"alpha", "beta"}, []*lab.ExaBGP{exa1}, "")
	if err := os.WriteFile(cfg, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDotsd(t, bin, "--config", cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	alpha, beta := dialAs(t, dir, "alpha", addr), dialAs(t, dir, "beta", addr)
	dialFails(t, dir, "gamma", addr)
	expectCode(t, "alpha rtbh", dots.Created)(alpha.Mitigate(reqCtx(t), 1, dots.Scope{
		TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600)}))
	rtbh := want{family: "ipv4-unicast", prefix: "203.0.113.10/32", nexthop: "192.0.2.1", communities: []string{"65535:666", "65535:65281"}}
	waitUntil(t, "exa1 holds alpha's route", exaHas(exa1, rtbh))
	if s := neighborSessions(t, bin, cfg); s["exa1"] != 1 {
		t.Fatalf("exa1 sessions before the reload: %v", s)
	}
	updates := exa1.Updates()

	// gamma added, beta removed, exa2 added; log.level needs a restart.
	out := d.hup(t, cfg, reloadConfig(port, "info", []string{"alpha", "gamma"}, []*lab.ExaBGP{exa1, exa2}, ""), 1)
	for _, w := range []string{"added=gamma", "removed=beta", "added=exa2", `needs a restart to take effect; the running value stays" key=log.level`} {
		if !strings.Contains(out, w) {
			t.Errorf("the reload log lacks %q:\n%s", w, out)
		}
	}
	select {
	case <-beta.Done():
	case <-time.After(10 * time.Second):
		t.Error("beta, removed, still has its session")
	}
	gamma := dialAs(t, dir, "gamma", addr)
	expectCode(t, "gamma rtbh", dots.Created)(gamma.Mitigate(reqCtx(t), 1, dots.Scope{
		TargetPrefix: []string{"203.0.113.200/32"}, Lifetime: dots.Ptr[int64](3600)}))
	expectCode(t, "gamma outside its prefixes", dots.Forbidden)(gamma.Mitigate(reqCtx(t), 2, dots.Scope{
		TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600)}))
	gammaRoute := want{family: "ipv4-unicast", prefix: "203.0.113.200/32", nexthop: "192.0.2.1", communities: []string{"65535:666", "65535:65281"}}
	waitUntil(t, "exa2 gets both routes", exaHas(exa2, rtbh, gammaRoute))
	waitUntil(t, "exa1 keeps alpha's route and gets gamma's", exaHas(exa1, rtbh, gammaRoute))
	if exa1.Updates() != updates+1 {
		t.Errorf("exa1 got %d UPDATEs across the reload, want 1 (gamma's route)", exa1.Updates()-updates)
	}
	alphaKeeps(t, alpha)
	if s := neighborSessions(t, bin, cfg); s["exa1"] != 1 || s["exa2"] != 1 {
		t.Errorf("BGP sessions after the reload: %v, want exa1 and exa2 established once", s)
	}
	if strings.Contains(d.stderr.String(), "session closed by the configuration reload\" cuid="+alpha.CUID()) {
		t.Error("alpha's session was closed by the reload")
	}

	// Refused reloads: nothing changes, the key is named.
	good := reloadConfig(port, "info", []string{"alpha", "gamma"}, []*lab.ExaBGP{exa1, exa2}, "")
	for i, tc := range []struct {
		name, text, key string
	}{
		{"bad prefix", strings.Replace(good, `"203.0.113.192/26"`, `"203.0.113.999/26"`, 1), "clients[1].prefixes[0]"},
		{"unknown key", strings.Replace(good, "log: {level: info}", "log: {level: info, colour: red}", 1), "log.colour"},
		{"CA file missing", strings.Replace(good, "client-cas: [ca.pem]", "client-cas: [missing-ca.pem]", 1), "tls.client-cas"},
		{"beta back, exa2 gone, but bad policy", reloadConfig(port, "info", []string{"alpha", "beta"}, []*lab.ExaBGP{exa1},
			"policy: {max-lifetime: -1s}\n"), "policy.max-lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := d.hup(t, cfg, tc.text, 2+i)
			var line string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "configuration reload refused") {
					line = l
				}
			}
			if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, tc.key) {
				t.Fatalf("want an ERROR line naming %s, got:\n%s", tc.key, out)
			}
			if strings.Contains(out, "clients reloaded") || strings.Contains(out, "bgp neighbors reloaded") {
				t.Fatalf("a refused reload changed something:\n%s", out)
			}
		})
	}
	dialFails(t, dir, "beta", addr)
	dialAs(t, dir, "gamma", addr).Close()
	alphaKeeps(t, alpha)
	waitUntil(t, "exa2 keeps the routes", exaHas(exa2, rtbh, gammaRoute))

	// exa2 removed: its session ends, exa1 keeps its session and routes.
	out = d.hup(t, cfg, reloadConfig(port, "info", []string{"alpha", "gamma"}, []*lab.ExaBGP{exa1}, ""), 6)
	if !strings.Contains(out, "removed=exa2") {
		t.Errorf("the reload log lacks removed=exa2:\n%s", out)
	}
	waitUntil(t, "exa2 down", func() (bool, string) { return !exa2.Established(), "established" })
	waitUntil(t, "exa1 keeps the routes", exaHas(exa1, rtbh, gammaRoute))
	if s := neighborSessions(t, bin, cfg); s["exa1"] != 1 || len(s) != 1 {
		t.Errorf("BGP sessions after exa2 was removed: %v, want exa1 established once, alone", s)
	}
	alphaKeeps(t, alpha)
}

// alphaKeeps checks that alpha's session answers heartbeats and still has
// mitigation 1 active.
func alphaKeeps(t *testing.T, alpha *dotsclient.Client) {
	t.Helper()
	select {
	case <-alpha.Done():
		t.Fatal("alpha's session was closed")
	default:
	}
	expectCode(t, "alpha heartbeat", dots.Changed)(alpha.Heartbeat(reqCtx(t), true))
	if st, note := statusNote(t, alpha, 1); st != dots.StatusMitigated {
		t.Fatalf("alpha's mitigation 1: %s %q", st, note)
	}
}

// exaHas waits for e to hold exactly the wanted routes.
func exaHas(e *lab.ExaBGP, wants ...want) func() (bool, string) {
	return func() (bool, string) {
		rs := e.Routes()
		if len(rs) != len(wants) {
			return false, fmt.Sprintf("holds %+v", rs)
		}
		for _, w := range wants {
			found := false
			for _, r := range rs {
				found = found || w.match(r)
			}
			if !found {
				return false, fmt.Sprintf("lacks %+v; holds %+v", w, rs)
			}
		}
		return true, ""
	}
}
