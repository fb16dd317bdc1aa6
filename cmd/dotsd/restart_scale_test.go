package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// scaleTarget is the target of mitigation i: 203.0.113.0-255/32, then
// /128s inside 2001:db8:100::/40.
func scaleTarget(i int) string {
	if i < 256 {
		return fmt.Sprintf("203.0.113.%d/32", i)
	}
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}
	return netip.AddrFrom16(a).String() + "/128"
}

// frrSession is FRR's view of its session with the speaker.
type frrSession struct {
	up       bool
	accepted int // FlowSpec prefixes, IPv4 and IPv6
	dropped  int // sessions dropped so far
}

func (s frrSession) String() string {
	return fmt.Sprintf("established %v, %d FlowSpec rules accepted, %d sessions dropped so far", s.up, s.accepted, s.dropped)
}

// frrSpeakerSession reads "show bgp neighbors 127.0.0.1 json".
func frrSpeakerSession(ctx context.Context, frr *lab.FRR) (frrSession, error) {
	out, err := frr.Vtysh(ctx, "show bgp neighbors 127.0.0.1 json")
	if err != nil {
		return frrSession{}, err
	}
	var nb map[string]struct {
		State   string `json:"bgpState"`
		Dropped int    `json:"connectionsDropped"`
		AF      map[string]struct {
			Accepted int `json:"acceptedPrefixCounter"`
		} `json:"addressFamilyInfo"`
	}
	if err := json.Unmarshal([]byte(out), &nb); err != nil {
		return frrSession{}, fmt.Errorf("frr neighbor json: %w: %.300s", err, out)
	}
	n, ok := nb["127.0.0.1"]
	if !ok {
		return frrSession{}, fmt.Errorf("frr does not list the speaker 127.0.0.1: %.300s", out)
	}
	s := frrSession{up: n.State == "Established", dropped: n.Dropped}
	for af, v := range n.AF {
		if strings.Contains(strings.ToLower(af), "flowspec") {
			s.accepted += v.Accepted
		}
	}
	return s, nil
}

// frrLogLines returns the lines of FRR's output (frr.out in its directory)
// that contain s.
func frrLogLines(t *testing.T, frr *lab.FRR, s string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(frr.Dir(), "frr.out"))
	if err != nil {
		t.Fatalf("reading FRR's log: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// TestRestartScaleFRR: dotsd with 2,000 active FlowSpec mitigations is
// killed with SIGKILL and restarted on the same store. FRR must get all
// 2,000 rules back over a session that then stays up (no reset in the 10 s
// after convergence), and must never log that a FlowSpec NLRI exceeded its
// maximum length (FRR resets the session when an UPDATE's FlowSpec NLRIs
// pass it).
func TestRestartScaleFRR(t *testing.T) {
	const n, clients = 2000, 4
	bin := buildDotsd(t)
	frr := lab.StartFRR(t, lab.Options{})
	dir, port := t.TempDir(), freePort(t)
	names := make([]string, clients)
	for i := range names {
		names[i] = fmt.Sprintf("fs%d", i)
	}
	if _, err := pki.Dev(dir, names); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
policy: {active-but-terminating: 1s, max-requests-per-client: 10000}
log: {level: info}
clients:
  - {name: fs, prefixes: ["203.0.113.0/24", "2001:db8:100::/40"], match: {common-names: [%s]}}
divert:
  bgp:
    local-as: 65001
    router-id: 192.0.2.254
    max-routes-per-domain: %d
    graceful-restart: {enabled: true, restart-time: 120}
    domains: {fs: {countermeasure: flowspec}}
    neighbors:
      - {name: frr, address: %q, port: %d, peer-as: 65000, local-address: 127.0.0.1, flowspec-budget: %[3]d}
`, port, strings.Join(names, ", "), n+500, frr.Addr().Addr(), frr.Addr().Port())
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	first := startDotsd(t, bin, "--config", path)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	// n mitigations, each client sending its share one after the other.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for k, name := range names {
		c := dialAs(t, dir, name, addr)
		wg.Go(func() { errs[k] = putShare(c, k, clients, n) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d FlowSpec mitigations created in %v", n, time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	var last frrSession
	converged := func() (bool, string) {
		s, err := frrSpeakerSession(ctx, frr)
		if err != nil {
			return false, err.Error()
		}
		last = s
		return s.up && s.accepted == n, s.String()
	}
	if err := lab.WaitFor(ctx, 30*time.Second, converged); err != nil {
		nlri := frrLogLines(t, frr, "nlri length maximum")
		t.Fatalf("before the kill: FRR does not hold the %d rules within 30 s (%s); FRR logged %d lines with \"nlri length maximum\"%s",
			n, last, len(nlri), firstLine(nlri))
	}
	t.Logf("before the kill: FRR holds all %d (%v after the first PUT)", n, time.Since(start).Round(time.Millisecond))

	first.kill(t)
	if err := lab.WaitFor(ctx, 10*time.Second, func() (bool, string) {
		s, err := frrSpeakerSession(ctx, frr)
		return err == nil && !s.up, fmt.Sprint(s, err)
	}); err != nil {
		t.Fatalf("FRR did not notice the kill: %v", err)
	}
	restart := time.Now()
	startDotsd(t, bin, "--config", path)
	err := lab.WaitFor(ctx, 40*time.Second, converged)
	nlri := frrLogLines(t, frr, "nlri length maximum")
	if err != nil {
		t.Fatalf("after the restart FRR does not hold the %d rules within 40 s (%s); FRR logged %d lines with \"nlri length maximum\"%s",
			n, last, len(nlri), firstLine(nlri))
	}
	t.Logf("after the restart: FRR holds all %d rules %v after the exec (%s)", n, time.Since(restart).Round(time.Millisecond), last)

	// The session stays up, with every rule, for 10 s.
	base := last
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		s, err := frrSpeakerSession(ctx, frr)
		if err != nil {
			t.Fatal(err)
		}
		if !s.up || s.dropped != base.dropped || s.accepted != n {
			t.Fatalf("after convergence the FRR session changed: %s (at convergence: %s)", s, base)
		}
	}
	// FlowSpec rules are not kept stale through a restart: all are fresh.
	routes, err := frr.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh := 0
	for _, r := range routes {
		if r.FlowSpec != nil && !r.Stale {
			fresh++
		}
	}
	if fresh != n {
		t.Errorf("FRR holds %d fresh FlowSpec rules, want %d", fresh, n)
	}
	if nlri = frrLogLines(t, frr, "nlri length maximum"); len(nlri) > 0 {
		t.Errorf("FRR logged %d lines with \"nlri length maximum\"%s", len(nlri), firstLine(nlri))
	}
}

func firstLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "; first: " + strings.TrimSpace(lines[0])
}

// putShare sends mitigations k, k+step, … below n on c, mids 1, 2, …
func putShare(c *dotsclient.Client, k, step, n int) error {
	mid := uint32(0)
	for i := k; i < n; i += step {
		mid++
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, err := c.Mitigate(ctx, mid, dots.Scope{TargetPrefix: []string{scaleTarget(i)}, Lifetime: dots.Ptr[int64](3600)})
		cancel()
		if err != nil {
			return fmt.Errorf("PUT mid %d %s: %w", mid, scaleTarget(i), err)
		}
		// A NON request unanswered for 2 s is sent again (RFC 9132
		// §4.4.1). dotsclient sends the repeat as a new message (new
		// Message ID and token), so it is not a duplicate in the sense
		// of RFC 7252 §4.5 and the server's cache of answers does not
		// apply: on a loaded host the repeat finds the request the first
		// copy created and is answered 2.04 (a refresh, RFC 9132
		// §4.4.1). Every mitigation is counted at the router below
		// either way.
		if r.Code != dots.Created && r.Code != dots.Changed {
			return fmt.Errorf("PUT mid %d %s: %s %s", mid, scaleTarget(i), r.Code, r.Diag)
		}
	}
	return nil
}
