package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/levee-dots/levee/scrub"
)

// TestMeteredNode programs a real nftables data plane in a network
// namespace through the metered node: the installed mitigations, targets
// and rules by action are what the last successful Set installed, each
// Set is timed, and a refused Set is counted and changes no count. The
// node's /metrics passes promtool check metrics when promtool is there.
func TestMeteredNode(t *testing.T) {
	requireNetns(t)
	ns, _ := newNetns(t)
	f, err := os.Open(netnsPath(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nft, err := scrub.NewNFT(scrub.NFTOptions{Interface: "sd0", NetNS: int(f.Fd()), TableName: "levee_metrics"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, stop, err := withMetrics(metricsConfig{Listen: "127.0.0.1:0"}, nft, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	defer node.Close()
	mn := node.(*meteredNode)
	reg := prometheus.NewRegistry()
	reg.MustRegister(mn)

	pfx := netip.MustParsePrefix
	good := scrub.Desired{Mitigations: []scrub.Mitigation{
		{ID: "cuidA/1", Targets: []netip.Prefix{pfx("203.0.113.10/32"), pfx("2001:db8:6401::10/128")},
			Rules: []scrub.Rule{{Name: "ntp", Protocols: []uint8{17}, SrcPorts: []scrub.PortRange{{Low: 123, High: 123}}}, {Name: "rest", Action: scrub.ActionAccept}}},
		{ID: "cuidB/7", Targets: []netip.Prefix{pfx("203.0.113.130/32")}, Rules: []scrub.Rule{{Name: "all", Action: scrub.ActionDrop}}},
	}}
	// Overlapping targets of two mitigations: refused.
	bad := scrub.Desired{Mitigations: []scrub.Mitigation{
		{ID: "x/1", Targets: []netip.Prefix{pfx("203.0.113.0/24")}, Rules: []scrub.Rule{{Name: "a"}}},
		{ID: "x/2", Targets: []netip.Prefix{pfx("203.0.113.10/32")}, Rules: []scrub.Rule{{Name: "b"}}},
	}}
	want := func(when string, lines string) {
		t.Helper()
		if err := testutil.CollectAndCompare(mn, strings.NewReader(lines), "levee_scrub_mitigations", "levee_scrub_targets",
			"levee_scrub_rules", "levee_scrub_apply_failures_total"); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	want("before any Set", `
# HELP levee_scrub_apply_failures_total Desired states the data plane refused or failed to install (the previous state stays).
# TYPE levee_scrub_apply_failures_total counter
levee_scrub_apply_failures_total 0
# HELP levee_scrub_mitigations Mitigations installed on the node.
# TYPE levee_scrub_mitigations gauge
levee_scrub_mitigations 0
# HELP levee_scrub_rules Filter rules installed on the node, by action (drop, accept).
# TYPE levee_scrub_rules gauge
levee_scrub_rules{action="accept"} 0
levee_scrub_rules{action="drop"} 0
# HELP levee_scrub_targets Target prefixes installed on the node, over all mitigations.
# TYPE levee_scrub_targets gauge
levee_scrub_targets 0
`)
	if err := node.Set(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	installed := `
# HELP levee_scrub_apply_failures_total Desired states the data plane refused or failed to install (the previous state stays).
# TYPE levee_scrub_apply_failures_total counter
levee_scrub_apply_failures_total %d
# HELP levee_scrub_mitigations Mitigations installed on the node.
# TYPE levee_scrub_mitigations gauge
levee_scrub_mitigations 2
# HELP levee_scrub_rules Filter rules installed on the node, by action (drop, accept).
# TYPE levee_scrub_rules gauge
levee_scrub_rules{action="accept"} 1
levee_scrub_rules{action="drop"} 2
# HELP levee_scrub_targets Target prefixes installed on the node, over all mitigations.
# TYPE levee_scrub_targets gauge
levee_scrub_targets 3
`
	want("after a Set", strings.Replace(installed, "%d", "0", 1))
	if err := node.Set(context.Background(), bad); err == nil {
		t.Fatal("overlapping targets accepted")
	}
	want("after a refused Set", strings.Replace(installed, "%d", "1", 1))
	if n := testutil.CollectAndCount(mn, "levee_scrub_apply_duration_seconds"); n != 1 {
		t.Fatalf("apply histogram: %d series", n)
	}
	if h := histogramCount(t, reg, "levee_scrub_apply_duration_seconds"); h != 2 {
		t.Fatalf("apply histogram counted %d Sets, want 2", h)
	}
	if out := sh(t, "ip", "netns", "exec", ns, "nft", "list", "table", "netdev", "levee_metrics"); !strings.Contains(out, "203.0.113.130") {
		t.Fatalf("the installed table lacks a target:\n%s", out)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	// What scrubd serves: the node's metrics beside the runtime's, which
	// promtool (when installed) finds nothing to say about.
	resp, err := http.Get("http://" + mn.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`levee_scrub_rules{action="drop"} 2`)) {
		t.Fatalf("GET /metrics: %s %v\n%s", resp.Status, err, body)
	}
	if _, err := os.Stat("/usr/bin/promtool"); err != nil {
		t.Logf("promtool check skipped: /usr/bin/promtool is missing (Debian package prometheus)")
		return
	}
	check := exec.Command("/usr/bin/promtool", "check", "metrics")
	check.Stdin = bytes.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		listen string
		ok     bool
	}{{"", true}, {"127.0.0.1:9465", true}, {"[::1]:9465", true}, {"127.0.0.1", false}, {"127.0.0.1:0", false}, {"127.0.0.1:http", false}} {
		if err := (metricsConfig{Listen: tc.listen}).validate(); (err == nil) != tc.ok {
			t.Errorf("metrics.listen %q: %v, want ok %v", tc.listen, err, tc.ok)
		}
	}
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
