package scrub

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
)

func listenIn(t testing.TB, ns netns.NsHandle, addr string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	inNS(t, ns, func() {
		network := "udp4"
		if strings.HasPrefix(addr, "[") {
			network = "udp6"
		}
		var err error
		c, err = net.ListenPacket(network, addr)
		must(t, err)
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// warmUp sends one datagram from c to dst every 100 ms until listener
// gets one: the first packets wait on ARP/NDP over the tunnel. It drains
// what else arrived.
func warmUp(t testing.TB, c, listener net.PacketConn, dst string) {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		send(t, c, dst, 1)
		must(t, listener.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		if _, _, err := listener.ReadFrom(buf); err == nil {
			drain(t, listener, 200*time.Millisecond)
			return
		}
	}
	t.Fatalf("nothing arrived at %s over the return path within 5 s", dst)
}

// TestRoutedForwardsCleanTraffic sends real datagrams from the edge to a
// target through the scrubber: what the filter passes arrives at the far
// end of the tunnel, what it drops does not; without the target in the
// state nothing gets there (the scrubber has no other route).
func TestRoutedForwardsCleanTraffic(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newReturnLab(t)
	ctx := context.Background()
	filter, err := NewNFT(NFTOptions{Interface: "sb", NetNS: int(l.scr)})
	must(t, err)
	o := l.opts(true)
	node := NewRouted(filter, l.newReturn(t, o))
	d := Desired{Mitigations: []Mitigation{mitigation("c/1", "203.0.113.10/32", "2001:db8:200::10/128")}}
	must(t, node.Set(ctx, d))

	cases := []struct {
		name, listen, good, attack, dst string
	}{
		{"ipv4", "203.0.113.10:5000", "198.51.100.2:5000", "198.51.100.2:123", "203.0.113.10:5000"},
		{"ipv6", "[2001:db8:200::10]:5000", "[2001:db8:100::2]:5000", "[2001:db8:100::2]:123", "[2001:db8:200::10]:5000"},
	}
	const legit, attack = 100, 1000
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			listener := listenIn(t, l.far, tc.listen)
			good, ntp := listenIn(t, l.edge, tc.good), listenIn(t, l.edge, tc.attack)
			warmUp(t, good, listener, tc.dst)
			before, err := node.Counters(ctx)
			must(t, err)
			send(t, good, tc.dst, legit)
			send(t, ntp, tc.dst, attack)
			if got := drain(t, listener, 300*time.Millisecond); got != legit {
				t.Errorf("%d datagrams arrived at the far end, want the %d legitimate ones and none of the %d dropped", got, legit, attack)
			}
			after, err := node.Counters(ctx)
			must(t, err)
			if n := after.Rules["c/1"]["ntp"].Packets - before.Rules["c/1"]["ntp"].Packets; n != attack {
				t.Errorf("the drop rule counted %d, want %d", n, attack)
			}
		})
	}

	// Withdrawn: no route back any more, nothing arrives.
	must(t, node.Set(ctx, Desired{}))
	listener := listenIn(t, l.far, "203.0.113.10:5000")
	good := listenIn(t, l.edge, "198.51.100.2:5001")
	send(t, good, "203.0.113.10:5000", 10)
	if got := drain(t, listener, 300*time.Millisecond); got != 0 {
		t.Errorf("%d datagrams arrived after the withdrawal, want 0", got)
	}
	must(t, node.Close())
	if s := readReturn(t, l.handle(t, l.scr), o); s.tunnel != "" || len(s.routes) != 0 || len(s.rules) != 0 || tablesIn(t, l.scr) != 0 {
		t.Errorf("after Close: %+v, %d nftables tables", s, tablesIn(t, l.scr))
	}
}

// orderProbe is a filter that records the routes of the return table at
// the moment its Set is called, then sets the real filter (or fails).
type orderProbe struct {
	Node
	t    testing.TB
	h    *netlink.Handle
	o    ReturnOptions
	fail bool
	seen []string
}

func (p *orderProbe) Set(ctx context.Context, d Desired) error {
	p.seen = readReturn(p.t, p.h, p.o).routes
	if p.fail {
		return errors.New("refused")
	}
	return p.Node.Set(ctx, d)
}

// TestRoutedOrder checks the order of one Set: a new target's route is
// there before the filter diverts to it; a leaving target's route is still
// there while the filter lets go, and gone after. A failing filter leaves
// the routes of both states.
func TestRoutedOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newReturnLab(t)
	ctx := context.Background()
	nft, err := NewNFT(NFTOptions{Interface: "sb", NetNS: int(l.scr)})
	must(t, err)
	o := l.opts(false)
	probe := &orderProbe{Node: nft, t: t, h: l.handle(t, l.scr), o: o}
	node := NewRouted(probe, l.newReturn(t, o))
	defer func() { must(t, node.Close()) }()
	const a, b = "203.0.113.10/32 via 192.0.2.14 dev vx-clean", "203.0.113.20/32 via 192.0.2.14 dev vx-clean"
	steps := []struct {
		name          string
		targets       []string
		fail          bool
		atFilter, end []string
	}{
		{"add a", []string{"203.0.113.10/32"}, false, []string{a}, []string{a}},
		{"add b", []string{"203.0.113.10/32", "203.0.113.20/32"}, false, []string{a, b}, []string{a, b}},
		{"remove a", []string{"203.0.113.20/32"}, false, []string{a, b}, []string{b}},
		{"filter fails", []string{"203.0.113.10/32"}, true, []string{a, b}, []string{a, b}},
		{"again", []string{"203.0.113.10/32"}, false, []string{a, b}, []string{a}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			probe.fail = st.fail
			err := node.Set(ctx, desired(st.targets...))
			if (err != nil) != st.fail {
				t.Fatalf("Set: %v, want failure %v", err, st.fail)
			}
			end := readReturn(t, probe.h, o).routes
			if !slices.Equal(probe.seen, st.atFilter) || !slices.Equal(end, st.end) {
				t.Errorf("routes at the filter's Set %q, after %q; want %q, %q", probe.seen, end, st.atFilter, st.end)
			}
		})
	}
}

// TestRoutedRefusesInvalid checks that a state the filter refuses changes
// no route either.
func TestRoutedRefusesInvalid(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newReturnLab(t)
	ctx := context.Background()
	nft, err := NewNFT(NFTOptions{Interface: "sb", NetNS: int(l.scr), Bounds: Bounds{MaxMitigations: 2}})
	must(t, err)
	o := l.opts(false)
	node := NewRouted(nft, l.newReturn(t, o))
	defer func() { must(t, node.Close()) }()
	must(t, node.Set(ctx, desired("203.0.113.10/32")))
	const a = "203.0.113.10/32 via 192.0.2.14 dev vx-clean"
	cases := []struct {
		name string
		d    Desired
	}{
		{"overlapping targets", desired("203.0.113.10/32", "203.0.113.0/24")},
		{"beyond the filter's bounds", desired("203.0.113.10/32", "203.0.113.20/32", "203.0.113.30/32")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := node.Set(ctx, tc.d); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Set: %v, want ErrInvalid", err)
			}
			if got := readReturn(t, l.handle(t, l.scr), o).routes; !slices.Equal(got, []string{a}) {
				t.Errorf("routes %q after a refused Set, want only %q", got, a)
			}
		})
	}
}
