package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/levee-dots/levee/divert"
	dscrub "github.com/levee-dots/levee/divert/scrub"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/scrub/agent"
)

// requireNetns skips unless the test can create a network namespace and
// nftables tables in it (root, ip, nft; CI runs as root).
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: scrubd's data plane is nftables; this test needs root to create a network namespace and a table in it (CI runs as root)")
	}
	for _, tool := range []string{"ip", "nft", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not on PATH (Debian packages iproute2, nftables, golang)", tool)
		}
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func buildScrubd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scrubd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newNetns creates the node's namespace and a sender's, joined by a veth
// pair (sd1 192.0.2.1 in the sender's, sd0 192.0.2.2 in the node's, the
// route to 203.0.113.0/24 through it), and removes both at the end of the
// test. It returns the node's namespace and a UDP socket of the sender.
func newNetns(t *testing.T) (string, net.PacketConn) {
	t.Helper()
	ns := fmt.Sprintf("levee-scrubd-%d-%d", os.Getpid(), nsSeq.Add(1))
	tx := ns + "-tx"
	for _, n := range []string{ns, tx} {
		sh(t, "ip", "netns", "add", n)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
	}
	sh(t, "ip", "-n", ns, "link", "add", "sd0", "type", "veth", "peer", "name", "sd1", "netns", tx)
	sh(t, "ip", "-n", ns, "addr", "add", "192.0.2.2/24", "dev", "sd0")
	sh(t, "ip", "-n", tx, "addr", "add", "192.0.2.1/24", "dev", "sd1")
	sh(t, "ip", "-n", ns, "link", "set", "sd0", "up")
	sh(t, "ip", "-n", tx, "link", "set", "sd1", "up")
	sh(t, "ip", "-n", tx, "route", "add", "203.0.113.0/24", "via", "192.0.2.2")
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(sh(t, "ip", "-n", ns, "-j", "link", "show", "sd0")), &links); err != nil || len(links) != 1 {
		t.Fatalf("sd0's address: %v", err)
	}
	sh(t, "ip", "-n", tx, "neigh", "replace", "192.0.2.2", "lladdr", links[0].Address, "dev", "sd1", "nud", "permanent")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(sh(t, "ip", "-n", tx, "link", "show", "sd1"), "state UP") {
		if time.Now().After(deadline) {
			t.Fatal("sd1 is not up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ns, senderSocket(t, tx)
}

var nsSeq atomic.Int32

// senderSocket opens a UDP socket in namespace name (a socket stays in the
// namespace it was made in).
func senderSocket(t *testing.T, name string) net.PacketConn {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	c, lerr := net.ListenPacket("udp4", "192.0.2.1:0")
	if err := netns.Set(orig); err != nil {
		panic(err) // this thread is in the wrong namespace
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendUDP(t *testing.T, c net.PacketConn, dst string, n int) {
	t.Helper()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst))
	for range n {
		if _, err := c.WriteTo(make([]byte, 72), to); err != nil {
			t.Fatal(err)
		}
	}
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

// syncBuffer is a log both the process and the test use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startScrubd(t *testing.T, bin, cfg, addr string, log *syncBuffer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrubd did not listen on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newBackend(t *testing.T, cfg dscrub.Config, rec func(string, divert.Key, divert.Counters)) *dscrub.Backend {
	t.Helper()
	b, err := dscrub.New(cfg, dscrub.Options{NoPoll: true, Measurements: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestScrubdEndToEnd runs the real scrubd binary on 127.0.0.1 over the
// nftables data plane in a namespace it creates, and drives it with dotsd's
// backend: the state is installed, refused to wrong certificates, sent
// again after kill -9, and removed on withdraw and at stop.
func TestScrubdEndToEnd(t *testing.T) {
	requireNetns(t)
	ns, sender := newNetns(t)
	bin := buildScrubd(t)
	dir := t.TempDir()
	dev, err := pki.Dev(dir, []string{"dotsd", "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.Dev(t.TempDir(), []string{"dotsd"})
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "scrubd.yaml")
	cfg := fmt.Sprintf(`listen: %q
tls:
  certificate: server/cert.pem
  key: server/key.pem
  client-cas: [ca.pem]
  client-names: [dotsd]
interface: sd0
netns: %s
table: levee_e2e
log: {level: debug}
`, addr, ns)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	proc := startScrubd(t, bin, cfgPath, addr, log)

	node := dscrub.NodeConfig{Name: "node1", URL: "https://" + addr, CA: dev.CAPath}
	bcfg := func(c pki.DevClient) dscrub.Config {
		return dscrub.Config{Domains: []string{"alpha"}, Nodes: []dscrub.NodeConfig{node}, Certificate: c.Cert, Key: c.Key, Timeout: 5 * time.Second}
	}
	var mu sync.Mutex
	var samples []divert.Counters
	b := newBackend(t, bcfg(dev.Clients["dotsd"]), func(_ string, _ divert.Key, c divert.Counters) {
		mu.Lock()
		samples = append(samples, c)
		mu.Unlock()
	})
	ctx := context.Background()
	d := divert.Diversion{Key: divert.Key{CUID: "cuidA", MID: 1}, Domain: "alpha",
		Prefixes:  []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32"), netip.MustParsePrefix("2001:db8:6401::10/128")},
		Protocols: []uint8{17}, Ports: []dots.PortRange{{LowerPort: 123}}}
	a, err := b.Apply(ctx, d)
	if err != nil || a.Status != dots.StatusMitigated || a.Detail != "scrubbing at node1" {
		t.Fatalf("apply: %+v %v\n%s", a, err, log.String())
	}
	table := func() (string, error) {
		out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "netdev", "levee_e2e").CombinedOutput()
		return string(out), err
	}
	if out, err := table(); err != nil || !strings.Contains(out, "203.0.113.10") || !strings.Contains(out, "2001:db8:6401::10") {
		t.Fatalf("nft table after apply: %v\n%s", err, out)
	}
	notrack := func() error {
		return exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "levee_e2e").Run()
	}
	if err := notrack(); err != nil {
		t.Errorf("no notrack table (notrack defaults to true): %v", err)
	}

	// Certificates that may not program the node.
	for name, c := range map[string]pki.DevClient{"same CA, not in client-names": dev.Clients["alpha"], "another CA": other.Clients["dotsd"]} {
		bad := newBackend(t, bcfg(c), nil)
		d2 := d
		d2.Key.MID = 2
		d2.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		a, err := bad.Apply(ctx, d2)
		if err == nil || a.Status != dots.StatusInProgress || strings.Contains(a.Detail, "scrubbing at") {
			t.Errorf("%s: %+v %v", name, a, err)
		}
		t.Logf("%s: %s", name, a.Detail)
		if name == "same CA, not in client-names" && !strings.Contains(a.Detail, "refused (403)") {
			t.Errorf("%s: want a 403: %s", name, a.Detail)
		}
	}
	if out, _ := table(); strings.Contains(out, "198.51.100") {
		t.Errorf("a refused client changed the table:\n%s", out)
	}

	// Real packets: 50 to the dropped port, 20 to another one (passed).
	sendUDP(t, sender, "203.0.113.10:123", 50)
	sendUDP(t, sender, "203.0.113.10:124", 20)
	last := func() divert.Counters {
		mu.Lock()
		defer mu.Unlock()
		if len(samples) == 0 {
			return divert.Counters{}
		}
		return samples[len(samples)-1]
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Poll(ctx); last().PktsDropped < 50 && time.Now().Before(deadline); b.Poll(ctx) {
		time.Sleep(20 * time.Millisecond)
	}
	if c := last(); c.PktsDropped != 50 || c.BytesDropped != 50*(20+8+72) {
		t.Errorf("dropped %+v, want 50 packets of 100 bytes\n%s", c, log.String())
	}

	// kill -9: the table stays in the kernel; the new process has a new
	// boot id and gets the state again on the next poll.
	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = proc.Process.Wait()
	if out, err := table(); err != nil || !strings.Contains(out, "203.0.113.10") {
		t.Errorf("table lost at kill -9: %v\n%s", err, out)
	}
	proc = startScrubd(t, bin, cfgPath, addr, log)
	if st := getState(t, dev.Clients["dotsd"], dev.CAPath, addr); len(st.State.Mitigations) != 0 || st.Generation != 0 {
		t.Fatalf("a fresh scrubd has state: %+v", st)
	}
	b.Poll(ctx)
	st := getState(t, dev.Clients["dotsd"], dev.CAPath, addr)
	if len(st.State.Mitigations) != 1 || st.State.Mitigations[0].ID != "cuidA/1" {
		t.Fatalf("state after restart and poll: %+v\n%s", st, log.String())
	}

	if err := b.Withdraw(ctx, d.Key); err != nil {
		t.Fatal(err)
	}
	if out, err := table(); err != nil || strings.Contains(out, "203.0.113.10") {
		t.Errorf("after withdraw: %v\n%s", err, out)
	}
	// A clean stop removes the table.
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(); err != nil {
		t.Errorf("scrubd exit: %v\n%s", err, log.String())
	}
	if out, err := table(); err == nil {
		t.Errorf("the table is still there after SIGTERM:\n%s", out)
	}
	if notrack() == nil {
		t.Error("the notrack table is still there after SIGTERM")
	}
}

func getState(t *testing.T, c pki.DevClient, ca, addr string) agent.StateResponse {
	t.Helper()
	cert, _, err := pki.LoadKeyPair(c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCertPool(ca)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}}}
	resp, err := hc.Get("https://" + addr + "/v1/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st agent.StateResponse
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/state: %d %v", resp.StatusCode, err)
	}
	return st
}
