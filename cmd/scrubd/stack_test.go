package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/pki"
)

// readyLog is a process log that signals when a line appears in it.
type readyLog struct {
	mu    sync.Mutex
	b     bytes.Buffer
	want  string
	ready chan struct{}
	once  sync.Once
}

func (l *readyLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.b.Write(p)
	if strings.Contains(l.b.String(), l.want) {
		l.once.Do(func() { close(l.ready) })
	}
	return n, err
}

func (l *readyLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestDotsdScrubsRealPackets is the whole path: a DOTS client asks the real
// dotsd for a mitigation; dotsd's divert.scrub programs the real scrubd,
// whose nftables table drops real UDP packets in a namespace; the drop
// counters come back to the client as pkts-dropped and bytes-dropped, and
// stay monotonic across a kill -9 of scrubd.
func TestDotsdScrubsRealPackets(t *testing.T) {
	requireNetns(t)
	ns, sender := newNetns(t)
	scrubdBin := buildScrubd(t)
	dotsdBin := filepath.Join(t.TempDir(), "dotsd")
	if out, err := exec.Command("go", "build", "-o", dotsdBin, "../dotsd").CombinedOutput(); err != nil {
		t.Fatalf("go build dotsd: %v\n%s", err, out)
	}
	dir := t.TempDir()
	dev, err := pki.Dev(dir, []string{"alpha", "dotsd"})
	if err != nil {
		t.Fatal(err)
	}
	nodeAddr, signalAddr := freeAddr(t), freeAddr(t)
	scrubdCfg := filepath.Join(dir, "scrubd.yaml")
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(scrubdCfg, fmt.Sprintf(`listen: %q
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem], client-names: [dotsd]}
interface: sd0
netns: %s
table: levee_stack
`, nodeAddr, ns))
	nodeLog := &syncBuffer{}
	node := startScrubd(t, scrubdBin, scrubdCfg, nodeAddr, nodeLog)

	dotsdCfg := filepath.Join(dir, "dotsd.yaml")
	write(dotsdCfg, fmt.Sprintf(`signal: {listen: [%q]}
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
    nodes: [{name: node1, url: "https://%s", ca: ca.pem}]
`, signalAddr, nodeAddr))
	dlog := &readyLog{want: "dotsd ready", ready: make(chan struct{})}
	dotsd := exec.Command(dotsdBin, "--config", dotsdCfg)
	dotsd.Stdout, dotsd.Stderr = dlog, dlog
	if err := dotsd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dotsd.Process.Kill(); _, _ = dotsd.Process.Wait() })
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

	cert, _, err := pki.LoadKeyPair(dev.Clients["alpha"].Cert, dev.Clients["alpha"].Key)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{signalAddr}, Certificate: cert, RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mid := uint32(1)
	scope := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, TargetProtocol: []uint32{17},
		TargetPortRange: []dots.PortRange{{LowerPort: 123}}, Lifetime: dots.Ptr[int64](3600)}
	if r, err := c.Mitigate(ctx, mid, scope); err != nil || r.Code != dots.Created {
		t.Fatalf("mitigate: %+v %v", r, err)
	}
	// wait polls the client's status until ok accepts it.
	wait := func(what string, ok func(s dots.Scope) bool) dots.Scope {
		t.Helper()
		var last dots.Scope
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
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
	s := wait("mitigated", func(s dots.Scope) bool { return s.Status != nil && *s.Status == dots.StatusMitigated })
	if !strings.Contains(s.Note, "scrub: scrubbing at node1") {
		t.Errorf("note %q", s.Note)
	}
	sendUDP(t, sender, "203.0.113.10:123", 200)
	sendUDP(t, sender, "203.0.113.10:124", 30) // passes
	s = wait("200 dropped", func(s dots.Scope) bool { p, _ := dropped(s); return p >= 200 })
	if p, b := dropped(s); p != 200 || b != 200*100 {
		t.Errorf("dropped %d packets, %d bytes; want 200, 20000", p, b)
	}

	// kill -9 and start again: the table stays, dotsd sends its state to
	// the new process, and the client's totals only grow.
	if err := node.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = node.Process.Wait()
	startScrubd(t, scrubdBin, scrubdCfg, nodeAddr, nodeLog)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(nodeLog.String(), "state set") || strings.Count(nodeLog.String(), "state set") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("dotsd did not send its state to the restarted scrubd")
		}
		time.Sleep(50 * time.Millisecond)
	}
	sendUDP(t, sender, "203.0.113.10:123", 100)
	s = wait("300 dropped", func(s dots.Scope) bool { p, _ := dropped(s); return p >= 300 })
	if p, b := dropped(s); p != 300 || b != 300*100 {
		t.Errorf("after the restart: %d packets, %d bytes; want 300, 30000", p, b)
	}
	if r, err := c.Withdraw(ctx, mid); err != nil || r.Code != dots.Deleted {
		t.Errorf("withdraw: %+v %v", r, err)
	}
}
