package scrub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// returnLab is three namespaces:
//
//	edge 198.51.100.2 sa ── sb 198.51.100.1 [scrubber] up 192.0.2.2/30 ── dn 192.0.2.1/30 far (lo 192.0.2.9)
//	                                          ══ tunnel 192.0.2.13/30 ↔ vx-far 192.0.2.14/30 ══
//
// The edge sends to the targets (203.0.113.10, .20 and 2001:db8:200::10
// on far's lo) through the scrubber's ingress "sb"; far terminates the
// VXLAN (VNI 100, port 4789) of the scrubber's return path. The scrubber
// has no route to the targets of its own: only the return path gets
// packets there.
type returnLab struct {
	edge, scr, far netns.NsHandle
}

func newReturnLab(t testing.TB) *returnLab {
	t.Helper()
	requireRoot(t)
	l := &returnLab{}
	hs := make([]netns.NsHandle, 3)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	for i := range hs {
		if hs[i], err = netns.New(); err != nil {
			break
		}
	}
	if serr := netns.Set(orig); serr != nil {
		panic(serr)
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	l.edge, l.scr, l.far = hs[0], hs[1], hs[2]
	t.Cleanup(func() { l.edge.Close(); l.scr.Close(); l.far.Close() }) // unnamed: gone with the last fd

	he, hsc, hf := l.handle(t, l.edge), l.handle(t, l.scr), l.handle(t, l.far)
	must(t, he.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sa"}, PeerName: "sb", PeerNamespace: netlink.NsFd(int(l.scr))}))
	must(t, hsc.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up"}, PeerName: "dn", PeerNamespace: netlink.NsFd(int(l.far))}))
	for _, x := range []struct {
		h     *netlink.Handle
		link  string
		addrs []string
	}{
		{he, "sa", []string{"198.51.100.2/24", "2001:db8:100::2/64"}},
		{he, "lo", nil},
		{hsc, "sb", []string{"198.51.100.1/24", "2001:db8:100::1/64"}},
		{hsc, "up", []string{"192.0.2.2/30"}},
		{hsc, "lo", nil},
		{hf, "dn", []string{"192.0.2.1/30"}},
		{hf, "lo", []string{"192.0.2.9/32", "203.0.113.10/32", "203.0.113.20/32", "2001:db8:200::10/128"}},
	} {
		link, err := x.h.LinkByName(x.link)
		must(t, err)
		for _, s := range x.addrs {
			a := mustAddr(s)
			a.Flags = unix.IFA_F_NODAD
			must(t, x.h.AddrAdd(link, a))
		}
		must(t, x.h.LinkSetUp(link))
	}
	sa, err := he.LinkByName("sa")
	must(t, err)
	sb, err := hsc.LinkByName("sb")
	must(t, err)
	for _, r := range []struct{ dst, gw string }{{"203.0.113.0/24", "198.51.100.1"}, {"2001:db8:200::/48", "2001:db8:100::1"}} {
		_, dst, _ := net.ParseCIDR(r.dst)
		must(t, he.RouteAdd(&netlink.Route{LinkIndex: sa.Attrs().Index, Dst: dst, Gw: net.ParseIP(r.gw)}))
		fam := unix.AF_INET
		if strings.Contains(r.gw, ":") {
			fam = unix.AF_INET6
		}
		// A permanent neighbour: no packet waits on (or is dropped by) resolution.
		must(t, he.NeighAdd(&netlink.Neigh{LinkIndex: sa.Attrs().Index, State: netlink.NUD_PERMANENT, Family: fam,
			IP: net.ParseIP(r.gw), HardwareAddr: sb.Attrs().HardwareAddr}))
	}
	up, err := hsc.LinkByName("up")
	must(t, err)
	_, vtep, _ := net.ParseCIDR("192.0.2.9/32")
	must(t, hsc.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Dst: vtep, Gw: net.ParseIP("192.0.2.1")}))

	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vx-far"}, VxlanId: 100, Port: 4789,
		SrcAddr: net.ParseIP("192.0.2.9"), Group: net.ParseIP("192.0.2.2")}
	must(t, hf.LinkAdd(vx))
	vxl, err := hf.LinkByName("vx-far")
	must(t, err)
	for _, s := range []string{"192.0.2.14/30", "2001:db8:ff::2/64"} {
		a := mustAddr(s)
		a.Flags = unix.IFA_F_NODAD
		must(t, hf.AddrAdd(vxl, a))
	}
	must(t, hf.LinkSetUp(vxl))
	waitUp(t, he, "sa")
	waitUp(t, hsc, "sb")
	waitUp(t, hsc, "up")
	return l
}

func (l *returnLab) handle(t testing.TB, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	must(t, err)
	t.Cleanup(h.Close)
	return h
}

// opts are the return options of the lab, with IPv6 when v6.
func (l *returnLab) opts(v6 bool) ReturnOptions {
	o := ReturnOptions{Interface: "sb", NetNS: int(l.scr), Name: "vx-clean",
		Local: netip.MustParseAddr("192.0.2.2"), Remote: netip.MustParseAddr("192.0.2.9"), VNI: 100,
		Address: netip.MustParsePrefix("192.0.2.13/30"), Gateway: netip.MustParseAddr("192.0.2.14")}
	if v6 {
		o.Address6, o.Gateway6 = netip.MustParsePrefix("2001:db8:ff::1/64"), netip.MustParseAddr("2001:db8:ff::2")
	}
	return o
}

func (l *returnLab) newReturn(t testing.TB, o ReturnOptions) *Return {
	t.Helper()
	r, err := NewReturn(o)
	must(t, err)
	return r
}

// sysctl reads a value under /proc/sys in ns.
func sysctl(t testing.TB, ns netns.NsHandle, key string) string {
	t.Helper()
	var v string
	inNS(t, ns, func() {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		must(t, err)
		v = strings.TrimSpace(string(b))
	})
	return v
}

// returnState is the scrubber's return path as text, sorted.
type returnState struct {
	tunnel string   // "" when absent, else "<kind> index=<n> up=<bool> mtu=<n>"
	index  int      // the tunnel's link index
	routes []string // of the table, "<dst> via <gw> dev <name>"
	rules  []string // at the priority, "<family> iif <name> lookup <table>"
}

func readReturn(t testing.TB, h *netlink.Handle, o ReturnOptions) returnState {
	t.Helper()
	o = o.withDefaults()
	var s returnState
	names := map[int]string{}
	if link, err := h.LinkByName(o.Name); err == nil {
		s.index = link.Attrs().Index
		names[s.index] = o.Name
		s.tunnel = fmt.Sprintf("%s up=%v mtu=%d", link.Type(), link.Attrs().Flags&net.FlagUp != 0, link.Attrs().MTU)
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := h.RouteListFiltered(fam, &netlink.Route{Table: o.Table}, netlink.RT_FILTER_TABLE)
		must(t, err)
		for _, r := range rs {
			s.routes = append(s.routes, fmt.Sprintf("%s via %s dev %s", r.Dst, r.Gw, names[r.LinkIndex]))
		}
		filter := netlink.NewRule()
		filter.Priority = o.RulePriority
		rules, err := h.RuleListFiltered(fam, filter, netlink.RT_FILTER_PRIORITY)
		must(t, err)
		for _, r := range rules {
			s.rules = append(s.rules, fmt.Sprintf("%s iif %s lookup %d", famName(fam), r.IifName, r.Table))
		}
	}
	slices.Sort(s.routes)
	return s
}

func desired(targets ...string) Desired {
	var d Desired
	for i, s := range targets {
		d.Mitigations = append(d.Mitigations, mitigation(fmt.Sprintf("c/%d", i), s))
	}
	return d
}

// TestReturnConverges walks one Return through Sets of targets and checks
// the kernel state after each: tunnel, routes of the table, rule,
// forwarding. Then a second Return on the same namespace (scrubd restarted
// after kill -9) adopts it: the tunnel keeps its index and no route of a
// target that stays is ever deleted. Close leaves nothing.
func TestReturnConverges(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newReturnLab(t)
	ctx := context.Background()
	h := l.handle(t, l.scr)
	o := l.opts(false)
	if got := sysctl(t, l.scr, forward4); got != "0" {
		t.Fatalf("a new namespace has ip_forward=%s, want 0", got)
	}
	r := l.newReturn(t, o)
	if !haveGRE(t, l) && r.Kind() != TunnelVXLAN {
		t.Fatalf("auto chose %q on a kernel without GRE, want vxlan", r.Kind())
	}
	rule := []string{"ipv4 iif sb lookup 4680"}
	steps := []struct {
		name    string
		targets []string
		routes  []string
	}{
		{"two targets", []string{"203.0.113.10/32", "203.0.113.20/32"},
			[]string{"203.0.113.10/32 via 192.0.2.14 dev vx-clean", "203.0.113.20/32 via 192.0.2.14 dev vx-clean"}},
		{"one left", []string{"203.0.113.10/32"}, []string{"203.0.113.10/32 via 192.0.2.14 dev vx-clean"}},
		{"the same again", []string{"203.0.113.10/32"}, []string{"203.0.113.10/32 via 192.0.2.14 dev vx-clean"}},
		{"a prefix", []string{"203.0.113.10/32", "203.0.113.64/26"},
			[]string{"203.0.113.10/32 via 192.0.2.14 dev vx-clean", "203.0.113.64/26 via 192.0.2.14 dev vx-clean"}},
		{"back to one", []string{"203.0.113.10/32"}, []string{"203.0.113.10/32 via 192.0.2.14 dev vx-clean"}},
	}
	index := 0
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			must(t, r.Set(ctx, desired(st.targets...)))
			s := readReturn(t, h, o)
			if !strings.HasPrefix(s.tunnel, "vxlan up=true mtu=1450") && r.Kind() == TunnelVXLAN {
				t.Errorf("tunnel %q, want vxlan up=true mtu=1450 (1500 - 50)", s.tunnel)
			}
			if index == 0 {
				index = s.index
			} else if s.index != index {
				t.Errorf("tunnel index %d, was %d: recreated", s.index, index)
			}
			if !slices.Equal(s.routes, st.routes) || !slices.Equal(s.rules, rule) {
				t.Errorf("routes %q rules %q, want %q %q", s.routes, s.rules, st.routes, rule)
			}
			if got := sysctl(t, l.scr, forward4); got != "1" {
				t.Errorf("ip_forward=%s, want 1", got)
			}
		})
	}
	vx, err := h.LinkByName(o.Name)
	must(t, err)
	if v := vx.(*netlink.Vxlan); v.Learning || v.VxlanId != 100 || v.Port != 4789 || !v.Group.Equal(net.ParseIP("192.0.2.9")) {
		t.Errorf("vxlan %+v: want vni 100 port 4789 remote 192.0.2.9 nolearning", v)
	}

	// Restart: r is dropped without Close, as by kill -9.
	done := make(chan struct{})
	updates := make(chan netlink.RouteUpdate, 64)
	scr := l.scr
	must(t, netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{Namespace: &scr}))
	r2 := l.newReturn(t, o)
	must(t, r2.Set(ctx, desired("203.0.113.10/32", "203.0.113.20/32")))
	s := readReturn(t, h, o)
	if s.index != index {
		t.Errorf("after the restart the tunnel has index %d, was %d: recreated", s.index, index)
	}
	want := []string{"203.0.113.10/32 via 192.0.2.14 dev vx-clean", "203.0.113.20/32 via 192.0.2.14 dev vx-clean"}
	if !slices.Equal(s.routes, want) || !slices.Equal(s.rules, rule) {
		t.Errorf("after the restart: routes %q rules %q, want %q %q", s.routes, s.rules, want, rule)
	}
	seen := routeChanges(t, h, updates, done, o.withDefaults().Table)
	if !slices.Equal(seen, []string{"add 203.0.113.20/32"}) {
		t.Errorf("route changes during the adopting Set %q, want only [add 203.0.113.20/32]: the kept target's route must stay untouched", seen)
	}

	must(t, r2.Close())
	if s := readReturn(t, h, o); s.tunnel != "" || len(s.routes) != 0 || len(s.rules) != 0 {
		t.Errorf("after Close: %+v, want nothing", s)
	}
	if got := sysctl(t, l.scr, forward4); got != "0" {
		t.Errorf("after Close ip_forward=%s, want 0 (restored across the restart)", got)
	}
	must(t, r2.Close()) // nothing left: not an error
}

// routeChanges collects the changes of table from updates until a marker
// route added now (in another table) comes by, then ends the subscription.
func routeChanges(t testing.TB, h *netlink.Handle, updates <-chan netlink.RouteUpdate, done chan struct{}, table int) []string {
	t.Helper()
	defer close(done)
	up, err := h.LinkByName("up")
	must(t, err)
	_, dst, _ := net.ParseCIDR("198.18.0.1/32")
	marker := &netlink.Route{LinkIndex: up.Attrs().Index, Dst: dst, Gw: net.ParseIP("192.0.2.1"), Table: table + 1}
	must(t, h.RouteAdd(marker))
	defer func() { must(t, h.RouteDel(marker)) }()
	var seen []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatal("route subscription ended early")
			}
			if u.Table == table+1 {
				return seen
			}
			if u.Table != table {
				continue
			}
			kind := "add"
			if u.Type == unix.RTM_DELROUTE {
				kind = "del"
			}
			seen = append(seen, kind+" "+u.Dst.String())
		case <-timeout:
			t.Fatal("no marker route update within 10 s")
		}
	}
}

// haveGRE reports whether the kernel can create a GRE link.
func haveGRE(t testing.TB, l *returnLab) bool {
	t.Helper()
	r := &Return{opts: l.opts(false).withDefaults(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := l.handle(t, l.scr)
	ok, err := r.probeGRE(h)
	must(t, err)
	return ok
}

// TestReturnFamilies checks IPv6 next to IPv4, and a family without a
// gateway: its targets are reported and skipped, its rule and sysctl left
// alone.
func TestReturnFamilies(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := desired("203.0.113.10/32", "2001:db8:200::10/128")
	cases := []struct {
		name     string
		v6       bool
		routes   []string
		rules    []string
		fwd6     string
		unrouted string
	}{
		{"both families", true,
			[]string{"2001:db8:200::10/128 via 2001:db8:ff::2 dev vx-clean", "203.0.113.10/32 via 192.0.2.14 dev vx-clean"},
			[]string{"ipv4 iif sb lookup 4680", "ipv6 iif sb lookup 4680"}, "1", "[]"},
		{"no gateway6", false, []string{"203.0.113.10/32 via 192.0.2.14 dev vx-clean"},
			[]string{"ipv4 iif sb lookup 4680"}, "0", "[2001:db8:200::10/128]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newReturnLab(t)
			h := l.handle(t, l.scr)
			o := l.opts(tc.v6)
			r := l.newReturn(t, o)
			must(t, r.Set(context.Background(), d))
			s := readReturn(t, h, o)
			if !slices.Equal(s.routes, tc.routes) || !slices.Equal(s.rules, tc.rules) {
				t.Errorf("routes %q rules %q, want %q %q", s.routes, s.rules, tc.routes, tc.rules)
			}
			if got := sysctl(t, l.scr, forward6); got != tc.fwd6 {
				t.Errorf("ipv6 forwarding=%s, want %s", got, tc.fwd6)
			}
			if got := fmt.Sprint(r.Unrouted()); got != tc.unrouted {
				t.Errorf("unrouted %s, want %s", got, tc.unrouted)
			}
			must(t, r.Close())
			if s := readReturn(t, h, o); s.tunnel != "" || len(s.routes) != 0 || len(s.rules) != 0 {
				t.Errorf("after Close: %+v", s)
			}
			if a, b := sysctl(t, l.scr, forward4), sysctl(t, l.scr, forward6); a != "0" || b != "0" {
				t.Errorf("after Close ip_forward=%s ipv6 forwarding=%s, want 0 0", a, b)
			}
		})
	}
}

// TestReturnExistingLinks starts over links of the tunnel's name left by
// someone else: a VXLAN with other parameters is replaced, a link that is
// no tunnel is refused and left alone; GRE asked for on a kernel without
// it fails at NewReturn.
func TestReturnExistingLinks(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	cases := []struct {
		name    string
		link    netlink.Link
		wantErr string // "" : Set converges
	}{
		{"vxlan with another vni", &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vx-clean"}, VxlanId: 7,
			SrcAddr: net.ParseIP("192.0.2.2"), Group: net.ParseIP("192.0.2.9"), Port: 4789, Learning: true}, ""},
		{"a veth of that name", &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vx-clean"}, PeerName: "vx-peer"},
			"name: vx-clean exists and is a veth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newReturnLab(t)
			h := l.handle(t, l.scr)
			must(t, h.LinkAdd(tc.link))
			o := l.opts(false)
			r := l.newReturn(t, o)
			err := r.Set(ctx, desired("203.0.113.10/32"))
			if tc.wantErr != "" {
				var oe *OptionError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &oe) {
					t.Fatalf("Set: %v, want an OptionError with %q", err, tc.wantErr)
				}
				if link, err := h.LinkByName("vx-clean"); err != nil || link.Type() != "veth" {
					t.Fatalf("the veth is gone: %v", err)
				}
				return
			}
			must(t, err)
			link, err := h.LinkByName("vx-clean")
			must(t, err)
			if v, ok := link.(*netlink.Vxlan); !ok || v.VxlanId != 100 || v.Learning {
				t.Fatalf("tunnel %+v not replaced by vni 100 nolearning", link)
			}
			must(t, r.Close())
		})
	}
	l := newReturnLab(t)
	if haveGRE(t, l) {
		t.Log("the kernel has GRE: the refusal of tunnel gre is not checked")
		return
	}
	o := l.opts(false)
	o.Tunnel, o.VNI = TunnelGRE, 0
	o.Port = 0
	var oe *OptionError
	if _, err := NewReturn(o); !errors.As(err, &oe) || oe.Key != "tunnel" {
		t.Fatalf("NewReturn with gre on a kernel without GRE: %v, want an OptionError on tunnel", err)
	}
	if links, err := l.handle(t, l.scr).LinkList(); err == nil {
		for _, link := range links {
			if strings.HasPrefix(link.Attrs().Name, "lvgre") {
				t.Fatalf("probe link %s left behind", link.Attrs().Name)
			}
		}
	}
}
