//go:build linux

package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/pki"
)

// scenarioBins builds dotsd, scrubd and dotsctl for a scenario test, or
// takes them from $NETLAB_BIN (a directory, as `make build` fills bin/).
func scenarioBins(t *testing.T) Bins {
	t.Helper()
	if dir := os.Getenv("NETLAB_BIN"); dir != "" {
		return BinsIn(dir)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	for _, cmd := range []string{"dotsd", "scrubd", "dotsctl"} {
		pkg := "github.com/levee-dots/levee/cmd/" + cmd
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, cmd), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	t.Logf("binaries built in %v", time.Since(began).Round(time.Millisecond))
	return BinsIn(dir)
}

func requireBIRD(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"bird", "birdc", "ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed (Debian packages bird2, iproute2, nftables)", tool)
		}
	}
}

// runScenario runs the scrubbing scenario with o, its steps in the test's
// log, and fails the test on an error or any of the result's problems.
func runScenario(t *testing.T, o ScenarioOptions) *ScenarioResult {
	t.Helper()
	return runWith(t, RunScrubbing, o)
}

// runWith runs scenario with o as runScenario does.
func runWith(t *testing.T, scenario func(context.Context, ScenarioOptions) (*ScenarioResult, error), o ScenarioOptions) *ScenarioResult {
	t.Helper()
	requireRoot(t)
	o.Bins, o.Logf = scenarioBins(t), t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := scenario(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Problems() {
		t.Error(p)
	}
	t.Logf("scenario (without the build) took %v", res.Took.Round(time.Millisecond))
	return res
}

// checkScrubbed asserts the figures the scenario is about: every attack
// packet sent after the diversion took effect dropped at the scrubber and
// reported exactly by the client's status, none at the target, the
// legitimate flow answered through the tunnel, nothing left after withdraw.
func checkScrubbed(t *testing.T, res *ScenarioResult) {
	t.Helper()
	a := res.Attack
	if a.Reached != 0 || a.Scrubbed.Packets != uint64(a.Sent) || a.PktsDropped != uint64(a.Sent) {
		t.Errorf("attack of %d: %d at the target, scrubber dropped %d, pkts-dropped %d; want 0, %d, %d", a.Sent, a.Reached, a.Scrubbed.Packets, a.PktsDropped, a.Sent, a.Sent)
	}
	if a.BytesDropped != a.PktsDropped*(20+8+64) {
		t.Errorf("bytes-dropped %d, want %d", a.BytesDropped, a.PktsDropped*92)
	}
	if res.Legit.Answered != res.Legit.Sent || res.Legit.OverTunnel < uint64(res.Legit.Sent) {
		t.Errorf("legitimate echoes: %+v", res.Legit)
	}
	if !res.Left.Empty() {
		t.Errorf("after withdraw: %v", res.Left)
	}
}

// TestScrubbingScenarioBGP is the scenario with the on-ramp learned over
// BGP: dotsd, scrubd and dotsctl run in the control namespace; dotsd
// announces 203.0.113.10/32 with the scrubber as next hop to a real BIRD in
// the edge namespace, whose kernel protocol installs it into the edge's
// FIB, so the attack really changes path; scrubd drops it at the scrubber
// while the legitimate echo returns through the VXLAN tunnel; dotsctl -o
// json status reports the drops. Withdraw takes the route out of the edge's
// FIB, and stopping scrubd removes its table.
func TestScrubbingScenarioBGP(t *testing.T) {
	requireBIRD(t)
	res := runScenario(t, ScenarioOptions{OnRamp: OnRampBGP})
	checkScrubbed(t, res)
	if !strings.Contains(res.EdgeRoute, "proto bird") {
		t.Errorf("edge route %q is not BIRD's", res.EdgeRoute)
	}
}

// TestScrubdRestart is the BGP scenario with scrubd killed (SIGKILL) under
// mitigation: the table it left keeps dropping while it is down, the
// restarted scrubd (new boot id) gets dotsd's state again and adopts the
// installed table, so no rule is lost (the ruleset, without handles and
// counter values, is the same) and the client's pkts-dropped never goes
// back and ends at P1+N2+N3, the drops while scrubd was down included.
func TestScrubdRestart(t *testing.T) {
	requireBIRD(t)
	res := runScenario(t, ScenarioOptions{OnRamp: OnRampBGP, Restart: &RestartOptions{Down: 2000, After: 3000}})
	checkScrubbed(t, res)
	r := res.Restart
	if r == nil {
		t.Fatal("no restart result")
	}
	t.Logf("pkts-dropped samples: %v (P1 %d, N2 %d, N3 %d)", r.Samples, r.P1, r.Down, r.After)
	if r.Final != r.P1+uint64(r.Down+r.After) {
		t.Errorf("pkts-dropped %d, want %d", r.Final, r.P1+uint64(r.Down+r.After))
	}
}

// TestScrubbingScenario is the scenario with a DOTS client library in the
// test asking the real dotsd, and the edge's route to the scrubber
// installed with netlink: dotsd's divert/scrub programs the real scrubd,
// whose nftables table in the scrubber's namespace drops the attack, while
// a legitimate UDP echo still reaches the target through the VXLAN return
// tunnel.
func TestScrubbingScenario(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping: nft is not installed (Debian package nftables)")
	}
	var c *libClient
	res := runScenario(t, ScenarioOptions{OnRamp: OnRampRoute, Client: func(f ClientFiles) (Client, error) {
		var err error
		c, err = dialClient(f)
		return c, err
	}})
	if c != nil {
		c.c.Close()
	}
	checkScrubbed(t, res)
}

// libClient is the Client of package dotsclient, in the test's process.
type libClient struct{ c *dotsclient.Client }

func dialClient(f ClientFiles) (*libClient, error) {
	cert, _, err := pki.LoadKeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	roots, err := pki.LoadCertPool(f.CAs)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{f.Signal}, Certificate: cert, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	return &libClient{c}, nil
}

func (l *libClient) Mitigate(ctx context.Context, target netip.Prefix, port uint16) (uint32, string, error) {
	const mid = 1
	scope := dots.Scope{TargetPrefix: []string{target.String()}, TargetProtocol: []uint32{17},
		TargetPortRange: []dots.PortRange{{LowerPort: port}}, Lifetime: dots.Ptr[int64](3600)}
	r, err := l.c.Mitigate(ctx, mid, scope)
	if err != nil {
		return 0, "", err
	}
	return mid, r.Code.String(), nil
}

func (l *libClient) Status(ctx context.Context, mid uint32) (dots.Scope, error) {
	r, err := l.c.Status(ctx, &mid, "")
	if err != nil {
		return dots.Scope{}, err
	}
	if r.Body == nil || r.Body.MitigationScope == nil || len(r.Body.MitigationScope.Scope) != 1 {
		return dots.Scope{}, fmt.Errorf("status %d: %s without one scope", mid, r.Code)
	}
	return r.Body.MitigationScope.Scope[0], nil
}

func (l *libClient) Withdraw(ctx context.Context, mid uint32) (string, error) {
	r, err := l.c.Withdraw(ctx, mid)
	if err != nil {
		return "", err
	}
	return r.Code.String(), nil
}
