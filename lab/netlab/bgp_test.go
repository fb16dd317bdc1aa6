//go:build linux

package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/pki"
)

const rtprotBIRD = 12 // the kernel's RTPROT_BIRD

// edgeBIRD is the edge router's BIRD configuration: one eBGP session to
// dotsd, and the kernel protocol exporting what it learns into the edge
// namespace's FIB.
func edgeBIRD() string {
	return fmt.Sprintf(`router id %s;
log stderr all;
protocol device { }
protocol kernel { ipv4 { export where proto = "dotsd"; }; }
protocol bgp dotsd {
  local %s as 65000;
  neighbor %s as 65001;
  ipv4 { import all; export none; };
}
`, EdgeBGPAddr, EdgeBGPAddr, ControlAddr)
}

// startIn runs bin inside node's namespace (ip netns exec) with dir as its
// working directory and kills it at the end of the test.
func startIn(t *testing.T, l *Lab, node, dir string, log *procLog, bin string, args ...string) *exec.Cmd {
	t.Helper()
	return start(t, dir, "ip", log, append([]string{"netns", "exec", l.Namespace(node), bin}, args...)...)
}

// ctl runs dotsctl inside the control node and returns its standard output.
func ctl(t *testing.T, l *Lab, bin, cfg string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.Namespace(Control), bin, "--config", cfg}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("dotsctl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// TestScrubbingScenarioBGP is the scenario with the on-ramp learned over
// BGP: dotsd, scrubd and dotsctl run in the control namespace; dotsd
// announces 203.0.113.10/32 with the scrubber as next hop to a real BIRD in
// the edge namespace, whose kernel protocol installs it into the edge's
// FIB, so the attack really changes path; scrubd drops it at the scrubber
// while the legitimate echo returns through the VXLAN tunnel; dotsctl -o
// json status reports the drops. Withdraw takes the route out of the edge's
// FIB.
func TestScrubbingScenarioBGP(t *testing.T) {
	requireRoot(t)
	bird, err := exec.LookPath("bird")
	if err != nil {
		t.Skip("skipping: bird is not installed (Debian package bird2)")
	}
	birdc, err := exec.LookPath("birdc")
	if err != nil {
		t.Skip("skipping: birdc is not installed (Debian package bird2)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: ip is not installed (Debian package iproute2)")
	}
	scrubdBin := buildCmd(t, "github.com/levee-dots/levee/cmd/scrubd")
	dotsdBin := buildCmd(t, "github.com/levee-dots/levee/cmd/dotsd")
	ctlBin := buildCmd(t, "github.com/levee-dots/levee/cmd/dotsctl")
	began := time.Now()

	l := Build(t, ScrubbingWithControl())
	echo, err := l.EchoUDP(Target, legitDst)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	k, err := l.CountUDP(Target, attackDst)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	flood := func(name string, n int) {
		t.Helper()
		sent, err := l.Flood(Attacker, Flood{Src: attackSrc, Dst: attackDst, Count: n, Size: 64, Duration: 5 * time.Second})
		if err != nil || sent != n {
			t.Fatalf("%s: sent %d of %d: %v", name, sent, n, err)
		}
	}
	ping := func(name string, n int) {
		t.Helper()
		if ok, err := l.Ping(Attacker, legitSrc, legitDst, n, time.Second); err != nil || ok != n {
			t.Fatalf("%s: %d of %d legitimate echoes answered: %v", name, ok, n, err)
		}
	}
	const before, during = 1000, 5000
	ping("before", 5)
	flood("before", before)
	waitCount(t, k, before, 10*time.Second)
	if got := k.Count(); got != before {
		t.Fatalf("before the mitigation the target got %d of %d attack packets", got, before)
	}
	t.Logf("before the mitigation: %d attack packets sent, %d reached the target", before, k.Count())

	// The return path is ready before anything is announced.
	d := ScrubbingDiversion()
	if err := l.Divert(d, false); err != nil {
		t.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "netlab-") // short: it holds BIRD's control socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sock := filepath.Join(dir, "bird.ctl")
	birdLog := newProcLog("")
	startIn(t, l, Edge, dir, birdLog, bird, "-f", "-c", write("bird.conf", edgeBIRD()), "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	birdcOut := func(args ...string) string {
		out, _ := exec.Command(birdc, append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(out)
	}
	for end := time.Now().Add(10 * time.Second); !strings.Contains(birdcOut("show", "status"), "Daemon is up"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("bird does not answer:\n%s", birdLog)
		}
	}

	if _, err := pki.Dev(dir, []string{"alpha", "dotsd"}); err != nil {
		t.Fatal(err)
	}
	const nodeAddr, signalAddr = "127.0.0.1:8443", "127.0.0.1:4646" // inside the control namespace
	scrubdCfg := write("scrubd.yaml", fmt.Sprintf(`listen: %q
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem], client-names: [dotsd]}
interface: %s
netns: %s
table: levee_lab
`, nodeAddr, ScrubberIface, l.Namespace(Scrubber)))
	dotsdCfg := write("dotsd.yaml", fmt.Sprintf(`signal: {listen: [%q]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
policy: {active-but-terminating: 1s, max-active-but-terminating: 2s}
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25"]
    match: {common-names: [alpha]}
divert:
  bgp:
    local-as: 65001
    router-id: %s
    neighbors:
      - {name: edge, address: %s, peer-as: 65000, local-address: %s, families: [ipv4-unicast], receives: [scrubbing]}
    scrubbing: {next-hop-v4: %s}
    domains: {alpha: {countermeasure: scrubbing}}
  scrub:
    domains: [alpha]
    certificate: clients/dotsd/cert.pem
    key: clients/dotsd/key.pem
    poll-interval: 200ms
    nodes: [{name: scrubber, url: "https://%s", ca: ca.pem}]
`, signalAddr, ControlAddr, EdgeBGPAddr, ControlAddr, ScrubberAddr, nodeAddr))
	ctlCfg := write("dotsctl.yaml", fmt.Sprintf(`servers: [%q]
certificate: clients/alpha/cert.pem
key: clients/alpha/key.pem
ca: ca.pem
state: alpha-state.json
`, signalAddr))

	nodeLog := newProcLog("scrubd ready")
	node := startIn(t, l, Control, dir, nodeLog, scrubdBin, "--config", scrubdCfg)
	select {
	case <-nodeLog.ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("scrubd not ready:\n%s", nodeLog)
	}
	dlog := newProcLog("dotsd ready")
	startIn(t, l, Control, dir, dlog, dotsdBin, "--config", dotsdCfg)
	select {
	case <-dlog.ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("dotsd not ready:\n%s", dlog)
	}
	defer func() {
		if t.Failed() {
			t.Logf("dotsd:\n%s\nscrubd:\n%s\nbird:\n%s\n%s", dlog, nodeLog, birdLog, birdcOut("show", "protocols", "all", "dotsd"))
		}
	}()
	for end := time.Now().Add(15 * time.Second); !strings.Contains(birdcOut("show", "protocols", "dotsd"), "Established"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the BGP session between dotsd and bird is not established")
		}
	}

	// The request, by dotsctl.
	out, err := ctl(t, l, ctlBin, ctlCfg, "-o", "json", "mitigate", "--target", TargetAddr.String()+"/32",
		"--port", "123", "--proto", "udp", "--countermeasure", "scrubbing")
	if err != nil || !strings.Contains(out, `"2.01"`) {
		t.Fatalf("mitigate: %v\n%s", err, out)
	}
	var mid uint32
	var created struct {
		MID *uint32 `json:"mid"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.MID == nil {
		t.Fatalf("mitigate output: %v\n%s", err, out)
	}
	mid = *created.MID
	status := func(what string, ok func(s dots.Scope) bool) dots.Scope {
		t.Helper()
		var last dots.Scope
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			out, err := ctl(t, l, ctlBin, ctlCfg, "-o", "json", "status", fmt.Sprint(mid))
			var a struct {
				Body *dots.Message `json:"body"`
			}
			if err == nil && json.Unmarshal([]byte(out), &a) == nil && a.Body != nil && a.Body.MitigationScope != nil && len(a.Body.MitigationScope.Scope) == 1 {
				last = a.Body.MitigationScope.Scope[0]
				if ok(last) {
					return last
				}
			}
		}
		t.Fatalf("%s: last status %+v", what, last)
		return last
	}
	status("mitigated", func(s dots.Scope) bool { return s.Status != nil && *s.Status == dots.StatusMitigated })

	// The on-ramp: BIRD has put dotsd's route into the edge's FIB.
	learned := func() []netlink.Route {
		rs, _ := l.Routes(Edge, d.EdgeRoute.Dst)
		return rs
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if rs := learned(); len(rs) == 1 && rs[0].Protocol == rtprotBIRD && rs[0].Gw.Equal(ScrubberAddr.AsSlice()) {
			t.Logf("edge FIB: %v via %v proto bird (learned over BGP from dotsd)", rs[0].Dst, rs[0].Gw)
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no BGP route to the scrubber in the edge's FIB: %v\n%s", learned(), birdcOut("show", "route", "all"))
		}
	}

	atTarget, rx0 := k.Count(), tunnelRx(t, l)
	ping("diverted", 5) // also resolves the edge's neighbour entry of the scrubber
	flood("during", during)
	ping("during", 20)
	s := status("dropped", func(s dots.Scope) bool {
		return s.PktsDropped != nil && uint64(*s.PktsDropped) >= during
	})
	pkts, byts := uint64(*s.PktsDropped), uint64(0)
	if s.BytesDropped != nil {
		byts = uint64(*s.BytesDropped)
	}
	t.Logf("under mitigation: %d attack packets sent, dotsctl status: pkts-dropped %d, bytes-dropped %d; %d reached the target; 25 of 25 echoes answered, %d packets over the tunnel",
		during, pkts, byts, k.Count()-atTarget, tunnelRx(t, l)-rx0)
	if diff := int64(pkts) - during; diff*100 > during || -diff*100 > during {
		t.Errorf("pkts-dropped %d, want %d within 1%%", pkts, during)
	}
	if byts != pkts*(20+8+64) {
		t.Errorf("bytes-dropped %d, want %d", byts, pkts*92)
	}
	if got := k.Count() - atTarget; got != 0 {
		t.Errorf("%d attack packets reached the target under mitigation", got)
	}
	if rx := tunnelRx(t, l) - rx0; rx < 25 {
		t.Errorf("only %d packets came over the tunnel, want the 25 echoes", rx)
	}

	// Withdraw: after the active-but-terminating period (1 s here), BGP
	// takes the route out of the edge's FIB.
	if out, err := ctl(t, l, ctlBin, ctlCfg, "withdraw", fmt.Sprint(mid)); err != nil {
		t.Fatalf("withdraw: %v\n%s", err, out)
	}
	for end := time.Now().Add(10 * time.Second); len(learned()) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the route is still in the edge's FIB after withdraw: %v", learned())
		}
	}
	// dotsd also sends scrubd a state without the mitigation.
	for end := time.Now().Add(10 * time.Second); !regexp.MustCompile(`"state set".*mitigations=0`).MatchString(nodeLog.String()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("scrubd did not get a state without the mitigation after withdraw")
		}
	}
	if err := l.Undivert(d, false); err != nil {
		t.Fatal(err)
	}
	if err := node.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = node.Wait() // ip netns exec execs scrubd: this is scrubd's exit
	checkUndiverted(t, l)
	if ts := nftTables(t, l, Scrubber); len(ts) != 0 {
		t.Errorf("nftables tables left in the scrubber: %v", ts)
	}
	ping("after withdraw", 5)
	atTarget = k.Count()
	flood("after", 100)
	waitCount(t, k, atTarget+100, 10*time.Second)
	if got := k.Count() - atTarget; got != 100 {
		t.Errorf("after withdraw the target got %d of 100", got)
	}
	t.Logf("scenario (without the build) took %v", time.Since(began).Round(time.Millisecond))
}
