package scrub

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"
)

// TestACLRealPackets runs ACLs on nftables in a namespace beside a
// mitigation of the same target and sends real UDP from two sources,
// 192.0.2.2 and 198.51.100.2, bounded in count; it checks what reached the
// target and the entries' counters.
func TestACLRealPackets(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newLab(t)
	hs, err := netlink.NewHandleAt(l.sender)
	must(t, err)
	sa, err := hs.LinkByName("sa")
	must(t, err)
	must(t, hs.AddrAdd(sa, mustAddr("192.0.2.2/32")))
	hs.Close()
	ctx := context.Background()
	n := l.node(t)
	defer n.Close()
	listen := l.udp(t, l.recv, "203.0.113.10:5000")
	doc := l.udp(t, l.sender, "192.0.2.2:123")
	other := l.udp(t, l.sender, "198.51.100.2:123")
	const dst = "203.0.113.10:5000"
	// The mitigation drops UDP to port 6000 only: it never matches here,
	// so what is dropped is the ACL's.
	mit := Mitigation{ID: "c/1", Targets: pfx("203.0.113.10/32"),
		Rules: []Rule{{Name: "p6000", Protocols: []uint8{17}, DstPorts: []PortRange{{6000, 6000}}}}}
	tests := []struct {
		name      string
		entries   []Entry
		mitRules  []Rule
		docN      int // from 192.0.2.2
		otherN    int // from 198.51.100.2
		size      int
		delivered int
		counters  map[string]ACLCount // exact; nil: see check
		check     func(t *testing.T, c map[string]ACLCount, delivered int)
	}{
		{name: "drop source", entries: []Entry{{Name: "e1", Sources: pfx("192.0.2.0/24"), Action: ActionDrop}},
			docN: 200, otherN: 50, size: 64, delivered: 50,
			counters: map[string]ACLCount{"e1": {Count{200, 200 * 92}, Count{200, 200 * 92}}}},
		{name: "first match: accept before drop", entries: []Entry{
			{Name: "ok", Sources: pfx("192.0.2.0/24"), Protocols: []uint8{17}, DstPorts: []PortRange{{5000, 5000}}, Action: ActionAccept},
			{Name: "rest", Action: ActionDrop}},
			docN: 30, otherN: 40, size: 64, delivered: 30,
			counters: map[string]ACLCount{"ok": {Matched: Count{30, 30 * 92}}, "rest": {Count{40, 40 * 92}, Count{40, 40 * 92}}}},
		{name: "accept hands on to the mitigation", entries: []Entry{{Name: "ok", Action: ActionAccept}},
			mitRules: []Rule{{Name: "all", Action: ActionDrop}}, docN: 20, size: 64, delivered: 0,
			counters: map[string]ACLCount{"ok": {Matched: Count{20, 20 * 92}}}},
		{name: "rate limit under its rate", entries: []Entry{{Name: "rl", Sources: pfx("192.0.2.0/24"), Action: ActionRateLimit, RateBytes: 1 << 20}},
			docN: 100, size: 64, delivered: 100,
			counters: map[string]ACLCount{"rl": {Matched: Count{100, 100 * 92}}}},
		{name: "rate limit above its rate", entries: []Entry{{Name: "rl", Sources: pfx("192.0.2.0/24"), Action: ActionRateLimit, RateBytes: 20000}},
			docN: 500, size: 1000,
			check: func(t *testing.T, c map[string]ACLCount, delivered int) {
				rl := c["rl"]
				if rl.Matched.Packets != 500 || rl.Dropped.Packets == 0 || int(rl.Dropped.Packets)+delivered != 500 {
					t.Errorf("rate limit: %+v, %d delivered; want 500 matched, delivered + dropped = 500, some dropped", rl, delivered)
				}
				if delivered < 19 { // a bucket of one second at 20000 B/s holds 19 packets of 1028 bytes
					t.Errorf("only %d delivered under the rate", delivered)
				}
			}},
		{name: "non-first fragments", entries: []Entry{{Name: "frag", Fragments: []BitTerm{{Bits: FragIsF, Match: true}}, Action: ActionDrop}},
			docN: 10, size: 3000, delivered: 0, // each datagram is 3 fragments; without the last two none is reassembled
			counters: map[string]ACLCount{"frag": {Count{20, 20 * 0}, Count{20, 0}}},
			check: func(t *testing.T, c map[string]ACLCount, _ int) {
				if f := c["frag"]; f.Matched.Packets != 20 || f.Dropped.Packets != 20 {
					t.Errorf("fragments: %+v, want 20 non-first fragments matched and dropped", f)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mit
			if tc.mitRules != nil {
				m.Rules = tc.mitRules
			}
			d := Desired{Mitigations: []Mitigation{m},
				ACLs: []ACL{{ID: "c/acl/" + tc.name, Group: "c", Targets: pfx("203.0.113.0/24"), Entries: tc.entries}}}
			must(t, n.Set(ctx, d))
			sendSize(t, doc, dst, tc.docN, tc.size)
			sendSize(t, other, dst, tc.otherN, tc.size)
			got := drain(t, listen, 200*time.Millisecond)
			c, err := n.Counters(ctx)
			must(t, err)
			if tc.check != nil {
				tc.check(t, c.ACLs[d.ACLs[0].ID], got)
				return
			}
			if got != tc.delivered {
				t.Errorf("delivered %d, want %d", got, tc.delivered)
			}
			if g, w := fmt.Sprint(c.ACLs[d.ACLs[0].ID]), fmt.Sprint(tc.counters); g != w {
				t.Errorf("counters\n got %s\nwant %s", g, w)
			}
			for _, r := range m.Rules {
				if r.Name == "p6000" && c.Rules["c/1"][r.Name].Packets != 0 {
					t.Errorf("the mitigation's rule counted %v", c.Rules["c/1"][r.Name])
				}
			}
		})
	}

	// Withdraw: a state without the ACLs leaves none of their rules,
	// chains or counters; the mitigation stays.
	must(t, n.Set(ctx, Desired{Mitigations: []Mitigation{mit}}))
	out := nftList(t, l)
	for _, s := range []string{"chain g4_", "chain g6_", "counter a_", "counter d_", "chain l_", "jump", "192.0.2.0/24", "limit"} {
		if strings.Contains(out, s) {
			t.Errorf("after withdraw the ruleset still holds %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, MitigationCounterName("c/1")) {
		t.Errorf("the mitigation went with the ACLs:\n%s", out)
	}
	sendSize(t, doc, dst, 10, 64)
	if got := drain(t, listen, 200*time.Millisecond); got != 10 {
		t.Errorf("after withdraw %d of 10 delivered", got)
	}
}

// nftList is `nft list ruleset` in the node's namespace.
func nftList(t *testing.T, l *lab) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (Debian package nftables) is not on PATH")
	}
	ns := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(l.recv))
	out, err := exec.Command("nsenter", "--net="+ns, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	return string(out)
}
