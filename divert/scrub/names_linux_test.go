package scrub

import (
	"context"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/lab/netlab"
	node "github.com/levee-dots/levee/scrub"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestNamesOnRealNode installs the state of a diversion with a name's
// address on nftables in a network namespace and sends UDP to both
// targets: the named prefix's packets are dropped, the name's address
// receives them, and both are counted.
func TestNamesOnRealNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("divert/scrub: needs root (network namespaces and nftables); CI runs it as root")
	}
	sender, recv := netnsPair(t)
	n, err := node.NewNFT(node.NFTOptions{Interface: "sb", NetNS: int(recv)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d := divert.Diversion{Key: divert.Key{CUID: "c", MID: 1}, Prefixes: pfx("203.0.113.11/32", "203.0.113.10/32"), FromNames: pfx("203.0.113.10/32")}
	desired, _ := Desired([]divert.Diversion{d}, "")
	ctx := context.Background()
	if err := n.Set(ctx, desired); err != nil {
		t.Fatal(err)
	}
	var origin, other, src net.PacketConn
	inNetNS(t, recv, func() {
		origin, err = net.ListenPacket("udp4", "203.0.113.10:5000")
		if err == nil {
			other, err = net.ListenPacket("udp4", "203.0.113.11:5000")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	defer other.Close()
	inNetNS(t, sender, func() { src, err = net.ListenPacket("udp4", "198.51.100.2:0") })
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, dst := range []string{"203.0.113.10:5000", "203.0.113.11:5000"} {
		ua, _ := net.ResolveUDPAddr("udp4", dst)
		for range 10 {
			if _, err := src.WriteTo(make([]byte, 64), ua); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := received(origin, 10); got != 10 {
		t.Errorf("the name's address received %d of 10", got)
	}
	if got := received(other, 1); got != 0 {
		t.Errorf("the named prefix received %d, want all dropped", got)
	}
	c, err := n.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mitigations["c/1"].Packets != 10 || c.Rules["c/1"][RuleName].Packets != 10 || c.Mitigations["c/1/names"].Packets != 10 {
		t.Errorf("counters %+v", c)
	}
}

func received(c net.PacketConn, max int) int {
	buf := make([]byte, 2048)
	got := 0
	for got < max {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := c.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	return got
}

// netnsPair makes two namespaces joined by the veth sa (198.51.100.2) —
// sb (198.51.100.1); the receiver has 203.0.113.10 and .11 on lo.
func netnsPair(t *testing.T) (sender, recv netns.NsHandle) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	sender, err = netns.New()
	if err == nil {
		recv, err = netns.New()
	}
	if serr := netns.Set(orig); serr != nil {
		panic(serr)
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close(); recv.Close() })
	hs, err := netlink.NewHandleAt(sender)
	must(t, err)
	defer hs.Close()
	hr, err := netlink.NewHandleAt(recv)
	must(t, err)
	defer hr.Close()
	must(t, hs.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sa"}, PeerName: "sb", PeerNamespace: netlink.NsFd(int(recv))}))
	sa, err := hs.LinkByName("sa")
	must(t, err)
	sb, err := hr.LinkByName("sb")
	must(t, err)
	lo, err := hr.LinkByName("lo")
	must(t, err)
	for _, a := range []struct {
		h    *netlink.Handle
		link netlink.Link
		addr string
	}{{hs, sa, "198.51.100.2/24"}, {hr, sb, "198.51.100.1/24"}, {hr, lo, "203.0.113.10/32"}, {hr, lo, "203.0.113.11/32"}} {
		addr, err := netlink.ParseAddr(a.addr)
		must(t, err)
		must(t, a.h.AddrAdd(a.link, addr))
	}
	for _, x := range []struct {
		h    *netlink.Handle
		link netlink.Link
	}{{hs, sa}, {hr, sb}, {hr, lo}} {
		must(t, x.h.LinkSetUp(x.link))
	}
	_, dst, _ := net.ParseCIDR("203.0.113.0/24")
	must(t, hs.RouteAdd(&netlink.Route{LinkIndex: sa.Attrs().Index, Dst: dst, Gw: net.ParseIP("198.51.100.1")}))
	must(t, hs.NeighAdd(&netlink.Neigh{LinkIndex: sa.Attrs().Index, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP("198.51.100.1"), HardwareAddr: sb.Attrs().HardwareAddr}))
	for _, h := range []*netlink.Handle{hs, hr} {
		name := "sa"
		if h == hr {
			name = "sb"
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			l, err := h.LinkByName(name)
			must(t, err)
			if l.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not up", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return sender, recv
}

// inNetNS runs f on a thread switched into ns.
func inNetNS(t *testing.T, ns netns.NsHandle, f func()) {
	t.Helper()
	if err := netlab.InNS(ns, func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
