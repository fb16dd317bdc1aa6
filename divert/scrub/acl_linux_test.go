package scrub

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	node "github.com/levee-dots/levee/scrub"
	"github.com/levee-dots/levee/scrub/agent"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestACLOnRealNode: dotsd's backend hands an ACL dropping 192.0.2.0/24
// toward 203.0.113.10 to a node API over nftables in a namespace; real UDP
// from 192.0.2.2 is dropped, from 198.51.100.2 delivered; the measurement
// for the ACL's key carries the filter's matched packets and the dropped
// ones, equal to what was sent. A restarted node (new process, same
// kernel table) gets exactly the state of the Sync again and its counters
// carry on; withdraw leaves no ACL in the ruleset.
func TestACLOnRealNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("divert/scrub: needs root (network namespaces and nftables); CI runs it as root")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter (util-linux) is not on PATH")
	}
	sender, recv := netnsPair(t)
	hs, err := netlink.NewHandleAt(sender)
	must(t, err)
	sa, err := hs.LinkByName("sa")
	must(t, err)
	a, _ := netlink.ParseAddr("192.0.2.2/32")
	must(t, hs.AddrAdd(sa, a))
	hs.Close()

	p := newPKI(t)
	n := p.startNode(t)
	nft := func() *node.NFT {
		x, err := node.NewNFT(node.NFTOptions{Interface: "sb", NetNS: int(recv)})
		must(t, err)
		h, err := agent.New(agent.Options{Node: x})
		must(t, err)
		n.h.Store(h)
		return x
	}
	real := nft()
	defer real.Close()
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	b, err := New(p.config(n.srv.URL), Options{NoPoll: true, Now: clk.now, Updates: rec.update, Measurements: rec.measure})
	must(t, err)
	defer b.Close()
	ctx := context.Background()
	acl := aclDiversion("203.0.113.10/32", divertFilterTo("203.0.113.10/32"))
	must(t, b.Sync(ctx, []divert.Diversion{alpha, acl}))

	var listen, doc, other net.PacketConn
	inNetNS(t, recv, func() { listen, err = net.ListenPacket("udp4", "203.0.113.10:5000") })
	must(t, err)
	defer listen.Close()
	inNetNS(t, sender, func() {
		doc, err = net.ListenPacket("udp4", "192.0.2.2:5001")
		if err == nil {
			other, err = net.ListenPacket("udp4", "198.51.100.2:5001")
		}
	})
	must(t, err)
	defer doc.Close()
	defer other.Close()
	sendN := func(c net.PacketConn, k int) {
		ua, _ := net.ResolveUDPAddr("udp4", "203.0.113.10:5000")
		for range k {
			if _, err := c.WriteTo(make([]byte, 64), ua); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.Poll(ctx)
	sendN(doc, 300)
	sendN(other, 20)
	if got := received(listen, 400); got != 20 {
		t.Errorf("delivered %d, want the 20 from 198.51.100.2", got)
	}
	clk.add(5 * time.Second)
	b.Poll(ctx)
	want := func(pkts uint64) {
		t.Helper()
		c, ok := rec.lastCounters(acl.Key)
		if !ok || len(c.Matched) != 1 || c.Matched[0].Packets != pkts || c.Matched[0].Bytes != pkts*92 ||
			c.PktsDropped != pkts || c.BytesDropped != pkts*92 {
			t.Fatalf("measurement %+v (%v), want %d matched and dropped", c, ok, pkts)
		}
	}
	want(300)

	// scrubd restarts: a new process over the same kernel table.
	before := rulesetACL(t, recv)
	if !strings.Contains(before, "== 0xc0000200 counter name \"a_") || !strings.Contains(before, "jump g4_") { // saddr 192.0.2.0/24
		t.Fatalf("the ACL is not in the ruleset:\n%s", before)
	}
	real2 := nft()
	defer real2.Close()
	clk.add(5 * time.Second)
	b.Poll(ctx) // sees the new boot and sends the state again
	if after := rulesetACL(t, recv); after != before {
		t.Errorf("after the restart the ACL rules are\n%s\nwant\n%s", after, before)
	}
	sendN(doc, 10)
	clk.add(5 * time.Second)
	b.Poll(ctx)
	want(310)

	must(t, b.Withdraw(ctx, acl.Key))
	if s := rulesetACL(t, recv); s != "" {
		t.Errorf("after withdraw the ruleset holds\n%s", s)
	}
}

func divertFilterTo(dst string) divert.Filter {
	f := dropDoc
	f.Match.Destination = pfx(dst)[0]
	return f
}

// rulesetACL is the lines of `nft list ruleset` in ns that belong to ACLs.
func rulesetACL(t *testing.T, ns netns.NsHandle) string {
	t.Helper()
	out, err := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(ns)), "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	var keep []string
	in := false
	for _, l := range strings.Split(string(out), "\n") {
		s := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(s, "chain g4_"), strings.HasPrefix(s, "chain g6_"), strings.HasPrefix(s, "counter a_"):
			in = true
		case s == "}":
			in = false
		}
		if in || strings.Contains(s, "jump g") {
			if !strings.HasPrefix(s, "packets") {
				keep = append(keep, s)
			}
		}
	}
	return strings.Join(keep, "\n")
}
