//go:build linux

package netlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/pki"
)

// procLog is a process's output, shared with the test, that signals when
// a line appears in it.
type procLog struct {
	mu    sync.Mutex
	b     bytes.Buffer
	want  string
	ready chan struct{}
	once  sync.Once
}

func newProcLog(want string) *procLog { return &procLog{want: want, ready: make(chan struct{})} }

func (l *procLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.b.Write(p)
	if l.want != "" && bytes.Contains(l.b.Bytes(), []byte(l.want)) {
		l.once.Do(func() { close(l.ready) })
	}
	return n, err
}

func (l *procLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func buildCmd(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs bin with its output in log and kills it at the end of the test.
func start(t *testing.T, dir, bin string, log *procLog, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd
}

// nftTables lists the nftables tables inside node's namespace.
func nftTables(t *testing.T, l *Lab, node string) []string {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(l.NS(node))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, tb.Name)
	}
	return names
}

// TestScrubbingScenario is issue 8's lab scenario with real packets: a DOTS
// client asks the real dotsd for a mitigation of 203.0.113.10, UDP port
// 123; dotsd's divert/scrub programs the real scrubd, whose nftables table
// in the scrubber's namespace drops the attack, while a legitimate UDP echo
// still reaches the target through the VXLAN return tunnel. The edge's
// route to the scrubber is installed with netlink.
func TestScrubbingScenario(t *testing.T) {
	requireRoot(t)
	began := time.Now()
	scrubdBin := buildCmd(t, "github.com/levee-dots/levee/cmd/scrubd")
	dotsdBin := buildCmd(t, "github.com/levee-dots/levee/cmd/dotsd")
	t.Logf("binaries built in %v", time.Since(began).Round(time.Millisecond))
	began = time.Now()

	l := Build(t, Scrubbing())
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

	// 1. No mitigation: the attack reaches the target.
	const before, during = 1000, 5000
	ping("before", 5)
	flood("before", before)
	waitCount(t, k, before, 10*time.Second)
	if got := k.Count(); got != before {
		t.Fatalf("before the mitigation the target got %d of %d attack packets", got, before)
	}
	t.Logf("before the mitigation: %d attack packets sent, %d reached the target", before, k.Count())

	// 2. dotsd and scrubd.
	dir := t.TempDir()
	dev, err := pki.Dev(dir, []string{"alpha", "dotsd"})
	if err != nil {
		t.Fatal(err)
	}
	nodeAddr, signalAddr := freeAddr(t), freeAddr(t)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	scrubdCfg := write("scrubd.yaml", fmt.Sprintf(`listen: %q
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem], client-names: [dotsd]}
interface: %s
netns: %s
table: levee_lab
`, nodeAddr, ScrubberIface, l.Namespace(Scrubber)))
	dotsdCfg := write("dotsd.yaml", fmt.Sprintf(`signal: {listen: [%q]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25"]
    match: {common-names: [alpha]}
divert:
  scrub:
    domains: [alpha]
    certificate: clients/dotsd/cert.pem
    key: clients/dotsd/key.pem
    poll-interval: 200ms
    nodes: [{name: scrubber, url: "https://%s", ca: ca.pem}]
`, signalAddr, nodeAddr))
	nodeLog := newProcLog("")
	node := start(t, dir, scrubdBin, nodeLog, "--config", scrubdCfg)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", nodeAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(end) {
			t.Fatalf("scrubd does not listen:\n%s", nodeLog)
		}
	}
	dlog := newProcLog("dotsd ready")
	start(t, dir, dotsdBin, dlog, "--config", dotsdCfg)
	select {
	case <-dlog.ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("dotsd not ready:\n%s", dlog)
	}
	defer func() {
		if t.Failed() {
			t.Logf("dotsd:\n%s\nscrubd:\n%s", dlog, nodeLog)
		}
	}()

	// 3. The diversion: return tunnel, then the edge's /32 to the scrubber.
	d := ScrubbingDiversion()
	if err := l.Divert(d, true); err != nil {
		t.Fatal(err)
	}
	ping("diverted", 5)

	// 4. The mitigation request.
	cert, _, err := pki.LoadKeyPair(dev.Clients["alpha"].Cert, dev.Clients["alpha"].Key)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	c, err := dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{signalAddr}, Certificate: cert, RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mid := uint32(1)
	scope := dots.Scope{TargetPrefix: []string{TargetAddr.String() + "/32"}, TargetProtocol: []uint32{17},
		TargetPortRange: []dots.PortRange{{LowerPort: 123}}, Lifetime: dots.Ptr[int64](3600)}
	if r, err := c.Mitigate(ctx, mid, scope); err != nil || r.Code != dots.Created {
		t.Fatalf("mitigate: %+v %v", r, err)
	}
	status := func(what string, ok func(s dots.Scope) bool) dots.Scope {
		t.Helper()
		var last dots.Scope
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			r, err := c.Status(ctx, &mid, "")
			if err == nil && r.Body != nil && r.Body.MitigationScope != nil && len(r.Body.MitigationScope.Scope) == 1 {
				last = r.Body.MitigationScope.Scope[0]
				if ok(last) {
					return last
				}
			}
		}
		t.Fatalf("%s: last status %+v", what, last)
		return last
	}
	dropped := func(s dots.Scope) (pkts, bytes uint64) {
		if s.PktsDropped != nil && s.BytesDropped != nil {
			return uint64(*s.PktsDropped), uint64(*s.BytesDropped)
		}
		return 0, 0
	}
	status("mitigated", func(s dots.Scope) bool { return s.Status != nil && *s.Status == dots.StatusMitigated })

	// 5. Under mitigation: the attack is dropped at the scrubber, the
	// legitimate echo still works, over the tunnel.
	atTarget, rx0 := k.Count(), tunnelRx(t, l)
	flood("during", during)
	ping("during", 20)
	s := status("dropped", func(s dots.Scope) bool { p, _ := dropped(s); return p >= during })
	pkts, byts := dropped(s)
	t.Logf("under mitigation: %d attack packets sent, pkts-dropped %d, bytes-dropped %d, %d reached the target; 20 of 20 echoes answered, %d packets over the tunnel",
		during, pkts, byts, k.Count()-atTarget, tunnelRx(t, l)-rx0)
	if diff := int64(pkts) - during; diff*100 > during || -diff*100 > during {
		t.Errorf("pkts-dropped %d, want %d within 1%%", pkts, during)
	}
	if want := uint64(pkts) * (20 + 8 + 64); byts != want {
		t.Errorf("bytes-dropped %d, want %d (%d packets of 92 bytes)", byts, want, pkts)
	}
	if got := k.Count() - atTarget; got != 0 {
		t.Errorf("%d attack packets reached the target under mitigation", got)
	}
	if rx := tunnelRx(t, l) - rx0; rx < 20 {
		t.Errorf("only %d packets came over the tunnel, want the 20 echoes", rx)
	}

	// 6. Withdraw: the mitigation, the diversion, the node's table.
	if r, err := c.Withdraw(ctx, mid); err != nil || r.Code != dots.Deleted {
		t.Fatalf("withdraw: %+v %v", r, err)
	}
	if err := l.Undivert(d, true); err != nil {
		t.Fatal(err)
	}
	if err := node.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := node.Wait(); err != nil {
		t.Errorf("scrubd exit: %v", err)
	}
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
