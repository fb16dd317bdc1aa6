package scrub

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/levee-dots/levee/lab/netlab"
)

// lab is two network namespaces joined by a veth: the sender (198.51.100.2,
// route to 203.0.113.0/24) and the scrubber/receiver (198.51.100.1 on "sb",
// 203.0.113.10 on lo).
type lab struct {
	sender, recv netns.NsHandle
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("scrub: needs root (network namespaces and nftables); CI runs it as root")
	}
}

// inNS runs f on a thread switched into ns.
func inNS(t testing.TB, ns netns.NsHandle, f func()) {
	t.Helper()
	if err := netlab.InNS(ns, func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func newLab(t testing.TB) *lab {
	t.Helper()
	requireRoot(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{}
	l.sender, err = netns.New()
	if err == nil {
		l.recv, err = netns.New()
	}
	if serr := netns.Set(orig); serr != nil {
		panic(serr)
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	t.Cleanup(func() { l.sender.Close(); l.recv.Close() }) // unnamed: gone with the last fd
	hs, err := netlink.NewHandleAt(l.sender)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	hr, err := netlink.NewHandleAt(l.recv)
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sa"}, PeerName: "sb", PeerNamespace: netlink.NsFd(int(l.recv))}
	must(t, hs.LinkAdd(veth))
	sa, err := hs.LinkByName("sa")
	must(t, err)
	sb, err := hr.LinkByName("sb")
	must(t, err)
	lo4s, err := hs.LinkByName("lo")
	must(t, err)
	lo4r, err := hr.LinkByName("lo")
	must(t, err)
	must(t, hs.AddrAdd(sa, mustAddr("198.51.100.2/24")))
	must(t, hr.AddrAdd(sb, mustAddr("198.51.100.1/24")))
	must(t, hr.AddrAdd(lo4r, mustAddr("203.0.113.10/32")))
	for _, x := range []struct {
		h    *netlink.Handle
		link netlink.Link
		addr string
	}{{hs, sa, "2001:db8:100::2/64"}, {hr, sb, "2001:db8:100::1/64"}, {hr, lo4r, "2001:db8:200::10/128"}} {
		a := mustAddr(x.addr)
		a.Flags = unix.IFA_F_NODAD // usable at once
		must(t, x.h.AddrAdd(x.link, a))
	}
	for _, x := range []struct {
		h    *netlink.Handle
		link netlink.Link
	}{{hs, sa}, {hs, lo4s}, {hr, sb}, {hr, lo4r}} {
		must(t, x.h.LinkSetUp(x.link))
	}
	_, dst, _ := net.ParseCIDR("203.0.113.0/24")
	must(t, hs.RouteAdd(&netlink.Route{LinkIndex: sa.Attrs().Index, Dst: dst, Gw: net.ParseIP("198.51.100.1")}))
	_, dst6, _ := net.ParseCIDR("2001:db8:200::/64")
	must(t, hs.RouteAdd(&netlink.Route{LinkIndex: sa.Attrs().Index, Dst: dst6, Gw: net.ParseIP("2001:db8:100::1")}))
	must(t, hs.NeighAdd(&netlink.Neigh{LinkIndex: sa.Attrs().Index, State: netlink.NUD_PERMANENT, Family: unix.AF_INET6,
		IP: net.ParseIP("2001:db8:100::1"), HardwareAddr: sb.Attrs().HardwareAddr}))
	// A permanent neighbour: no packet waits on (or is dropped by) ARP.
	must(t, hs.NeighAdd(&netlink.Neigh{LinkIndex: sa.Attrs().Index, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP("198.51.100.1"), HardwareAddr: sb.Attrs().HardwareAddr}))
	waitUp(t, hs, "sa")
	waitUp(t, hr, "sb")
	return l
}

// waitUp waits for the link's carrier: until then its qdisc drops what is sent.
func waitUp(t testing.TB, h *netlink.Handle, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		link, err := h.LinkByName(name)
		must(t, err)
		if link.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up: %v", name, link.Attrs().OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustAddr(s string) *netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

func (l *lab) node(t testing.TB) *NFT {
	t.Helper()
	n, err := NewNFT(NFTOptions{Interface: "sb", NetNS: int(l.recv)})
	must(t, err)
	return n
}

func (l *lab) udp(t testing.TB, ns netns.NsHandle, addr string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	inNS(t, ns, func() {
		var err error
		network := "udp4"
		if strings.HasPrefix(addr, "[") {
			network = "udp6"
		}
		c, err = net.ListenPacket(network, addr)
		must(t, err)
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// send writes n packets of 64 payload bytes (92 L3 bytes) from c to dst.
func send(t testing.TB, c net.PacketConn, dst string, n int) {
	t.Helper()
	sendSize(t, c, dst, n, 64)
}

// sendSize writes n packets of size payload bytes from c to dst.
func sendSize(t testing.TB, c net.PacketConn, dst string, n, size int) {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", dst)
	must(t, err)
	buf := make([]byte, size)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < n; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("sent only %d of %d packets before the deadline", i, n)
		}
		if _, err := c.WriteTo(buf, ua); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

func mitigation(id string, targets ...string) Mitigation {
	m := Mitigation{ID: id, Rules: []Rule{{Name: "ntp", Protocols: []uint8{17}, SrcPorts: []PortRange{{123, 123}}}}}
	for _, s := range targets {
		m.Targets = append(m.Targets, netip.MustParsePrefix(s))
	}
	return m
}

func TestNFTDropsRealPackets(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newLab(t)
	ctx := context.Background()
	n := l.node(t)
	d := Desired{Mitigations: []Mitigation{mitigation("cuid1/1", "203.0.113.10/32", "2001:db8::10/128")}}
	must(t, n.Set(ctx, d))

	listener := l.udp(t, l.recv, "203.0.113.10:5000")
	ntp := l.udp(t, l.sender, "198.51.100.2:123")
	good := l.udp(t, l.sender, "198.51.100.2:5000")
	const attack, legit = 10000, 100
	send(t, good, "203.0.113.10:5000", legit)
	send(t, ntp, "203.0.113.10:5000", attack)

	buf := make([]byte, 2048)
	must(t, listener.SetReadDeadline(time.Now().Add(5*time.Second)))
	for i := 0; i < legit; i++ {
		_, from, err := listener.ReadFrom(buf)
		if err != nil {
			t.Fatalf("legitimate packet %d of %d: %v", i, legit, err)
		}
		if from.(*net.UDPAddr).Port != 5000 {
			t.Fatalf("packet from %v reached the target", from)
		}
	}
	must(t, listener.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	if _, from, err := listener.ReadFrom(buf); err == nil {
		t.Fatalf("unexpected packet from %v", from)
	}

	got, err := n.Counters(ctx)
	must(t, err)
	want := Counters{
		Mitigations: map[string]Count{"cuid1/1": {attack + legit, (attack + legit) * 92}},
		Rules:       map[string]map[string]Count{"cuid1/1": {"ntp": {attack, attack * 92}}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counters:\n got %v\nwant %v", got, want)
	}

	// The same state again, then a new node (an agent restart) adding a
	// mitigation: counters of what stays carry on.
	must(t, n.Set(ctx, d))
	n2 := l.node(t)
	d.Mitigations = append(d.Mitigations, mitigation("cuid2/7", "203.0.113.20/32"))
	must(t, n2.Set(ctx, d))
	send(t, ntp, "203.0.113.10:5000", 10)
	got, err = n2.Counters(ctx)
	must(t, err)
	if c := got.Rules["cuid1/1"]["ntp"]; c.Packets != attack+10 {
		t.Fatalf("after re-Set and restart: rule counter %v, want %d packets", c, attack+10)
	}
	if c := got.Mitigations["cuid2/7"]; c.Packets != 0 {
		t.Fatalf("new mitigation counter %v, want 0", c)
	}

	// Removing the mitigation lets the attack through.
	must(t, n2.Set(ctx, Desired{}))
	send(t, ntp, "203.0.113.10:5000", 1)
	must(t, listener.SetReadDeadline(time.Now().Add(2*time.Second)))
	if _, from, err := listener.ReadFrom(buf); err != nil || from.(*net.UDPAddr).Port != 123 {
		t.Fatalf("after withdraw: from %v, %v; want the port-123 packet", from, err)
	}

	must(t, n2.Close())
	if tablesIn(t, l.recv) != 0 {
		t.Fatal("table left after Close")
	}
	must(t, n.Close()) // nothing left: not an error
}

func tablesIn(t testing.TB, ns netns.NsHandle) int {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	must(t, err)
	ts, err := c.ListTables()
	must(t, err)
	return len(ts)
}

func TestNFTManyMitigations(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newLab(t)
	ctx := context.Background()
	n := l.node(t)
	sizes := []int{1000, 10000}
	if testing.Short() {
		sizes = sizes[:1]
	}
	for _, size := range sizes {
		var d Desired
		for i := 0; i < size; i++ {
			a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
			m := mitigation(fmt.Sprintf("c/%d", i), netip.PrefixFrom(a, 32).String())
			m.Rules = append(m.Rules, Rule{Name: "big", MinLength: 1000, RatePPS: 100})
			d.Mitigations = append(d.Mitigations, m)
		}
		d.Mitigations[size-1].Targets = append(d.Mitigations[size-1].Targets, netip.MustParsePrefix("203.0.113.10/32"))
		start := time.Now()
		must(t, n.Set(ctx, d))
		t.Logf("Set %d mitigations (2 rules each): %v", size, time.Since(start))
		if size <= 1000 {
			start = time.Now()
			must(t, n.Set(ctx, d))
			t.Logf("Set the same %d again: %v", size, time.Since(start))
		}
		ntp := l.udp(t, l.sender, "")
		send(t, ntp, "203.0.113.10:5000", 1) // from an ephemeral port: passes
		got, err := n.Counters(ctx)
		must(t, err)
		if len(got.Mitigations) != size {
			t.Fatalf("%d mitigation counters, want %d", len(got.Mitigations), size)
		}
		if c := got.Mitigations[fmt.Sprintf("c/%d", size-1)]; c.Packets != 1 {
			t.Fatalf("last mitigation counter %v, want 1 packet", c)
		}
		ntp.Close()
	}
	must(t, n.Close())
	if tablesIn(t, l.recv) != 0 {
		t.Fatal("table left after Close")
	}
}

// TestNFTSetIsOneTransaction makes the kernel refuse the last operation of a
// Set's batch and checks that nothing of it took effect: the previous rules
// still drop and count.
func TestNFTSetIsOneTransaction(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newLab(t)
	ctx := context.Background()
	n := l.node(t)
	defer n.Close()
	d := Desired{Mitigations: []Mitigation{mitigation("a/1", "203.0.113.10/32")}}
	must(t, n.Set(ctx, d))
	listener := l.udp(t, l.recv, "203.0.113.10:5000")
	ntp := l.udp(t, l.sender, "198.51.100.2:123")
	send(t, ntp, "203.0.113.10:5000", 10)

	n.fault = func(c *nftables.Conn) {
		c.DelChain(&nftables.Chain{Name: "no-such-chain", Table: n.table})
	}
	if err := n.Set(ctx, Desired{}); err == nil {
		t.Fatal("Set with a refused operation succeeded")
	}
	n.fault = nil
	send(t, ntp, "203.0.113.10:5000", 10)
	if got := drain(t, listener, 100*time.Millisecond); got != 0 {
		t.Fatalf("%d attack packets passed after a failed Set", got)
	}
	cs, err := n.Counters(ctx)
	must(t, err)
	if c := cs.Rules["a/1"]["ntp"]; c.Packets != 20 {
		t.Fatalf("rule counter %v after a failed Set, want 20 packets", c)
	}
}

// TestNFTInterfaceChange starts a node on another device over a table left
// by the first: the ingress chain moves, nothing filters the old device.
func TestNFTInterfaceChange(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newLab(t)
	ctx := context.Background()
	d := Desired{Mitigations: []Mitigation{mitigation("a/1", "203.0.113.10/32")}}
	must(t, l.node(t).Set(ctx, d))
	n, err := NewNFT(NFTOptions{Interface: "lo", NetNS: int(l.recv)})
	must(t, err)
	defer n.Close()
	must(t, n.Set(ctx, d))

	c, err := nftables.New(nftables.WithNetNSFd(int(l.recv)))
	must(t, err)
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	must(t, err)
	var base []string
	for _, ch := range chains {
		if ch.Hooknum != nil {
			base = append(base, ch.Name)
		}
	}
	if fmt.Sprint(base) != "[in_lo]" {
		t.Fatalf("base chains %v, want [in_lo]", base)
	}
	listener := l.udp(t, l.recv, "203.0.113.10:5000")
	ntp := l.udp(t, l.sender, "198.51.100.2:123")
	send(t, ntp, "203.0.113.10:5000", 10)
	if got := drain(t, listener, 100*time.Millisecond); got != 10 {
		t.Fatalf("%d of 10 packets arrived over sb, want all: it is no longer filtered", got)
	}
	if _, err := NewNFT(NFTOptions{Interface: "a-name-longer-than-15"}); err == nil {
		t.Fatal("NewNFT accepted an interface name longer than IFNAMSIZ-1")
	}
}
